"""The `wmfm` command: one entry point, sub-commands registered by each package.

Errors a user can fix (bad config, bad scenario, existing output) end the command with one
line on stderr and exit status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys

from wmfm.config import ConfigError

USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, FileExistsError, FileNotFoundError)
# What the optional dependency groups bring (pyproject); the base install is the xApp's runtime.
EXTRAS = {"scipy": "sim", "matplotlib": "sim", "tqdm": "sim", "deepverse": "sim", "pandas": "sim", "natsort": "sim",
          "torch": "train", "onnx": "train", "tensorrt": "gpu", "cuda": "gpu"}


def build_parser() -> argparse.ArgumentParser:
    from wmfm.model import cli as model_cli
    from wmfm.sim import cli as sim_cli
    from wmfm.xapp import cli as xapp_cli

    parser = argparse.ArgumentParser(prog="wmfm", description="WMFM xApp: twin, dataset, model, xApp.")
    sub = parser.add_subparsers(dest="command", required=True)
    sim_cli.register(sub)
    model_cli.register(sub)
    xapp_cli.register(sub)
    d = sub.add_parser("demo", help="the whole system in one command: twin -> train -> export -> xApp + Redis "
                                    "-> real-time replay of the test trajectories -> scores and pictures")
    d.add_argument("--out", default=".cache/demo", help="working folder (a trained artifact there is reused)")
    d.add_argument("--speed", type=float, default=1.0, help="replay at real time x SPEED")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=_demo)
    sc = sub.add_parser("scale", help="horizontal scaling on this machine: 1 vs 2 xApp instances (round-robin, "
                                      "cell sharding) behind one max-rate replay; exactly once + throughput")
    sc.add_argument("--out", default=".cache/scale", help="folder for scale.json, scale.png and the xApp logs")
    sc.add_argument("--demo", default=".cache/demo", help="the demo's folder: its artifact and twin (made if absent)")
    sc.add_argument("--duration", type=float, default=20.0, help="seconds of max-rate replay per variant")
    sc.add_argument("--quiet", action="store_true", help="no progress bars")
    sc.set_defaults(func=_scale)
    return parser


def _demo(args) -> int:
    from wmfm.demo import run
    if not args.speed > 0:
        raise ConfigError(f"--speed: must be > 0, got {args.speed}")
    summary = run(args.out, speed=args.speed, progress=not args.quiet)
    return 0 if summary["xapp_exit_code"] == 0 and summary["received"] and not summary["stalled"] else 1


def _scale(args) -> int:
    from wmfm.scale import run
    if not args.duration > 0:
        raise ConfigError(f"--duration: must be > 0, got {args.duration}")
    result = run(args.out, args.demo, args.duration, progress=not args.quiet)
    return 0 if all(v["exactly_once"] and v["received"] for v in result["variants"]) else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "tensorrt", False):
            _tensorrt_here()                     # before the export, not after it
        rc = int(args.func(args) or 0)
        if rc == 0 and getattr(args, "tensorrt", False):
            rc = _prebuild_engines(args.artifact, fp16=args.fp16)
        return rc
    except USER_ERRORS as exc:                  # ScenarioError, ArtifactError... are ConfigErrors
        print(f"wmfm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:          # a slim install (the xApp image) lacks the extras
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"wmfm {args.command}: error: needs {exc.name}: pip install 'wmfm-xapp[{extra}]'", file=sys.stderr)
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
