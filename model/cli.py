"""`wmfm train pretrain|heads|e2e` and `wmfm experiment`.

    wmfm train pretrain --cache C --out DIR [--preset cpu] [--config over.yaml]    (torchrun-ready)
    wmfm train heads    --cache C --encoders DIR/encoders.pt --out DIR [--fraction 1 --seed 0]
    wmfm train e2e      --cache C --out DIR [--fraction 1 --seed 0 --modality fused]
    wmfm experiment     --preset tiny|cpu|gpu --out DIR [--scenario PATH | --cache C]
    wmfm export         --checkpoint DIR/model.pt --out ARTIFACT [--opset 17] [--fp16] [--tensorrt]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PRESETS = ("cpu", "gpu", "tiny")       # model/experiment.py's PRESETS (a test checks); named here so that
                                       # building the command line imports no torch (the xApp image has none)


def register(sub: argparse._SubParsersAction) -> None:
    def common(p, cache_required=True):
        p.add_argument("--cache", type=Path, required=cache_required, help="`wmfm dataset build` output")
        p.add_argument("--out", type=Path, required=True, help="output folder")
        p.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="configs to start from")
        p.add_argument("--config", type=Path, help="YAML overrides of the preset (fields as in config.json)")
        p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    train = sub.add_parser("train", help="train the WMFM encoders, its heads, or the E2E baseline")
    tsub = train.add_subparsers(dest="action", required=True)
    p = tsub.add_parser("pretrain", help="contrastive CSI-image pretraining on the train split (no labels)")
    common(p)
    p.set_defaults(func=_pretrain)
    h = tsub.add_parser("heads", help="LoS and position heads on the frozen encoders -> deployable model.pt")
    common(h)
    h.add_argument("--encoders", type=Path, required=True, help="encoders.pt from `wmfm train pretrain`")
    h.add_argument("--fraction", type=float, default=1.0, help="labelled fraction of the train split")
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--modalities", nargs="+", default=["fused", "csi"], choices=["fused", "csi", "image"])
    h.add_argument("--head-input", choices=["feature", "embedding"], help="default: the preset's head_input")
    h.set_defaults(func=_heads)
    e = tsub.add_parser("e2e", help="the end-to-end supervised baseline")
    common(e)
    e.add_argument("--fraction", type=float, default=1.0)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--modality", default="fused", choices=["fused", "csi", "image"])
    e.set_defaults(func=_e2e)

    x = sub.add_parser("experiment", help="WMFM vs E2E over label fractions and seeds -> report + model.pt")
    common(x, cache_required=False)
    x.add_argument("--scenario", type=Path, help="a DeepVerse6G scenario instead of the twin")
    x.set_defaults(func=_experiment)

    ex = sub.add_parser("export", help="model.pt -> ONNX graphs + manifest.json (hashes, parity) for the xApp")
    ex.add_argument("--checkpoint", type=Path, required=True, help="a deployable model.pt (encoders + heads)")
    ex.add_argument("--out", type=Path, required=True, help="artifact folder to write")
    ex.add_argument("--cache", type=Path, help="dataset cache for the held-out parity samples "
                                              "(default: the one recorded in the checkpoint)")
    ex.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    ex.add_argument("--max-batch", type=int, default=64, help="largest batch of one call (TensorRT profile max)")
    ex.add_argument("--samples", type=int, default=256, help="held-out samples for the parity check")
    ex.add_argument("--fp16", action="store_true", help="also write mixed-precision encoders (for TensorRT FP16)")
    ex.add_argument("--tensorrt", action="store_true", help="also build the TensorRT engines now (GPU host)")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing artifact folder")
    ex.set_defaults(func=_export)


def _setup(args, image_size=None):
    """(experiment config, cache in memory at `image_size` or the preset's) after argument checks."""
    from wmfm.config import ConfigError

    from .data import load_data
    from .experiment import load_config
    cfg = load_config(args.preset, args.config)
    if args.cache is not None and not (args.cache / "meta.json").is_file():
        raise FileNotFoundError(f"{args.cache}: not a wmfm cache (meta.json missing)")
    if not 0 < getattr(args, "fraction", 1.0) <= 1:
        raise ConfigError(f"--fraction: must be in (0, 1], got {args.fraction}")
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_data(args.cache, image_size or cfg.model.image_size).to(args.device) if args.cache else None
    return cfg, data


def _pretrain(args) -> int:
    from wmfm.config import to_dict

    from . import checkpoint
    from .train import init_distributed, pretrain, rank_world
    distributed, args.device = init_distributed(args.device)
    cfg, data = _setup(args)
    model, res = pretrain(data, cfg.model, cfg.pretrain, device=args.device, progress=not args.quiet)
    if rank_world()[0] == 0:
        checkpoint.save(args.out / "encoders.pt", "encoders", model, cfg.model, {"pretrain": to_dict(cfg.pretrain)},
                        meta={"pretrain": {k: v for k, v in res.items() if k != "history"}, "cache": str(args.cache)})
        (args.out / "pretrain.json").write_text(json.dumps(res, indent=2))
        print(f"encoders      {args.out / 'encoders.pt'}  ({res['epochs']} epochs, best val InfoNCE "
              f"{res['best_val_loss']:.3f} at epoch {res['best_epoch']}, {res['seconds']:.0f} s, "
              f"{res['world_size']} process(es))")
    if distributed:
        import torch.distributed as dist
        dist.destroy_process_group()
    return 0


def _heads(args) -> int:
    from wmfm.config import to_dict

    from . import checkpoint
    from .data import label_subset
    from .loss import retrieval
    from .train import embed, train_heads
    model, _, ckpt = checkpoint.load_wmfm(args.encoders)
    cfg, data = _setup(args, model.cfg.image_size)
    model.to(args.device)
    kind = args.head_input or cfg.head_input
    z_c, z_i = embed(model, data, device=args.device, kind=kind)
    e_c, e_i = (z_c, z_i) if kind == "embedding" else embed(model, data, device=args.device)
    sub = label_subset(data.los.cpu(), data.index("train").cpu(), args.fraction, args.seed).to(data.los.device)
    heads, results = {}, {}
    for mod in args.modalities:
        heads[mod], res = train_heads(z_c.to(args.device), z_i.to(args.device), data, mod, sub, cfg.heads, args.seed)
        results[mod] = {k: v for k, v in res.items() if not k.startswith("_")}
        print(f"{mod:6s} test LoS BA {res['los_balanced_accuracy']:.3f}  loc mean {res['loc_mean_error_m']:.2f} m  "
              f"median {res['loc_median_error_m']:.2f} m  ({res['train_time_s']:.1f} s, {res['labelled']} labels)")
    test = data.index("test").cpu()
    results["retrieval_test"] = retrieval(e_c[test], e_i[test], data.frame.cpu()[test])
    checkpoint.save(args.out / "model.pt", "model", model, model.cfg,
                    ckpt["configs"] | {"heads": to_dict(cfg.heads)}, heads=heads,
                    meta={"label_fraction": args.fraction, "seed": args.seed, "cache": str(args.cache),
                          "encoders": str(args.encoders)}, head_input=kind)
    (args.out / "heads.json").write_text(json.dumps(results, indent=2))
    print(f"model         {args.out / 'model.pt'}")
    return 0


def _e2e(args) -> int:
    from .data import label_subset
    from .train import train_e2e
    cfg, data = _setup(args)
    sub = label_subset(data.los.cpu(), data.index("train").cpu(), args.fraction, args.seed).to(data.los.device)
    res = train_e2e(data, cfg.model, args.modality, sub, cfg.e2e, cfg.pretrain.augment, args.seed,
                    progress=not args.quiet)
    out = {k: v for k, v in res.items() if not k.startswith("_")}
    (args.out / "e2e.json").write_text(json.dumps(out, indent=2))
    print(f"e2e {args.modality} test LoS BA {res['los_balanced_accuracy']:.3f}  "
          f"loc mean {res['loc_mean_error_m']:.2f} m  ({res['train_time_s']:.1f} s, {res['steps']} steps, "
          f"{res['labelled']} labels) -> {args.out / 'e2e.json'}")
    return 0


def _experiment(args) -> int:
    from .experiment import load_config, run
    cfg = load_config(args.preset, args.config)
    if args.scenario is not None and args.cache is not None:
        raise FileExistsError("--scenario and --cache: give one of them")
    rep = run(cfg, args.out, scenario=args.scenario, cache=args.cache, device=args.device,
              progress=not args.quiet, preset_name=args.preset)
    h = rep["summary"]["headline"]
    print(f"report        {args.out / 'report.md'}  ({rep['wall_time_s'] / 60:.1f} min)")
    print(f"LoS BA        WMFM {h['wmfm_los_ba']:.3f}  E2E {h['e2e_los_ba']:.3f}  ({h['los_ba_gain_pct']:+.1f} %)")
    print(f"loc error     WMFM {h['wmfm_loc_mean_error_m']:.2f} m  E2E {h['e2e_loc_mean_error_m']:.2f} m  "
          f"({h['loc_error_reduction_pct']:+.1f} % reduction)")
    print(f"train time    {h['train_time_ratio']:.1f}x less ({h['train_time_ratio_with_embedding']:.1f}x with the "
          "embedding pass)")
    print(f"model         {args.out / 'model.pt'}")
    return 0


def _export(args) -> int:
    from wmfm.config import ConfigError

    from .export import export
    if not 1 <= args.max_batch <= 4096:
        raise ConfigError(f"--max-batch: must be in [1, 4096], got {args.max_batch}")
    if not 7 <= args.opset <= 23:
        raise ConfigError(f"--opset: must be in [7, 23], got {args.opset}")
    art = export(args.checkpoint, args.out, cache=args.cache, opset=args.opset, max_batch=args.max_batch,
                 fp16=args.fp16, samples=args.samples, overwrite=args.overwrite)
    par = art.manifest["parity"]["fp32"]
    worst = max(par["max_abs_diff"].items(), key=lambda kv: kv[1])
    print(f"artifact      {args.out}  ({len(art.manifest['files'])} files, sha256 in manifest.json)")
    print(f"parity        torch vs ONNX Runtime on {par['samples']} held-out samples: largest max-abs diff "
          f"{worst[1]:.2g} ({worst[0]}), LoS agreement fused {par['heads_fused']['los_agreement']:.3f} "
          f"csi {par['heads_csi']['los_agreement']:.3f}, position error <= "
          f"{max(par['heads_fused']['position_max_err_m'], par['heads_csi']['position_max_err_m']) * 100:.3f} cm")
    if args.fp16:
        p16 = art.manifest["parity"]["fp16_encoders"]["max_abs_diff"]
        print("fp16          mixed-precision encoders, max-abs diff vs torch FP32: "
              + ", ".join(f"{k} {v:.2g}" for k, v in p16.items()))
    args.artifact = art          # `--tensorrt` engines are built by the top-level command (wmfm.cli)
    return 0
