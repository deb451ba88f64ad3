"""`wmfm xapp` (the service) and `wmfm bench model|xapp`."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from .inference import BACKENDS
    x = sub.add_parser("xapp", help="run the xApp: ZeroMQ in -> WMFM -> insights in Redis (SIGTERM drains)")
    x.add_argument("--config", type=Path, help="O-RAN descriptor with a `controls` section "
                                               "(deploy/descriptor/config-file.json); default: built-in controls")
    x.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a control, e.g. --set sync.max_skew_ms=30 (repeatable; env: WMFM__SYNC__MAX_SKEW_MS)")
    x.add_argument("--artifact", help="`wmfm export` folder (overrides controls.artifact)")
    x.add_argument("--redis", help="redis://host:port/db (the RIC's SDL/dbaas) instead of the embedded server")
    x.set_defaults(func=_xapp)
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

    b = bsub.add_parser("xapp", help="the xApp under load (ZeroMQ in, Redis out) vs a naive baseline")
    b.add_argument("--artifact", type=Path, required=True, help="`wmfm export` output folder")
    load = b.add_mutually_exclusive_group()
    load.add_argument("--rate", type=float, default=100.0, help="UE reports per second in total (default 100)")
    load.add_argument("--max-rate", action="store_true", help="as fast as the xApp takes them")
    b.add_argument("--duration", type=float, default=10.0, help="seconds of load per variant")
    b.add_argument("--ues-per-frame", type=int, default=8, help="UEs per camera (per indication)")
    b.add_argument("--cameras", type=int, default=2, help="cameras, one cell each")
    b.add_argument("--fps", type=float, default=10.0, help="frames per second per camera")
    b.add_argument("--max-reports", type=int, default=1_000_000, help="stop after this many UE reports")
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="xApp control override")
    b.add_argument("--no-baseline", action="store_true", help="skip the naive baseline run")
    b.add_argument("--indications", help="a running xApp's indication endpoint (then also --frames, --redis; "
                                          "its cameras must be cam0.. on cells 00101:1..)")
    b.add_argument("--frames", help="a running xApp's frame endpoint")
    b.add_argument("--redis", help="the Redis that xApp writes to")
    b.add_argument("--out", type=Path, help="JSON report (a latency PNG is written next to it)")
    b.set_defaults(func=_bench_xapp)


def _bench_model(args) -> int:
    from wmfm.config import ConfigError

    from .bench import main
    if args.calls < 1 or args.rounds < 1:
        raise ConfigError(f"--calls/--rounds: must be >= 1, got {args.calls}/{args.rounds}")
    return main(args)


def _bench_xapp(args) -> int:
    from wmfm.config import ConfigError

    from .bench_xapp import main
    if args.duration <= 0 or args.duration > 600:
        raise ConfigError(f"--duration: must be in (0, 600] s, got {args.duration}")
    if args.rate <= 0 or args.ues_per_frame < 1 or args.cameras < 1 or args.fps <= 0:
        raise ConfigError("--rate, --ues-per-frame, --cameras and --fps must be positive")
    return main(args)


def _xapp(args) -> int:
    from .app import XApp
    from .config import load
    overrides = list(args.set) + ([f"artifact={args.artifact}"] if args.artifact else [])
    if args.redis:
        overrides.append(f"redis.url={args.redis}")
    app = XApp(load(args.config, overrides))
    app.install_signal_handlers()
    app.start()
    return app.run()
