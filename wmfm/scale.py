"""`wmfm scale` (`make scale`): horizontal scaling shown on one machine, with its figures.

    the demo's artifact and twin (trained first if absent, as `wmfm demo` does)
    for each variant, in one run (the single instance is the baseline of the ratios):
        embedded redis-server (shared) + N xApp child processes (loopback)
        -> `wmfm replay` of the test split, looped at max rate for `duration_s`, into all of them
        -> exactly once? (each (UE, SN) read back from the shared stream once: lost, unexpected),
           combined throughput, latency, per-instance split (from each instance's metrics)
    -> scale.json + scale.png

Variants: 1 instance; 2 instances by ZeroMQ PUSH round-robin (`scaling.round_robin`); 2 instances
by cell sharding (the UEs spread over two cells, cell i routed to instance i, `scaling.cells`);
2 instances that connect to the replay, which binds (a PUSH dealing out the indications, a PUB
giving each every frame: the pattern that lets Kubernetes add replicas without telling the sender).
Each instance receives every camera frame (the twin has one camera that sees both cells), so
frame decoding and embedding are repeated per instance: that work does not scale out, the CSI
and head work does. On a 2-core machine the instances, the replay and Redis share the cores:
the figures say what this host does, not what a node with a core per instance would do.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import tempfile
from pathlib import Path

CELLS = ("00101:1", "00101:2")
VARIANTS = (("1 instance", 1, "round_robin", False), ("2 instances, round-robin", 2, "round_robin", False),
            ("2 instances, cell sharding", 2, "cell", False), ("2 instances connect to it", 2, "round_robin", True))


def _cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) used so far by process `pid` (Linux /proc), or by this one."""
    if pid is None:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident set so far (Linux /proc VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _variant(art, rec, name: str, n: int, route: str, bind: bool, duration_s: float, out: Path, progress: bool,
             log) -> dict:
    from wmfm.demo import xapp_overrides
    from wmfm.sim import replay
    from wmfm.sim.player import ReplayConfig
    from wmfm.sim.spawn import XAppProcess, free_port
    from wmfm.xapp.redis_server import EmbeddedRedis

    base = xapp_overrides(rec)                           # as `wmfm demo` runs its xApp
    cells = CELLS if route == "cell" else CELLS[:1]
    per = [[f"scaling.cells={json.dumps([cells[i]])}"] if route == "cell" else
           (["scaling.round_robin=true"] if n > 1 else []) for i in range(n)]
    ind_ep = frame_ep = None
    if bind:                                             # the replay binds, the xApps connect to it
        ind_ep, frame_ep = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
        base += [f"indications.endpoint={ind_ep}", "indications.mode=connect", f"frames.endpoint={frame_ep}",
                 "frames.mode=connect", "frames.pattern=sub"]
    cfg = ReplayConfig(max_rate=True, loop=True, duration_s=duration_s, cells=cells, route=route, bind=bind,
                              peers=n)
    with tempfile.TemporaryDirectory(prefix="wmfm-scale-") as tmp, EmbeddedRedis(Path(tmp) / "redis") as srv, \
            contextlib.ExitStack() as stack:
        procs = []
        try:
            for i in range(n):                           # the stack closes their logs at the end
                procs.append(stack.enter_context(XAppProcess(
                    art.root, srv.url, base + per[i], out / f"xapp-{n}-{route}{'-bind' if bind else ''}-{i}.log")))
            log(f"{name:<28} {n} xApp(s) up; replay at max rate for {duration_s:g} s")
            pids = [p.proc.pid for p in procs] + [srv.proc.pid, None]
            cpu0 = [_cpu_s(pid) for pid in pids]
            s = replay.replay(rec, ind_ep or [p.endpoints["indications"] for p in procs],
                              frame_ep or [p.endpoints["frames"] for p in procs], srv.url, cfg,
                              metrics_url=",".join(p.metrics_url for p in procs), progress=progress)
            cpu = [_cpu_s(pid) - c0 for pid, c0 in zip(pids, cpu0)]
            rss = [_peak_rss_mb(p.proc.pid) for p in procs]
        finally:
            codes = [p.stop() for p in procs]
    lat = s["scores"].get("latency_ms", {})
    insts = s.get("instances", [{"metrics": procs[0].metrics_url} | s["xapp"]])
    return {"variant": name, "instances": n, "route": route, "bind": bind, "cells": list(cells),
            "sent": s["sent"]["reports"], "received": s["received"], "lost": s["lost"],
            "unexpected": s["unexpected"], "exactly_once": s["lost"] == 0 and s["unexpected"] == 0,
            "throughput_per_s": s["throughput_per_s"], "latency_p50_ms": lat.get("p50"),
            "latency_p99_ms": lat.get("p99"), "csi_only_share": s["csi_only_share"],
            "los_balanced_accuracy": s["scores"].get("los_balanced_accuracy"),
            "per_instance_insights": [sum(i["insights"].values()) for i in insts],
            "frames_sent": s["sent"]["frames"], "per_instance_frames": [i["frames"] for i in insts],
            "skipped": s["xapp"]["skipped"], "sn_events": s["xapp"]["sn_events"], "xapp_exit_codes": codes,
            "wall_s": s["wall_s"], "cpu_s": {"xapps": cpu[:n], "redis": cpu[n], "replay": cpu[n + 1]},
            "xapp_peak_rss_mb": rss,
            "insights_per_xapp_cpu_s": s["received"] / max(sum(cpu[:n]), 1e-9)}


def run(out: str | Path = ".cache/scale", demo: str | Path = ".cache/demo", duration_s: float = 20.0,
        progress: bool = True, log=print) -> dict:
    from wmfm.demo import _artifact
    from wmfm.sim import recording
    out, demo = Path(out), Path(demo)
    out.mkdir(parents=True, exist_ok=True)
    art = _artifact(demo, progress, log)
    rec = recording.load(demo / "data" / "twin", "test", demo / "data" / "cache", progress=progress)
    rows = [_variant(art, rec, *v, duration_s, out, progress, log) for v in VARIANTS]
    for r in rows:                                       # None: the baseline delivered nothing
        base = rows[0]["throughput_per_s"]
        r["throughput_vs_1"] = r["throughput_per_s"] / base if base else None
    result = {"format": "wmfm-scale/1", "artifact": str(art.root), "model": art.version,
              "scenario": str(demo / "data" / "twin"), "duration_s": duration_s, "variants": rows}
    (out / "scale.json").write_text(json.dumps(result, indent=2, default=float))
    _plot(rows, out / "scale.png")
    log(table(rows))
    log(f"wrote     {out / 'scale.json'}, {out / 'scale.png'}")
    return result


def table(rows: list[dict]) -> str:
    lines = [f"{'variant':<28}{'sent':>7}{'recv':>7}{'lost':>5}{'dup':>4}{'UE/s':>7}{'x1':>6}{'csi_only':>9}"
             f"{'xApp CPU s':>12}{'UE/CPU s':>9}{'replay':>7}{'redis':>6}  insights, frames taken/sent per instance"]
    for r in rows:
        c = r["cpu_s"]
        lines.append(f"{r['variant']:<28}{r['sent']:>7}{r['received']:>7}{r['lost']:>5}{r['unexpected']:>4}"
                     f"{r['throughput_per_s']:>7.0f}{r['throughput_vs_1'] or float('nan'):>6.2f}"
                     f"{r['csi_only_share'] or 0:>9.1%}"
                     f"{'+'.join(f'{v:.1f}' for v in c['xapps']):>12}{r['insights_per_xapp_cpu_s']:>9.0f}"
                     f"{c['replay']:>7.1f}{c['redis']:>6.1f}  {r['per_instance_insights']}, "
                     f"{'/'.join(map(str, r['per_instance_frames']))} of {r['frames_sent']}")
    lines.append("(max rate: latency is queueing, see scale.json; CPU s: over the run, all processes share this "
                 "host's cores; frames taken: by the end of the run)")
    return "\n".join(lines)


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4))
    for k, r in enumerate(rows):
        bottom = 0.0
        total = sum(r["per_instance_insights"]) or 1
        for i, n in enumerate(r["per_instance_insights"]):     # each instance's share of the throughput
            v = r["throughput_per_s"] * n / total
            ax.bar(k, v, bottom=bottom, color=f"C{i}", label=f"instance {i}" if k == len(rows) - 1 else None)
            bottom += v
        ax.text(k, bottom, f"{r['throughput_per_s']:.0f}/s\np99 {r['latency_p99_ms'] or 0:.0f} ms",
                ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(rows)), [r["variant"] for r in rows], fontsize=8)
    ax.set_ylabel("insights per second (max rate)")
    ax.set_title("combined throughput, every insight exactly once" if all(r["exactly_once"] for r in rows)
                 else "combined throughput (NOT exactly once: see scale.json)")
    ax.legend(fontsize=8)
    ax.set_ylim(0, max(1.0, *(r["throughput_per_s"] for r in rows)) * 1.25)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
