"""What a replay leaves behind: the text summary, `insights.csv` (one row per insight) and the
pictures (`latency_cdf.png`; with truth: `trajectories.png` on the twin's street map and
`errors_over_time.png`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from .probe import stage_table
from .recording import Recording


def text(summary: dict) -> str:
    s, sent = summary["scores"], summary["sent"]
    bundled = f" in {sent['indications']} indications" if sent["indications"] != sent["reports"] else ""
    lines = [f"sent {sent['reports']} UE reports{bundled} + {sent['frames']} frames "
             f"(dropped by the replay {sent['dropped']}, reordered {sent['reordered']}, "
             f"frames in outage {sent['frames_in_outage']}) in {summary['send_s']:.1f} s; "
             f"insights {summary['received']}, lost {summary['lost']}, unexpected {summary['unexpected']}"]
    if summary.get("interrupted"):
        lines.append("INTERRUPTED: the figures cover what was sent before Ctrl-C")
    if summary["stalled"]:
        lines.append("STALLED: the xApp took nothing for 10 s (is it running, at these endpoints?)")
    if s.get("los_balanced_accuracy") is not None:
        lines += [f"LoS balanced accuracy {s['los_balanced_accuracy']:.4f} (accuracy {s['los_accuracy']:.4f})",
                  f"localisation error mean {s['loc_mean_error_m']:.3f} m, median {s['loc_median_error_m']:.3f} m, "
                  f"p90 {s['loc_p90_error_m']:.3f} m"]
    if s.get("insights"):
        lat = s["latency_ms"]
        lines.append(f"latency p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, max {lat['max']:.2f} ms; "
                     f"csi_only {summary['csi_only_share']:.1%}; {summary['throughput_per_s']:.0f} insights/s")
    if "xapp" in summary:
        x = summary["xapp"]
        lines.append(f"xApp counted: sync {x['sync']}, SN {x['sn_events']} (missing {x['sn_missing']}), "
                     f"decode errors {x['decode_errors']}, dropped {x['dropped']}, skipped {x['skipped']}")
        for i, inst in enumerate(summary.get("instances", [])):
            lines.append(f"  instance {i} ({inst['metrics']}): indications {inst['indications']}, frames "
                         f"{inst['frames']}, insights {sum(inst['insights'].values())}, skipped {inst['skipped']}")
        lines.append(stage_table(x))
    return "\n".join(lines)


def write_rows(rows: list[dict], path: Path) -> None:
    def xyz(v):
        return ",".join(f"{c:.3f}" for c in v) if v is not None else ",,"
    with path.open("w") as f:
        f.write("scene,t_replay_s,ue,sn,mode,los,los_pred,p_los,x,y,z,x_pred,y_pred,z_pred,error_m,latency_ms\n")
        for r in rows:
            los = "" if r["los"] is None else int(r["los"])
            err = "" if r["error_m"] is None else f"{r['error_m']:.4f}"
            f.write(f"{r['scene']},{r['t_replay_s']:.3f},{r['ue']},{r['sn']},{r['mode']},{los},"
                    f"{int(r['los_pred'])},{r['p_los']:.6f},{xyz(r['position'])},{xyz(r['position_pred'])},{err},"
                    f"{r['latency_ms']:.3f}\n")


def plots(rows: list[dict], rec: Recording, summary: dict, out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if not rows:
        return []
    paths = []
    lat = np.sort([r["latency_ms"] for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(lat, np.arange(1, len(lat) + 1) / len(lat))
    for q in (50, 99):
        v = np.percentile(lat, q)
        ax.axvline(v, color="0.5", ls=":")
        ax.text(v, 0.05 if q == 50 else 0.15, f" p{q} {v:.2f} ms", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("end-to-end latency, ms (CSI collection -> insight read back from Redis)")
    ax.set_ylabel("CDF")
    ax.set_title(f"replay of {Path(rec.scenario).name} ({rec.split}): {len(rows)} insights")
    ax.grid(True, which="both", alpha=0.3)
    paths.append(_save(fig, out / "latency_cdf.png"))
    known = [r for r in rows if r["los"] is not None]
    if known:
        paths.append(_trajectories(known, rec, out / "trajectories.png"))
        paths.append(_errors(known, summary, out / "errors_over_time.png"))
    return paths


def _trajectories(rows: list[dict], rec: Recording, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from .show import draw_map, map_limits
    fig, ax = plt.subplots(figsize=(11, 5))
    cfg, bs = draw_map(ax, rec.twin)
    ues = [u for u, _ in Counter(r["ue"] for r in rows).most_common(4)]
    for i, u in enumerate(ues):
        rs = sorted((r for r in rows if r["ue"] == u), key=lambda r: r["t_replay_s"])
        true, pred = np.array([r["position"] for r in rs]), np.array([r["position_pred"] for r in rs])
        c = f"C{i}"
        ax.plot(true[:, 0], true[:, 1], "-", color=c, lw=2, label=f"UE {u} true")
        ax.plot(pred[:, 0], pred[:, 1], "o", color=c, mfc="none", ms=4, label=f"UE {u} predicted")
        for a, b in zip(true, pred):
            ax.plot([a[0], b[0]], [a[1], b[1]], color=c, lw=0.5, alpha=0.5)
    if bs is not None:
        ax.plot(*bs[:2], "k^", ms=10, label="BS + camera")
    if cfg is not None:
        map_limits(ax, cfg)
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_title("predicted vs true positions of the UEs with the most insights")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    return _save(fig, path)


def _errors(rows: list[dict], summary: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    t = np.array([r["t_replay_s"] for r in rows])
    err = np.array([r["error_m"] for r in rows])
    csi_only = np.array([r["mode"] == "csi_only" for r in rows])
    a1.scatter(t[~csi_only], err[~csi_only], s=6, label="fused")
    a1.scatter(t[csi_only], err[csi_only], s=6, color="tab:red", label="csi_only")
    a1.set_ylabel("localisation error [m]")
    a1.legend(fontsize=8)
    a1.grid(alpha=0.3)
    wrong = np.array([r["los"] != r["los_pred"] for r in rows])
    p = np.array([r["p_los"] for r in rows])
    a2.scatter(t, p, s=6, c=["tab:green" if r["los"] else "tab:purple" for r in rows])
    a2.scatter(t[wrong], p[wrong], s=30, facecolors="none", edgecolors="k", label="wrong LoS decision")
    a2.axhline(0.5, color="0.5", ls=":")
    a2.set_ylabel("P(LoS) (green: LoS, purple: NLoS)")
    a2.set_xlabel("replay time [s]")
    a2.legend(fontsize=8)
    a2.grid(alpha=0.3)
    s = summary["scores"]
    a1.set_title(f"BA {s['los_balanced_accuracy']:.3f}, mean error {s['loc_mean_error_m']:.2f} m")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
