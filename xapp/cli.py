"""`wmfm xapp`: the service (also `python -m wmfm.xapp`, the images' command)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    x = sub.add_parser("xapp", help="run the xApp: ZeroMQ in -> WMFM -> insights in Redis (SIGTERM drains)")
    x.add_argument("--config", type=Path, help="O-RAN descriptor with a `controls` section "
                                               "(deploy/descriptor/config-file.json); default: built-in controls")
    x.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a control, e.g. --set sync.max_skew_ms=30 (repeatable; env: WMFM__SYNC__MAX_SKEW_MS)")
    x.add_argument("--artifact", help="`wmfm export` folder (overrides controls.artifact)")
    x.add_argument("--redis", help="redis://host:port/db (the RIC's SDL/dbaas), auto or embedded, instead of "
                                        "controls.redis.url")
    x.set_defaults(func=_xapp)
    b = sub.add_parser("bridge", help="the E2 bridge beside the xApp on an O-RAN SC RIC: RMR (RIC indications, A1 "
                                      "policies) and the RIC's REST services (subscriptions, registration)")
    b.add_argument("--config", type=Path, help="the O-RAN descriptor; the bridge reads its controls.bridge (and "
                                               "http.port, log_level)")
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a control, e.g. --set bridge.e2_nodes='[\"gnb_001\"]' (env: WMFM__BRIDGE__...)")
    b.set_defaults(func=_bridge)


def _loopback(endpoint: str) -> str:
    """An endpoint bound on every interface, as a client on this host reaches it."""
    return endpoint.replace("//0.0.0.0:", "//127.0.0.1:").replace("//*:", "//127.0.0.1:")


def ready_line(app) -> str:
    """What a person starting the xApp by hand reads: where it listens and writes, and the replay
    command that plays a scenario into it (the replay finds the Redis through --metrics)."""
    host = "127.0.0.1" if app.cfg.http.host in ("0.0.0.0", "::", "") else app.cfg.http.host
    metrics = f"http://{host}:{app.status.port}/ric/v1/metrics"
    ind, frm = (_loopback(app.endpoints[k]) for k in ("indications", "frames"))
    d = app.describe()
    return (f"wmfm xapp: ready: model {d['model']} on {d['backend']['backend']}; indications {ind}, frames {frm}, "
            f"metrics {metrics}, insights to {d['redis']} ({d['redis_source']}, namespace {d['namespace']})\n"
            f"replay a scenario into it:  wmfm replay --scenario SCENARIO --indications {ind} --frames {frm} "
            f"--metrics {metrics}")


def _xapp(args) -> int:
    from .app import XApp
    from .controls import load
    overrides = list(args.set) + ([f"artifact={args.artifact}"] if args.artifact else [])
    if args.redis:
        overrides.append(f"redis.url={args.redis}")
    import signal

    app = XApp(load(args.config, overrides))
    previous = app.install_signal_handlers()
    try:
        app.start()
        print(ready_line(app), flush=True)
        sys.stdout.flush()
        return app.run()
    finally:                      # called in-process (tests, an embedding program): hand the signals back
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _bridge(args) -> int:
    import json
    import signal

    from .bridge.bridge import Bridge
    from .controls import load
    cfg = load(args.config, list(args.set))
    descriptor = json.loads(args.config.read_text()) if args.config else {}
    bridge = Bridge(cfg, descriptor)
    previous = bridge.install_signal_handlers()
    try:
        bridge.start()
        return bridge.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
