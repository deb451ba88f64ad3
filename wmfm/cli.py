"""The `wmfm` command: one entry point, sub-commands registered by each package.

    wmfm twin | dataset | replay | bench      sim/cli.py
    wmfm train | export                        model/cli.py
    wmfm xapp                                  xapp/cli.py
    wmfm experiment | demo | scale             here (they span the packages)

Errors a user can fix (a bad value, config, scenario or artifact, an existing output) end the
command with one line on stderr naming the sub-command, exit status 2, no traceback. Ctrl-C
prints one line and exits 130, after the command has stopped what it started.
"""

from __future__ import annotations

import sys

from wmfm.args import Parser, UsageError, float_range, positive_float, positive_int
from wmfm.config import ConfigError

USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, FileExistsError, FileNotFoundError)
# What the optional dependency groups bring (pyproject); the base install is the xApp's runtime.
EXTRAS = {"scipy": "sim", "matplotlib": "sim", "tqdm": "sim", "deepverse": "sim", "pandas": "sim", "natsort": "sim",
          "torch": "train", "onnx": "train", "tensorrt": "gpu", "cuda": "gpu"}


def build_parser() -> Parser:
    from wmfm.model import cli as model_cli
    from wmfm.sim import cli as sim_cli
    from wmfm.xapp import cli as xapp_cli

    parser = Parser(prog="wmfm", description="WMFM xApp: twin, dataset, model, xApp, replay.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sim_cli.register(sub)
    model_cli.register(sub)
    xapp_cli.register(sub)

    x = sub.add_parser("experiment", help="twin (or a scenario) -> cache -> WMFM vs E2E over label fractions and "
                                          "seeds -> report + deployable model.pt")
    x.add_argument("--preset", required=True, choices=model_cli.PRESETS,
                   help="tiny: ~2 min (tests, demo); cpu: the reference, <= 90 min on 2 cores; gpu: a 100x corpus")
    x.add_argument("--out", required=True, help="output folder (an existing one needs --overwrite)")
    x.add_argument("--overwrite", action="store_true",
                   help="replace the results in OUT (a twin and cache in OUT/data that match are reused)")
    src = x.add_mutually_exclusive_group()
    src.add_argument("--scenario", help="a DeepVerse6G scenario folder instead of the twin")
    src.add_argument("--cache", help="a `wmfm dataset build` cache instead of the twin")
    x.add_argument("--corpus", help="a `wmfm corpus build` corpus to pretrain on (default: the preset's, built "
                                    "in OUT/data/corpus and reused)")
    x.add_argument("--config", help="YAML overrides of the preset (field names as in OUT/config.json)")
    x.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    x.add_argument("--threads", type=positive_int, help="torch CPU threads (default: the cores this process may use)")
    x.add_argument("--quiet", action="store_true", help="no progress bars")
    x.set_defaults(func=_experiment)

    d = sub.add_parser("demo", help="the whole system in one command: twin -> train -> export -> xApp + Redis "
                                    "-> real-time replay of the test trajectories -> scores and pictures")
    d.add_argument("--out", default=".cache/demo", help="working folder (a trained artifact there is reused)")
    d.add_argument("--speed", type=positive_float, default=1.0, help="replay at real time x SPEED")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=_demo)

    sc = sub.add_parser("scale", help="horizontal scaling on this machine: 1 vs 2 xApp instances (round-robin, "
                                      "cell sharding) behind one max-rate replay; exactly once + throughput")
    sc.add_argument("--out", default=".cache/scale", help="folder for scale.json, scale.png and the xApp logs")
    sc.add_argument("--demo", default=".cache/demo", help="the demo's folder: its artifact and twin (made if absent)")
    sc.add_argument("--duration", type=float_range(0, 3600, lo_open=True), default=20.0,
                    help="seconds of max-rate replay per variant")
    sc.add_argument("--quiet", action="store_true", help="no progress bars")
    sc.set_defaults(func=_scale)
    return parser


def _experiment(args) -> int:
    from pathlib import Path

    from wmfm import pipeline
    from wmfm.model.experiment import load_config
    from wmfm.model.report import error_change
    from wmfm.model.train import set_threads
    cfg = load_config(args.preset, args.config)
    out = Path(args.out)
    pipeline.check_out(out, args.overwrite)
    set_threads(args.threads)
    rep = pipeline.run(cfg, out, scenario=args.scenario, cache=args.cache, corpus=args.corpus, device=args.device,
                       progress=not args.quiet, preset_name=args.preset)
    h = rep["summary"]["headline"]
    print(f"report        {out / 'report.md'}  ({rep['wall_time_s'] / 60:.1f} min)")
    print(f"LoS BA        WMFM {h['wmfm_los_ba']:.3f}  E2E {h['e2e_los_ba']:.3f}  ({h['los_ba_gain_pct']:+.1f} %)")
    print(f"loc error     WMFM {h['wmfm_loc_mean_error_m']:.2f} m  E2E {h['e2e_loc_mean_error_m']:.2f} m  "
          f"({error_change(h['loc_error_reduction_pct'])})")
    print(f"train time    {h['train_time_ratio']:.1f}x less ({h['train_time_ratio_with_embedding']:.1f}x with the "
          "embedding pass)")
    p = rep["pretrain_pool"]
    print(f"pretraining   {p['source']}: {p['train_samples']} samples, {p['pool_over_labelled']}x the labelled train "
          f"split")
    u = rep["unseen_world"]
    if u:
        row = next(r for r in u["as_trained"] if (r["method"], r["modality"], r["label_fraction"]) ==
                   ("wmfm", "fused", 1.0))
        print(f"unseen world  {u['world']}: WMFM fused heads as trained: LoS BA "
              f"{row['unseen_los_balanced_accuracy_mean']:.3f}, loc error {row['unseen_loc_mean_error_m_mean']:.2f} m")
    print(f"model         {out / 'model.pt'}")
    return 0


def _demo(args) -> int:
    from wmfm.demo import run
    summary = run(args.out, speed=args.speed, progress=not args.quiet)
    if summary.get("interrupted"):
        raise KeyboardInterrupt
    return 0 if summary["xapp_exit_code"] == 0 and summary["received"] and not summary["stalled"] else 1


def _scale(args) -> int:
    from wmfm.scale import run
    result = run(args.out, args.demo, args.duration, progress=not args.quiet)
    return 0 if all(v["exactly_once"] and v["received"] for v in result["variants"]) else 1


def main(argv: list[str] | None = None) -> int:
    prog = "wmfm"
    try:
        args = build_parser().parse_args(argv)
        prog = args.prog
        if getattr(args, "tensorrt", False):
            _tensorrt_here()                     # before the export, not after it
        rc = int(args.func(args) or 0)
        if rc == 0 and getattr(args, "tensorrt", False):
            rc = _prebuild_engines(args.artifact, fp16=args.fp16)
        return rc
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except SystemExit as exc:                   # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    except USER_ERRORS as exc:                  # ScenarioError, ArtifactError... are ConfigErrors
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:          # a slim install (the xApp image) lacks the extras
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"{prog}: error: needs {exc.name}: pip install 'wmfm-xapp[{extra}]'", file=sys.stderr)
        return 2


def _tensorrt_here() -> None:
    from wmfm.xapp import inference
    why = inference.available("tensorrt")
    if why is not None:
        raise ConfigError(f"--tensorrt: {why}")


def _prebuild_engines(artifact, fp16: bool) -> int:
    """`wmfm export --tensorrt`: build (and cache in ARTIFACT/engines) the TensorRT engines now,
    so the xApp's first start on this GPU does not wait for them. Composed here because
    `model` never imports `xapp` (DESIGN.md)."""
    from wmfm.xapp import inference
    for precision in ("fp32", "fp16") if fp16 else ("fp32",):
        inference.load("tensorrt", artifact, precision=precision).close()
    print(f"tensorrt      engines cached in {artifact.root / 'engines'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
