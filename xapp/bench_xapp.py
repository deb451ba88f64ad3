"""`wmfm bench xapp`: the whole service under load, against a naive baseline, in one run.

For each variant (wmfm: the configured backend, micro-batching and frame-embedding reuse;
baseline: torch eager, batch 1, every UE embeds its frame again) it starts a private
redis-server and the xApp (`python -m wmfm.xapp`, loopback endpoints), runs the load
generator in a separate process (loadgen.py), and reads every insight back from the Redis
channel as it is published: end-to-end latency = arrival at the reader - CSI collection time
(same host clock), so it includes decode, sync, batching, inference and the Redis write.
Reports sustained throughput, p50/p99/p99.9 latency, sent/received/lost, and the ratios.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import redis

from .codec import decode_insight
from .loadgen import generate
from .metrics import metrics_delta, scrape, stage_table
from .redis_server import EmbeddedRedis
from .spawn import XAppProcess

BASELINE = ["backend.name=torch", "batch.max_batch=1", "batch.reuse_frames=false"]


class Reader(threading.Thread):
    """Subscribes to the insight channel; records (arrival - source time) per insight."""

    def __init__(self, url: str, channel: str = "{wmfm},events"):
        super().__init__(daemon=True)
        self.pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        self.latency_ns: list[int] = []
        self.delivery_ns: list[int] = []        # arrival - publication (inference done): Redis write + delivery
        self.last_ns = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            msg = self.pubsub.get_message(timeout=0.1)
            if msg is None:
                continue
            now = time.time_ns()
            x = decode_insight(msg["data"])
            self.latency_ns.append(now - x.t_ns)
            self.delivery_ns.append(now - x.published_ns)
            self.last_ns = now

    def stop(self) -> None:
        self.stop_flag.set()
        self.join(timeout=5)
        self.pubsub.close()


def _load(eps: dict, redis_url: str, artifact: str, cameras: int, ues: int, rate: float | None, duration_s: float,
          fps: float, max_reports: int, settle_s: float) -> tuple[dict, Reader]:
    """Run the load generator process against `eps`, reading insights back from `redis_url`."""
    reader = Reader(redis_url)
    reader.start()
    try:
        parent, child = mp.Pipe()
        gen = mp.get_context("spawn").Process(
            target=generate, args=(eps["indications"], eps["frames"], str(artifact), cameras, ues, rate, duration_s,
                                   fps), kwargs={"max_reports": max_reports, "conn": child})
        gen.start()
        child.close()                                       # so a dead generator shows as EOF here
        while not parent.poll(0.5):
            if not gen.is_alive():
                raise RuntimeError(f"the load generator exited ({gen.exitcode}) without a report")
        sent = parent.recv()
        gen.join()
        # let the last insights arrive: until all are in, or none came for settle_s
        last_n, last_t = -1, time.monotonic()
        while len(reader.latency_ns) < sent["sent"] and time.monotonic() - last_t < settle_s:
            if len(reader.latency_ns) != last_n:
                last_n, last_t = len(reader.latency_ns), time.monotonic()
            time.sleep(0.05)
    finally:
        reader.stop()
    return sent, reader


def run_variant(artifact: str, overrides: list[str], cameras: int, ues: int, rate: float | None, duration_s: float,
                fps: float, max_reports: int, settle_s: float = 3.0, endpoints: dict | None = None) -> dict:
    """One measured run: against `endpoints` (a running xApp + its Redis), or a private xApp + redis-server."""
    if endpoints is not None:
        sent, reader = _load(endpoints, endpoints["redis"], artifact, cameras, ues, rate, duration_s, fps,
                             max_reports, settle_s)
        code = None
    else:
        with tempfile.TemporaryDirectory(prefix="wmfm-bench-") as tmp, EmbeddedRedis(Path(tmp) / "redis") as srv:
            cams = {f"cam{c}": {"cells": [f"00101:{c + 1}"]} for c in range(cameras)}
            # max rate: a short queue, so the figures measure the service, not time spent queued
            hwm = "indications.rcvhwm=2000" if rate is not None else "indications.rcvhwm=16"
            ov = [f"cameras={json.dumps(cams)}", "frames.rcvhwm=64", hwm, *overrides]
            with XAppProcess(artifact, srv.url, ov, Path(tmp) / "xapp.log") as xapp:
                try:
                    before = scrape(xapp.metrics_url)
                    sent, reader = _load(xapp.endpoints, srv.url, artifact, cameras, ues, rate, duration_s, fps,
                                         max_reports, settle_s)
                    counted = metrics_delta(before, scrape(xapp.metrics_url))
                finally:
                    code = xapp.stop()
    out = _summary(sent, reader, overrides, code)
    if endpoints is None:
        out["xapp"] = counted                 # what the xApp counted, and its stage breakdown
    return out


def _summary(sent: dict, reader: Reader, overrides: list[str], code: int | None) -> dict:
    lat = np.asarray(reader.latency_ns, dtype=np.float64) / 1e6
    dl = np.asarray(reader.delivery_ns, dtype=np.float64) / 1e6
    span_s = max(1e-9, ((reader.last_ns or sent["last_send_ns"]) - sent["first_send_ns"]) / 1e9)
    received = len(lat)

    def pct(q):
        return float(np.percentile(lat, q)) if received else None
    return {"overrides": overrides, "sent": sent["sent"], "received": received, "lost": sent["sent"] - received,
            "frames_sent": sent["frames"], "offered_per_s": sent["sent"] / max(sent["send_s"], 1e-9),
            "throughput_per_s": received / span_s, "p50_ms": pct(50), "p99_ms": pct(99), "p999_ms": pct(99.9),
            "max_ms": pct(100), "exit_code": code, "generator_stalled": sent["stalled"], "_latency_ms": lat,
            "delivery_p50_ms": float(np.percentile(dl, 50)) if received else None,
            "delivery_p99_ms": float(np.percentile(dl, 99)) if received else None}



def run(artifact: str, rate: float | None, duration_s: float, ues: int, cameras: int, fps: float = 10.0,
        max_reports: int = 1_000_000, overrides: list[str] = (), baseline: bool = True, endpoints: dict | None = None,
        log=print) -> dict:
    """`endpoints` ({"indications", "frames", "redis"}): measure a running xApp (no baseline then)."""
    variants = {"wmfm": list(overrides)}
    if baseline and endpoints is None:
        variants["baseline"] = [*overrides, *BASELINE]     # the user's controls, then the naive path
    out = {"format": "wmfm-bench-xapp/1", "artifact": str(artifact), "rate": rate, "max_rate": rate is None,
           "duration_s": duration_s, "ues_per_frame": ues, "cameras": cameras, "fps": fps}
    for name, ov in variants.items():
        log(f"{name}: {'max rate' if rate is None else f'{rate:g} UE reports/s'} for {duration_s:g} s, "
            f"{cameras} camera(s) x {ues} UEs, {fps:g} fps ({' '.join(ov) or 'configured defaults'})")
        out[name] = run_variant(artifact, ov, cameras, ues, rate, duration_s, fps, max_reports, endpoints=endpoints)
    w = out["wmfm"]
    out.update({k: w[k] for k in ("throughput_per_s", "p50_ms", "p99_ms", "p999_ms", "sent", "received", "lost")})
    if "baseline" in out and out["baseline"]["throughput_per_s"]:
        out["ratio_vs_baseline"] = w["throughput_per_s"] / out["baseline"]["throughput_per_s"]
        if w["p99_ms"] and out["baseline"]["p99_ms"]:
            out["p99_ratio_baseline_over_wmfm"] = out["baseline"]["p99_ms"] / w["p99_ms"]
    return out


def _f(x) -> str:
    return f"{x:.2f}" if x is not None else "-"


def table(rep: dict) -> str:
    rows = [f"{'variant':<10}{'sent':>8}{'recv':>8}{'lost':>6}{'thr/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}"]
    for name in ("wmfm", "baseline"):
        if name in rep:
            v = rep[name]
            rows.append(f"{name:<10}{v['sent']:>8}{v['received']:>8}{v['lost']:>6}{v['throughput_per_s']:>9.0f}"
                        f"{_f(v['p50_ms']):>9}{_f(v['p99_ms']):>9}{_f(v['p999_ms']):>10}")
    if "ratio_vs_baseline" in rep:
        rows.append(f"throughput ratio vs baseline: {rep['ratio_vs_baseline']:.2f}x")
    if "xapp" in rep["wmfm"]:
        rows.append(stage_table(rep["wmfm"]["xapp"]))
    return "\n".join(rows)


def plot(rep: dict, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in ("wmfm", "baseline"):
        if name in rep and len(rep[name]["_latency_ms"]):
            lat = np.sort(rep[name]["_latency_ms"])
            ax.plot(lat, np.arange(1, len(lat) + 1) / len(lat), label=f"{name} ({rep[name]['throughput_per_s']:.0f}/s)")
    ax.set_xscale("log")
    ax.set_xlabel("end-to-end latency, ms (CSI collection -> insight read from Redis)")
    ax.set_ylabel("CDF")
    load = "max rate" if rep["max_rate"] else f"{rep['rate']:g} UE reports/s"
    ax.set_title(f"wmfm bench xapp: {load}, {rep['cameras']} cameras x {rep['ues_per_frame']} UEs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(args) -> int:
    eps = None
    if args.indications or args.frames or args.redis:
        if not (args.indications and args.frames and args.redis):
            from wmfm.config import ConfigError
            raise ConfigError("--indications, --frames and --redis: give all three to measure a running xApp")
        eps = {"indications": args.indications, "frames": args.frames, "redis": args.redis}
    rep = run(str(args.artifact), None if args.max_rate else args.rate, args.duration, args.ues_per_frame,
              args.cameras, args.fps, args.max_reports, args.set, baseline=not args.no_baseline, endpoints=eps)
    print(table(rep))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        png = plot(rep, args.out.with_suffix(".png"))
        clean = {k: ({kk: vv for kk, vv in v.items() if not kk.startswith("_")} if isinstance(v, dict) else v)
                 for k, v in rep.items()}
        args.out.write_text(json.dumps(clean, indent=2))
        print(f"wrote {args.out} and {png}")
    return 0
