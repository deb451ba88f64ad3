"""`wmfm train pretrain|heads|e2e` and `wmfm export`.

    wmfm train pretrain --cache C --out DIR --preset cpu [--config over.yaml]      (torchrun-ready)
    wmfm train heads    --cache C --encoders DIR/encoders.pt --out DIR --preset cpu [--fraction 1 --seed 0]
    wmfm train e2e      --cache C --out DIR --preset cpu [--fraction 1 --seed 0 --modality fused]
    wmfm export         --checkpoint DIR/model.pt --out ARTIFACT [--opset 17] [--fp16] [--tensorrt]
    wmfm export         --random-init --preset cpu --out ARTIFACT                  (deployed shapes, no training)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wmfm.args import fraction, int_range, positive_int, seed

PRESETS = ("cpu", "gpu", "tiny")       # model/experiment.py's PRESETS (a test checks); named here so that
                                       # building the command line imports no torch (the xApp image has none)


def register(sub: argparse._SubParsersAction) -> None:
    def common(p, cache_required=True):
        p.add_argument("--cache", type=Path, required=cache_required,
                       help="`wmfm dataset build` output" + ("" if cache_required else " (its train split; no labels "
                                                                                       "are read)"))
        p.add_argument("--out", type=Path, required=True, help="output folder")
        p.add_argument("--preset", choices=PRESETS, required=True, help="configs to start from")
        p.add_argument("--config", type=Path, help="YAML overrides of the preset (fields as in config.json)")
        p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
        p.add_argument("--threads", type=positive_int, help="torch CPU threads (default: the cores this process "
                                                            "may use)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    train = sub.add_parser("train", help="train the WMFM encoders, its heads, or the E2E baseline")
    tsub = train.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = tsub.add_parser("pretrain", help="contrastive CSI-image pretraining on the train split (no labels)")
    common(p, cache_required=False)
    p.add_argument("--corpus", type=Path, help="pretrain on a `wmfm corpus build` corpus instead of --cache's "
                                               "train split (or on both with --cache too)")
    p.set_defaults(func=_pretrain)
    h = tsub.add_parser("heads", help="LoS and position heads on the frozen encoders -> deployable model.pt")
    common(h)
    h.add_argument("--encoders", type=Path, required=True, help="encoders.pt from `wmfm train pretrain`")
    h.add_argument("--fraction", type=fraction, default=1.0, help="labelled fraction of the train split, in (0, 1]")
    h.add_argument("--seed", type=seed, default=0, help="seed of the label subset and the heads' initialisation")
    h.add_argument("--modalities", nargs="+", default=["fused", "csi"], choices=["fused", "csi", "image"],
                   help="heads to train (the xApp needs fused and csi)")
    h.add_argument("--head-input", choices=["feature", "embedding"], help="default: the preset's head_input")
    h.set_defaults(func=_heads)
    e = tsub.add_parser("e2e", help="the end-to-end supervised baseline")
    common(e)
    e.add_argument("--fraction", type=fraction, default=1.0, help="labelled fraction of the train split, in (0, 1]")
    e.add_argument("--seed", type=seed, default=0, help="seed of the label subset and the initialisation")
    e.add_argument("--modality", default="fused", choices=["fused", "csi", "image"], help="inputs of the network")
    e.set_defaults(func=_e2e)

    ex = sub.add_parser("export", help="model.pt -> ONNX graphs + manifest.json (hashes, parity) for the xApp")
    what = ex.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkpoint", type=Path, help="a deployable model.pt (encoders + heads)")
    what.add_argument("--random-init", action="store_true",
                      help="random weights of the --preset's shapes (no training): for latency benchmarks and "
                           "tests of the service at the deployed size; its answers mean nothing")
    ex.add_argument("--preset", choices=PRESETS, help="with --random-init: the model shapes (required there)")
    ex.add_argument("--seed", type=seed, default=0, help="with --random-init: seed of the weights and of the "
                                                         "synthetic reference inputs")
    ex.add_argument("--out", type=Path, required=True, help="artifact folder to write")
    ex.add_argument("--cache", type=Path, help="dataset cache for the held-out parity samples "
                                              "(default: the one recorded in the checkpoint)")
    ex.add_argument("--opset", type=int_range(7, 23), default=17, help="ONNX opset")
    ex.add_argument("--max-batch", type=int_range(1, 4096), default=64,
                    help="largest batch of one call (TensorRT profile max)")
    ex.add_argument("--samples", type=int_range(1, 100_000), default=256,
                    help="held-out samples for the parity check")
    ex.add_argument("--fp16", action="store_true", help="also write mixed-precision encoders (for TensorRT FP16)")
    ex.add_argument("--tensorrt", action="store_true", help="also build the TensorRT engines now (GPU host)")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing artifact folder")
    ex.set_defaults(func=_export)


def _setup(args, image_size=None):
    """(experiment config, cache in memory at `image_size` or the preset's; None without --cache)
    after argument checks."""
    from .data import load_data
    from .experiment import load_config
    from .train import set_threads
    cfg = load_config(args.preset, args.config)
    if args.cache is not None and not (args.cache / "meta.json").is_file():
        raise FileNotFoundError(f"{args.cache}: not a wmfm cache (meta.json missing)")
    set_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.cache is None:
        return cfg, None
    return cfg, load_data(args.cache, image_size or cfg.model.image_size).to(args.device)


def _pretrain(args) -> int:
    from wmfm.config import ConfigError, to_dict

    from . import checkpoint
    from .data import concat, load_unlabelled
    from .train import init_distributed, pretrain, rank_world
    if args.cache is None and args.corpus is None:
        raise ConfigError("pass --cache, --corpus or both")
    distributed, args.device = init_distributed(args.device)
    cfg, data = _setup(args)
    parts = [] if args.corpus is None else [load_unlabelled(args.corpus, cfg.model.image_size)]
    parts += [] if data is None else [data.unlabelled().to("cpu")]
    data = (parts[0] if len(parts) == 1 else concat(parts, meta=parts[0].meta)).to(args.device)
    from .experiment import VARIANTS, pretrain_config
    pre_cfg = pretrain_config(cfg, cfg.objective if cfg.objective in VARIANTS else "custom")
    model, res = pretrain(data, cfg.model, pre_cfg, device=args.device, progress=not args.quiet)
    if rank_world()[0] == 0:
        checkpoint.save(args.out / "encoders.pt", "encoders", model, cfg.model, {"pretrain": to_dict(pre_cfg)},
                        meta={"pretrain": {k: v for k, v in res.items() if k != "history"}, "cache": str(args.cache),
                              "corpus": str(args.corpus)})
        (args.out / "pretrain.json").write_text(json.dumps(res, indent=2))
        print(f"encoders      {args.out / 'encoders.pt'}  ({pre_cfg.objective}: {res['steps']} steps = "
              f"{res['epochs']:g} epochs of {res['train_samples']} samples, best val loss "
              f"{res['best_val_loss']:.3f} at step "
              f"{res['best_step']}, {res['seconds']:.0f} s, {res['world_size']} process(es))")
    if distributed:
        import torch.distributed as dist
        dist.destroy_process_group()
    return 0


def _heads(args) -> int:
    from wmfm.config import to_dict

    from . import checkpoint
    from .data import label_subset
    from .train import embed, train_heads
    model, _, ckpt = checkpoint.load_wmfm(args.encoders)
    cfg, data = _setup(args, model.cfg.image_size)
    model.to(args.device)
    kind = args.head_input or cfg.head_input
    emb = embed(model, data, device=args.device, kind=kind).to(args.device)
    sub = label_subset(data.los.cpu(), data.index("train").cpu(), args.fraction, args.seed).to(data.los.device)
    heads, results = {}, {}
    beta = ckpt["configs"].get("pretrain", {}).get("pointer_beta", cfg.pretrain.pointer_beta)
    for mod in args.modalities:
        heads[mod], res = train_heads(emb, data, mod, sub, cfg.heads, args.seed, beta=beta)
        results[mod] = {k: v for k, v in res.items() if not k.startswith("_")}
        print(f"{mod:6s} test LoS BA {res['los_balanced_accuracy']:.3f}  loc mean {res['loc_mean_error_m']:.2f} m  "
              f"median {res['loc_median_error_m']:.2f} m  ({res['train_time_s']:.1f} s, {res['labelled']} labels)")
    objective = ckpt["configs"].get("pretrain", {}).get("objective", "mil")
    results["retrieval_test"] = emb.retrieval(data.index("test"), data.frame, objective, beta)
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


def _export(args) -> int:
    from wmfm.config import ConfigError

    from .export import export, export_random
    if args.random_init:
        if args.preset is None:
            raise ConfigError("--random-init: needs --preset (the model shapes to export)")
        if args.cache is not None:
            raise ConfigError("--random-init: takes no --cache (its reference inputs are synthetic)")
        art = export_random(args.preset, args.out, seed=args.seed, opset=args.opset, max_batch=args.max_batch,
                            fp16=args.fp16, samples=args.samples, overwrite=args.overwrite)
    else:
        if args.preset is not None:
            raise ConfigError("--preset: only with --random-init (a checkpoint carries its own shapes)")
        art = export(args.checkpoint, args.out, cache=args.cache, opset=args.opset, max_batch=args.max_batch,
                     fp16=args.fp16, samples=args.samples, overwrite=args.overwrite)
    par = art.manifest["parity"]["fp32"]
    worst = max(par["max_abs_diff"].items(), key=lambda kv: kv[1])
    kind = "random weights, " if args.random_init else ""
    print(f"artifact      {args.out}  ({kind}{art.manifest['model']['parameters']:,} parameters, "
          f"{len(art.manifest['files'])} files, sha256 in manifest.json)")
    print(f"parity        torch vs ONNX Runtime on {par['samples']} {par['split']} samples: largest max-abs diff "
          f"{worst[1]:.2g} ({worst[0]}), LoS agreement fused {par['heads_fused']['los_agreement']:.3f} "
          f"csi {par['heads_csi']['los_agreement']:.3f}, position error <= "
          f"{max(par['heads_fused']['position_max_err_m'], par['heads_csi']['position_max_err_m']) * 100:.3f} cm")
    if args.fp16:
        p16 = art.manifest["parity"]["fp16_encoders"]["max_abs_diff"]
        print("fp16          mixed-precision encoders, max-abs diff vs torch FP32: "
              + ", ".join(f"{k} {v:.2g}" for k, v in p16.items()))
    args.artifact = art          # `--tensorrt` engines are built by the top-level command (wmfm.cli)
    return 0

