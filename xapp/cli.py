"""`wmfm bench model`: the inference backends on an exported artifact (the xApp service comes later)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from .inference import BACKENDS
    bench = sub.add_parser("bench", help="benchmarks of the serving path")
    bsub = bench.add_subparsers(dest="what", required=True)
    m = bsub.add_parser("model", help="batch-1 latency and batch-8/32 throughput of each backend vs torch eager")
    m.add_argument("--artifact", type=Path, required=True, help="`wmfm export` output folder")
    m.add_argument("--out", type=Path, help="JSON report (a PNG chart is written next to it)")
    m.add_argument("--backends", nargs="+", choices=sorted(BACKENDS),
                   help="backends to time besides torch eager (default: onnxruntime and tensorrt where available; "
                        "`torch` adds torch eager on CUDA)")
    m.add_argument("--calls", type=int, default=1000, help="timed batch-1 calls per backend and component")
    m.add_argument("--rounds", type=int, default=3, help="interleaved rounds the calls are split into")
    m.add_argument("--threads", type=int, help="CPU threads for onnxruntime and torch (default: their own)")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=_bench_model)


def _bench_model(args) -> int:
    from wmfm.config import ConfigError

    from .bench import main
    if args.calls < 1 or args.rounds < 1:
        raise ConfigError(f"--calls/--rounds: must be >= 1, got {args.calls}/{args.rounds}")
    return main(args)
