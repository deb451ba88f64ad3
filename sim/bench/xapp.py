"""`wmfm bench xapp`: the whole service under load, against a naive baseline, in one run.

For each variant (wmfm: the configured backend, micro-batching, frame conflation and
frame-embedding reuse; `--also` variants: the same with some controls changed; baseline: torch
eager, batch 1, every UE embeds its frame again, every frame decoded) it starts a private
redis-server and the xApp (`python -m wmfm.xapp`, loopback endpoints) and replays a synthetic
load into it (loadgen.py: cameras x UEs per frame at a rate, or as fast as the xApp takes
them), read back by the replay's scorer: end-to-end latency = the insight read back from Redis
- the CSI collection time (same host clock), so decode, sync, batching, inference, the Redis
write and the delivery are all in it. Reports sustained throughput, p50/p99/p99.9 latency,
sent/received/lost, the fused share, camera frames decoded / superseded per camera, the frame
worker's CPU time per frame, the xApp's CPU seconds per 1000 insights, its stage breakdown (its
metrics endpoint) and the ratios.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from wmfm.xapp.redis_server import EmbeddedRedis

from wmfm.artifact import Artifact
from wmfm.config import ConfigError

from .. import loadgen
from ..player import ReplayConfig
from ..probe import stage_table
from ..replay import replay
from ..spawn import XAppProcess
from . import save

BASELINE = ["backend.name=torch", "batch.max_batch=1", "batch.reuse_frames=false", "frame_worker.conflate=false"]


def run_variant(art: Artifact, rec, overrides: list[str], max_rate: bool, duration_s: float, count: int | None,
                endpoints: dict | None = None, progress: bool = False) -> dict:
    """One measured run: against `endpoints` (a running xApp + its Redis), or a private xApp + redis-server."""
    encoding = "e2ap" if "indications.encoding=e2ap" in overrides else "protobuf"    # the sender follows the xApp
    cfg = ReplayConfig(max_rate=max_rate, loop=max_rate, duration_s=duration_s, count=count, bundle=True,
                       cells=rec.cells, settle_s=3.0, encoding=encoding)
    if endpoints is not None:
        s = replay(rec, endpoints["indications"], endpoints["frames"], endpoints["redis"], cfg, progress=progress)
        return _summary(s, overrides, None)
    with tempfile.TemporaryDirectory(prefix="wmfm-bench-") as tmp, EmbeddedRedis(Path(tmp) / "redis") as srv:
        # max rate: a short queue, so the figures measure the service, not time spent queued
        hwm = "indications.rcvhwm=16" if max_rate else "indications.rcvhwm=2000"
        ov = [f"cameras={json.dumps(rec.cameras_control())}", "frames.rcvhwm=64", hwm, *overrides]
        with XAppProcess(art.root, srv.url, ov, Path(tmp) / "xapp.log") as xapp:
            try:
                s = replay(rec, xapp.endpoints["indications"], xapp.endpoints["frames"], srv.url, cfg,
                           metrics_url=xapp.metrics_url, progress=progress)
            finally:
                code = xapp.stop()
    return _summary(s, overrides, code)


def _summary(s: dict, overrides: list[str], code: int | None) -> dict:
    lat = s["scores"].get("latency_ms", {})                                  # the replay's own percentiles
    dl = np.array([r["latency_ms"] - r["publish_latency_ms"] for r in s["_rows"]])   # Redis write + delivery

    def pct(a, q):
        return float(np.percentile(a, q)) if len(a) else None
    out = {"overrides": overrides, "sent": s["sent"]["reports"], "indications": s["sent"]["indications"],
           "fused_share": None if s["csi_only_share"] is None else 1 - s["csi_only_share"],
           "received": s["received"], "lost": s["lost"], "frames_sent": s["sent"]["frames"],
           "offered_per_s": s["sent"]["reports"] / max(s["send_s"], 1e-9), "throughput_per_s": s["throughput_per_s"],
           "p50_ms": lat.get("p50"), "p99_ms": lat.get("p99"), "p999_ms": lat.get("p999"), "max_ms": lat.get("max"),
           "csi_only_share": s["csi_only_share"], "exit_code": code, "stalled": s["stalled"],
           "delivery_p50_ms": pct(dl, 50), "delivery_p99_ms": pct(dl, 99),
           "_latency_ms": np.array([r["latency_ms"] for r in s["_rows"]])}
    if "xapp" in s:
        x = out["xapp"] = s["xapp"]            # what the xApp counted, and its stage breakdown
        decoded = sum(c.get("decoded", 0) for c in x["frames_by_camera"].values())
        out["frames"] = {"received": x["frames"], "decoded": decoded,
                         "superseded": sum(c.get("superseded", 0) for c in x["frames_by_camera"].values()),
                         "by_camera": x["frames_by_camera"],
                         "worker_cpu_ms_per_frame": 1e3 * x["frame_worker_cpu_s"] / max(1, x["frames"]),
                         "worker_cpu_ms_per_decoded": 1e3 * x["frame_worker_cpu_s"] / max(1, decoded)}
        out["cpu_s_per_1000_insights"] = 1e3 * x["cpu_s"] / max(1, s["received"])
        out["cpu_s"] = x["cpu_s"]
    return out


def run(artifact: str | Path, rate: float, max_rate: bool, duration_s: float, ues: int, cameras: int,
        fps: float = 30.0, count: int | None = None, overrides: list[str] = (), baseline: bool = True,
        endpoints: dict | None = None, progress: bool = False, log=print,
        camera_size: tuple[int, int] = loadgen.FRAME_SIZE, also: list[str] = ()) -> dict:
    """`endpoints` ({"indications", "frames", "redis"}): measure a running xApp (no baseline then).
    Max rate plays the load of `rate` (its mix of frames and reports) as fast as the xApp takes it.
    `also`: more variants in the same run, each "KEY=VALUE[,KEY=VALUE...]" on top of `overrides`."""
    art = Artifact.load(artifact)
    rec = loadgen.recording(art, cameras, ues, rate, fps, duration_s, camera_size)
    variants = {"wmfm": list(overrides)}
    if endpoints is None:
        for a in also:
            variants[f"wmfm {a}"] = [*overrides, *a.split(",")]
        if baseline:
            variants["baseline"] = [*overrides, *BASELINE]     # the user's controls, then the naive path
    out = {"format": "wmfm-bench-xapp/3", "artifact": str(artifact), "model": art.version,
           "parameters": art.manifest["model"].get("parameters"),
           "random_init": bool(art.manifest.get("checkpoint_meta", {}).get("random_init")),
           "rate": rate, "max_rate": max_rate, "duration_s": duration_s, "ues_per_frame": ues, "cameras": cameras,
           "fps": fps, "frame_size": list(camera_size), "jpeg_quality": loadgen.QUALITY,
           "jpeg_kb": round(float(np.mean([len(s.frame) for s in rec.scenes if s.frame])) / 1024, 1),
           "variants": {}}
    for name, ov in variants.items():
        log(f"{name}: {'max rate' if max_rate else 'real time'}, {rate:g} UE reports/s load for {duration_s:g} s, "
            f"{cameras} camera(s) {camera_size[0]}x{camera_size[1]} at {fps:g} fps x {ues} UEs "
            f"({' '.join(ov) or 'configured defaults'})")
        out["variants"][name] = run_variant(art, rec, ov, max_rate, duration_s, count, endpoints, progress)
    out["decode"] = decode_cost(art, ues)
    w = out["variants"]["wmfm"]
    out.update({k: w[k] for k in ("throughput_per_s", "p50_ms", "p99_ms", "p999_ms", "sent", "received", "lost",
                                  "fused_share")})
    base = out["variants"].get("baseline")
    if base and base["throughput_per_s"]:
        out["ratio_vs_baseline"] = w["throughput_per_s"] / base["throughput_per_s"]
        if w["p99_ms"] and base["p99_ms"]:
            out["p99_ratio_baseline_over_wmfm"] = base["p99_ms"] / w["p99_ms"]
    return out


def decode_cost(art: Artifact, ues: int, rounds: int = 300) -> dict:
    """The codec's time per indication of the load's shape (`ues` UEs, the model's CSI, complex64), for
    each `indications.encoding`, interleaved round by round in this process (the decode alone, as the
    xApp's loop runs it; its `decode` stage also holds the socket read)."""
    import time

    from wmfm.xapp.codec import Limits, decode_indication, encode_indication
    from wmfm.xapp.e2ap import decode_e2ap_indication, encode_e2ap_indication
    mc = art.manifest["model_config"]
    lim = Limits(mc["n_ant"], mc["n_sc"], tuple(mc["image_size"]))
    rng = np.random.default_rng(0)
    reports = [(u, rng.standard_normal((2, mc["n_ant"], mc["n_sc"])).astype(np.float32)) for u in range(ues)]
    now = time.time_ns()
    paths = {"protobuf": (encode_indication, decode_indication), "e2ap": (encode_e2ap_indication,
                                                                         decode_e2ap_indication)}
    bufs = {name: enc("gnb1", 1, now, reports) for name, (enc, _) in paths.items()}
    times = {name: [] for name in paths}
    for k in range(rounds + 20):                        # the first 20 rounds warm up
        for name, (_, dec) in paths.items():
            t0 = time.perf_counter()
            dec(bufs[name], lim, now)
            if k >= 20:
                times[name].append(time.perf_counter() - t0)
    out = {name: {"bytes": len(bufs[name]), "p50_us": float(np.percentile(t, 50)) * 1e6,
                  "p99_us": float(np.percentile(t, 99)) * 1e6} for name, t in times.items()}
    out["ues"] = ues
    out["e2ap_over_protobuf_p50"] = out["e2ap"]["p50_us"] / out["protobuf"]["p50_us"]
    return out


def _f(x, fmt: str = ".2f") -> str:
    return format(x, fmt) if x is not None else "-"


def table(rep: dict) -> str:
    w = max(10, *(len(n) + 2 for n in rep["variants"]))
    rows = [f"{'variant':<{w}}{'sent':>8}{'recv':>8}{'lost':>6}{'thr/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}"
            f"{'fused':>8}{'frames dec/sup':>16}{'frame cpu ms':>14}{'cpu s/1k':>10}"]
    for name, v in rep["variants"].items():
        fr = v.get("frames") or {}
        frames = f"{fr['decoded']}/{fr['superseded']}" if fr else "-"
        rows.append(f"{name:<{w}}{v['sent']:>8}{v['received']:>8}{v['lost']:>6}{v['throughput_per_s']:>9.0f}"
                    f"{_f(v['p50_ms']):>9}{_f(v['p99_ms']):>9}{_f(v['p999_ms']):>10}{_f(v['fused_share'], '.1%'):>8}"
                    f"{frames:>16}{_f(fr.get('worker_cpu_ms_per_decoded')):>14}"
                    f"{_f(v.get('cpu_s_per_1000_insights')):>10}")
    if "ratio_vs_baseline" in rep:
        rows.append(f"throughput ratio vs baseline: {rep['ratio_vs_baseline']:.2f}x")
    if "decode" in rep:
        d = rep["decode"]
        rows.append(f"decode per indication of {d['ues']} UEs: protobuf {d['protobuf']['p50_us']:.0f} us p50 "
                    f"({d['protobuf']['bytes']} B), E2AP {d['e2ap']['p50_us']:.0f} us p50 ({d['e2ap']['bytes']} B): "
                    f"{d['e2ap_over_protobuf_p50']:.1f}x")
    rows.append("frames dec/sup: decoded / superseded (dropped unread); frame cpu ms: the frame worker's CPU time "
                "per decoded frame; cpu s/1k: the xApp's CPU seconds per 1000 insights")
    for name, v in rep["variants"].items():
        if "xapp" in v and name != "baseline":
            rows += [f"[{name}]", stage_table(v["xapp"])]
    return "\n".join(rows)


def plot(rep: dict, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, v in rep["variants"].items():
        if len(v["_latency_ms"]):
            lat = np.sort(v["_latency_ms"])
            ax.plot(lat, np.arange(1, len(lat) + 1) / len(lat),
                    label=f"{name} ({v['throughput_per_s']:.0f}/s, fused {_f(v['fused_share'], '.0%')})")
    ax.set_xscale("log")
    ax.set_xlabel("end-to-end latency, ms (CSI collection -> insight read from Redis)")
    ax.set_ylabel("CDF")
    load = f"max rate ({rep['rate']:g}/s mix)" if rep["max_rate"] else f"{rep['rate']:g} UE reports/s"
    (fw, fh) = rep["frame_size"]
    ax.set_title(f"wmfm bench xapp: {load}, {rep['cameras']} cameras {fw}x{fh} {rep['fps']:g} fps "
                 f"x {rep['ues_per_frame']} UEs", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(args) -> int:
    eps = None
    if args.indications or args.frames or args.redis:
        if not (args.indications and args.frames and args.redis):
            raise ConfigError("--indications, --frames and --redis: give all three to measure a running xApp")
        eps = {"indications": args.indications, "frames": args.frames, "redis": args.redis}
        if args.also:
            raise ConfigError("--also: variants run their own xApp; a running one (--indications) has its controls")
    rep = run(args.artifact, args.rate, args.max_rate, args.duration, args.ues_per_frame, args.cameras, args.fps,
              args.count, args.set, baseline=not args.no_baseline, endpoints=eps, progress=not args.quiet,
              camera_size=args.camera_size, also=args.also)
    print(table(rep))
    if args.out:                                   # the per-insight latencies (`_latency_ms`) only in the chart
        clean = rep | {"variants": {n: {k: x for k, x in v.items() if not k.startswith("_")}
                                    for n, v in rep["variants"].items()}}
        save(clean, args.out, lambda _, png: plot(rep, png))
    return 0
