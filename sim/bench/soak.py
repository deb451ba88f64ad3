"""`wmfm bench soak`: the xApp under a steady load for a long time: is its memory flat and its
latency steady?

Starts a private redis-server and the xApp (as `wmfm bench xapp` does) and replays the synthetic
load (loadgen.py: `rate` UE reports/s from `cameras` JPEG cameras) in a loop for `duration`
seconds: the replay's own player and scorer, as `wmfm replay --loop --duration` runs them. Every
`interval` seconds a sampler reads the xApp process: resident memory (VmRSS, /proc), CPU time,
and from its metrics endpoint the queues (UEs waiting for inference and for a frame, insights
waiting for Redis) and the counters. Latency per interval comes from the insights read back in
it (arrival at the reader - CSI collection time, as the replay measures; and up to the xApp's
Redis write, `publish_p99_ms`). The report: memory
slope after the warm-up (least squares, MiB per hour) with its first and last values, p50/p99
per interval and their drift, totals (sent, received, lost).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from wmfm.xapp.redis_server import EmbeddedRedis

from wmfm.artifact import Artifact

from .. import loadgen, probe
from ..player import ReplayConfig
from ..replay import replay
from ..spawn import XAppProcess
from . import save

LOOP_S = 60.0                   # the synthetic load is this long, played again and again
GAUGES = {"wmfm_queue_depth": "queue", "wmfm_sync_waiting": "sync_waiting", "wmfm_redis_buffer_depth": "redis_buffer"}


def _proc(pid: int) -> tuple[float, float]:
    """(resident MiB, CPU seconds) of a process, from /proc."""
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:")) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """Every `interval` s: the xApp's memory, CPU and queues (and the redis-server's memory)."""

    def __init__(self, pid: int, redis_pid: int, metrics_url: str, interval: float):
        super().__init__(name="wmfm-soak-sampler", daemon=True)
        self.pid, self.redis_pid, self.url, self.interval = pid, redis_pid, metrics_url, interval
        self.samples: list[dict] = []
        self.stop_flag = threading.Event()
        self.t0 = time.monotonic()

    def sample(self) -> None:
        rss, cpu = _proc(self.pid)
        s = {"t_s": round(time.monotonic() - self.t0, 1), "wall_ns": time.time_ns(), "rss_mib": round(rss, 1),
             "cpu_s": cpu, "redis_rss_mib": round(_proc(self.redis_pid)[0], 1)}
        try:
            m = probe.scrape(self.url)
        except Exception as exc:  # noqa: BLE001 - a missed scrape is recorded, the soak goes on
            s["scrape_error"] = str(exc)
        else:
            for name, key in GAUGES.items():
                s[key] = m.get((name, frozenset()), 0.0)
            s["insights"] = sum(v for (n, _), v in m.items() if n == "wmfm_insights_total")
            s["dropped"] = sum(v for (n, _), v in m.items() if n == "wmfm_dropped_total")
            s["decode_errors"] = sum(v for (n, _), v in m.items() if n == "wmfm_decode_errors_total")
        self.samples.append(s)

    def run(self) -> None:
        self.sample()
        while not self.stop_flag.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self.stop_flag.set()
        self.join(timeout=10)
        self.sample()                                       # the last one, after the load


def slope_mib_per_h(samples: list[dict], warmup_s: float) -> float | None:
    """Least-squares slope of the resident memory after the warm-up, MiB per hour."""
    pts = [(s["t_s"], s["rss_mib"]) for s in samples if s["t_s"] >= warmup_s]
    if len(pts) < 3:
        return None
    t, y = np.array(pts).T
    return float(np.polyfit(t / 3600, y, 1)[0])


def intervals(rows: list[dict], t0_ns: int, interval: float) -> list[dict]:
    """Latency of the insights read back in each interval (by arrival time)."""
    if not rows:
        return []
    arr = np.array([r["arrival_ns"] for r in rows], np.int64)
    lat = np.array([r["latency_ms"] for r in rows])
    pub = np.array([r["publish_latency_ms"] for r in rows])          # up to the Redis write (the xApp's part)
    fused = np.array([r["mode"] == "fused" for r in rows])
    k = ((arr - t0_ns) / 1e9 // interval).astype(int)
    out = []
    for i in range(int(k.max()) + 1):
        sel = k == i
        if sel.any():
            out.append({"t_s": i * interval, "insights": int(sel.sum()),
                        "p50_ms": float(np.percentile(lat[sel], 50)), "p99_ms": float(np.percentile(lat[sel], 99)),
                        "max_ms": float(lat[sel].max()), "publish_p99_ms": float(np.percentile(pub[sel], 99)),
                        "fused_share": float(fused[sel].mean())})
    return out


def run(artifact: str | Path, rate: float, duration_s: float, interval_s: float, ues: int, cameras: int,
        fps: float, camera_size: tuple[int, int], overrides: list[str] = (), warmup_s: float = 300.0,
        progress: bool = False) -> dict:
    art = Artifact.load(artifact)
    rec = loadgen.recording(art, cameras, ues, rate, fps, min(LOOP_S, duration_s), camera_size)
    cfg = ReplayConfig(loop=True, duration_s=duration_s, bundle=True, cells=rec.cells, settle_s=5.0)
    with tempfile.TemporaryDirectory(prefix="wmfm-soak-") as tmp, EmbeddedRedis(Path(tmp) / "redis") as srv:
        ov = [f"cameras={json.dumps(rec.cameras_control())}", *overrides]
        with XAppProcess(art.root, srv.url, ov, Path(tmp) / "xapp.log") as xapp:
            sampler = Sampler(xapp.proc.pid, srv.proc.pid, xapp.metrics_url, interval_s)
            sampler.start()
            t0 = time.time_ns()
            try:
                s = replay(rec, xapp.endpoints["indications"], xapp.endpoints["frames"], srv.url, cfg,
                           metrics_url=xapp.metrics_url, progress=progress)
            finally:
                sampler.stop()
                code = xapp.stop(timeout_s=60)
    per = intervals(s["_rows"], t0, interval_s)
    p99 = [p["p99_ms"] for p in per]
    half = len(p99) // 2
    return {"format": "wmfm-bench-soak/1", "artifact": str(artifact), "model": art.version,
            "load": {"rate": rate, "ues_per_frame": ues, "cameras": cameras, "fps": fps,
                     "frame_size": list(camera_size), "loop_s": min(LOOP_S, duration_s), "overrides": list(overrides)},
            "duration_s": duration_s, "interval_s": interval_s, "warmup_s": warmup_s,
            "sent": s["sent"]["reports"], "received": s["received"], "lost": s["lost"],
            "unexpected": s["unexpected"], "throughput_per_s": s["throughput_per_s"],
            "latency_ms": s["scores"].get("latency_ms"), "fused_share": 1 - (s["csi_only_share"] or 0.0),
            "xapp_exit_code": code,
            "memory": {"slope_mib_per_h": slope_mib_per_h(sampler.samples, warmup_s),
                       "first_mib": sampler.samples[0]["rss_mib"],
                       "after_warmup_mib": next((x["rss_mib"] for x in sampler.samples if x["t_s"] >= warmup_s), None),
                       "last_mib": sampler.samples[-1]["rss_mib"],
                       "max_mib": max(x["rss_mib"] for x in sampler.samples)},
            "p99_ms": {"first_half_median": float(np.median(p99[:half])) if half else None,
                       "second_half_median": float(np.median(p99[half:])) if p99 else None,
                       "max": max(p99) if p99 else None},
            "samples": sampler.samples, "intervals": per,
            "xapp": {k: v for k, v in s.get("xapp", {}).items() if k in ("frames", "cpu_s", "decode_errors")}}


def plot(rep: dict, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    t = [s["t_s"] / 60 for s in rep["samples"]]
    a.plot(t, [s["rss_mib"] for s in rep["samples"]], label="xApp resident memory")
    a.plot(t, [s["redis_rss_mib"] for s in rep["samples"]], label="redis-server", alpha=0.7)
    a.axvline(rep["warmup_s"] / 60, color="grey", ls=":", lw=1)
    slope = rep["memory"]["slope_mib_per_h"]
    a.set_ylabel("MiB")
    a.set_title(f"wmfm bench soak: {rep['load']['rate']:g} UE reports/s, {rep['load']['cameras']} cameras "
                f"{rep['load']['frame_size'][0]}x{rep['load']['frame_size'][1]} {rep['load']['fps']:g} fps, "
                f"{rep['duration_s'] / 60:.0f} min\nxApp memory slope after the warm-up (dotted) "
                f"{'-' if slope is None else f'{slope:+.2f}'} MiB/h", fontsize=8)
    a.legend(fontsize=8)
    a.grid(alpha=0.3)
    m = [p["t_s"] / 60 for p in rep["intervals"]]
    b.plot(m, [p["p99_ms"] for p in rep["intervals"]], marker=".", label="p99")
    b.plot(m, [p["p50_ms"] for p in rep["intervals"]], marker=".", label="p50")
    b.set_yscale("log")
    b.set_ylabel(f"latency per {rep['interval_s']:g} s, ms")
    b.set_xlabel("minutes")
    c = b.twinx()                   # the same load every interval: CPU time shows how fast the host ran
    steps = [(x, y) for x, y in zip(rep["samples"], rep["samples"][1:]) if y["t_s"] - x["t_s"] > rep["interval_s"] / 2]
    c.plot([y["t_s"] / 60 for _, y in steps], [(y["cpu_s"] - x["cpu_s"]) / (y["t_s"] - x["t_s"]) for x, y in steps],
           color="grey", lw=1, alpha=0.6, label="xApp CPU, cores (right)")
    c.set_ylim(bottom=0)
    c.set_ylabel("xApp CPU, cores")
    lines = b.get_legend_handles_labels()[0] + c.get_legend_handles_labels()[0]
    b.legend(lines, [h.get_label() for h in lines], fontsize=8, loc="upper left")
    b.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ms(x: float | None) -> str:
    """A figure (ms or MiB) to one decimal, or - when there is none."""
    return "-" if x is None else f"{x:.1f}"


def main(args) -> int:
    rep = run(args.artifact, args.rate, args.duration, args.interval, args.ues_per_frame, args.cameras, args.fps,
              args.camera_size, args.set, warmup_s=min(args.warmup, args.duration / 2), progress=not args.quiet)
    mem, p99 = rep["memory"], rep["p99_ms"]
    print(f"sent {rep['sent']}  received {rep['received']}  lost {rep['lost']}  "
          f"throughput {rep['throughput_per_s']:.0f}/s  fused {rep['fused_share']:.1%}  "
          f"xApp exit {rep['xapp_exit_code']}")
    slope = mem["slope_mib_per_h"]
    print(f"xApp memory: {mem['first_mib']:.0f} MiB at start, {_ms(mem['after_warmup_mib'])} after warm-up, "
          f"{mem['last_mib']:.0f} at the end (max {mem['max_mib']:.0f}); slope after warm-up "
          f"{'-' if slope is None else f'{slope:+.2f}'} MiB/h")
    print(f"p99 per {rep['interval_s']:g} s: median {_ms(p99['first_half_median'])} ms (first half), "
          f"{_ms(p99['second_half_median'])} ms (second half), max {_ms(p99['max'])} ms")
    if args.out:
        save(rep, args.out, plot)
    return 0 if rep["xapp_exit_code"] == 0 else 1
