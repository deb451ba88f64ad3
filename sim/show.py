"""Pictures of a scenario and of a cache: `wmfm twin show` and `wmfm dataset stats`."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, NullFormatter  # noqa: E402
from PIL import Image  # noqa: E402

from wmfm.config import from_dict  # noqa: E402

from .scenario import ScenarioError, inspect, read_links  # noqa: E402


def show_scene(scenario: str | Path, scene: int, out: str | Path, bs: int = 1, n_paths: int = 4) -> Path:
    """Top-down map (buildings, lanes, vehicles, BS, UEs, their LoS or blocked ray and strongest
    reflected paths) beside the camera frame of ``scene``."""
    import scipy.io

    scenario, out = Path(scenario), Path(out)
    info = inspect(scenario, bs=bs)
    if not 0 <= scene < len(info.scenes):
        raise ScenarioError(f"--scene {scene}: the scenario has scenes 0..{len(info.scenes) - 1}")
    sdir = scenario / "wireless" / f"scene_{scene}"
    ue_file = next(sdir.glob(f"BS{bs}_UE_0-*.mat"))
    data = scipy.io.loadmat(ue_file)
    locs = np.asarray(data["rx_locs"], float)
    bs_loc = np.asarray(data["tx_loc"], float).ravel() if "tx_loc" in data else None
    links = read_links(ue_file, scenario, len(locs))

    fig, (ax, axc) = plt.subplots(1, 2, figsize=(15, 5.5), gridspec_kw={"width_ratios": [1.35, 1]})
    cfg, twin_bs = draw_map(ax, info.twin)
    if bs_loc is None:
        bs_loc = twin_bs
    if info.has_trajectory:
        tfile = scenario / "wireless" / "trajectory.mat"
        objs = scipy.io.loadmat(tfile, simplify_cells=True)["scene"][scene]["objects"]
        objs = [objs] if isinstance(objs, dict) else objs
        for k, o in enumerate(objs):
            b = np.asarray(o["bounds"], float)
            ue_obj = k < len(locs)
            ax.add_patch(Rectangle((b[0, 0], b[0, 1]), b[1, 0] - b[0, 0], b[1, 1] - b[0, 1],
                                   color="tab:orange" if ue_obj else "tab:cyan", ec="k", lw=0.5, zorder=3))
            ax.text(b[1, 0], b[1, 1], f"{b[1, 2]:.1f} m", fontsize=5, zorder=4, clip_on=True)
    if bs_loc is not None:
        ax.plot(*bs_loc[:2], "k^", ms=10, zorder=6, label="BS + camera")
    for j, loc in enumerate(locs):
        m = np.asarray(data["channels"][0][j][0][0][0], float)
        ax.plot(*loc[:2], "o", color="tab:orange", mec="k", zorder=6)
        ax.annotate(f"UE{j} {'LoS' if links.los[j] else 'NLoS'}", loc[:2], xytext=(4, 6),
                    textcoords="offset points", fontsize=8, weight="bold", zorder=7)
        if bs_loc is None:
            continue
        if not links.los[j]:
            ax.plot([bs_loc[0], loc[0]], [bs_loc[1], loc[1]], "r--", lw=1.2, zorder=5,
                    label="blocked LoS" if j == 0 else None)
        for p in range(min(n_paths, m.shape[1])):       # strongest paths, drawn from their DoD/DoA
            los_path = m[7, p] == 1
            if los_path:
                ax.plot([bs_loc[0], loc[0]], [bs_loc[1], loc[1]], color="tab:green", lw=2, zorder=5,
                        label="LoS" if j == 0 else None)
                continue
            phi_d, phi_a = np.radians(m[5, p]), np.radians(m[3, p])
            # intersection of the departure ray from the BS and the arrival ray from the UE
            a = np.array([[np.cos(phi_d), -np.cos(phi_a)], [np.sin(phi_d), -np.sin(phi_a)]])
            if abs(np.linalg.det(a)) < 1e-6:
                continue
            t = np.linalg.solve(a, loc[:2] - bs_loc[:2])
            pt = bs_loc[:2] + t[0] * np.array([np.cos(phi_d), np.sin(phi_d)])
            ax.plot([bs_loc[0], pt[0], loc[0]], [bs_loc[1], pt[1], loc[1]], color="tab:blue",
                    lw=max(0.4, 2 + (m[2, p] - m[2, 0]) / 10), alpha=0.8, zorder=4,
                    label="reflected/scattered" if j == 0 and p == 1 else None)
            ax.text(*pt, f"{m[2, p]:.0f} dBm", fontsize=6, color="tab:blue", zorder=7, clip_on=True)
    if cfg is not None:
        map_limits(ax, cfg)
    ax.set_aspect("equal")
    ax.set_xlabel("x along the road [m]")
    ax.set_ylabel("y [m]")
    ax.set_title(f"{scenario.name}, scene {scene}: top-down view (BS{bs})")
    ax.legend(loc="upper left", fontsize=7, ncol=2)
    if info.camera_id is not None:
        axc.imshow(Image.open(info.image_files[scene]))
        axc.set_title(f"camera {info.camera_id}, frame {scene}")
    axc.axis("off")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out


def draw_map(ax, twin: dict | None):
    """The twin's street (road, lanes, buildings, coverage zone) on a top-down axis, when the
    scenario was written by our twin (param/twin.json); returns (TwinConfig or None, BS xyz or None)."""
    if not twin:
        return None, None
    from .twin.generate import build_world
    from .twin.params import TwinConfig

    cfg = from_dict(TwinConfig, twin["config"], "twin")
    world = build_world(cfg, twin["seed"])
    road = cfg.road
    hl = road.length_m / 2
    ax.add_patch(Rectangle((-hl, -road.half_width_m), road.length_m, 2 * road.half_width_m, color="0.35"))
    for i in range(1, road.lanes_per_direction):
        for side in (-1, 1):
            ax.axhline(side * i * road.lane_width_m, color="w", ls=(0, (3, 6)), lw=0.8)
    ax.axhline(0, color="gold", lw=1.2)
    for b in world.buildings:
        ax.add_patch(Rectangle((b[0], b[1]), b[3] - b[0], b[4] - b[1], color="0.75", ec="0.5"))
    for k in range(cfg.n_bs):
        lo, hi = cfg.site(k).traffic.coverage_x_m
        ax.axvspan(lo, hi, color="yellow", alpha=0.07, label="coverage zone" if k == 0 else None)
        if k:
            ax.plot(*cfg.site(k).bs.position_m[:2], "^", color="0.4", ms=8, zorder=6)
            ax.annotate(f"BS{k + 1}", cfg.site(k).bs.position_m[:2], xytext=(4, -10), textcoords="offset points",
                        fontsize=7)
    return cfg, np.asarray(cfg.bs.position_m)


def map_limits(ax, cfg) -> None:
    lo = min(min(site.traffic.coverage_x_m[0], site.bs.position_m[0]) for site in map(cfg.site, range(cfg.n_bs)))
    hi = max(cfg.site(k).traffic.coverage_x_m[1] for k in range(cfg.n_bs))
    ax.set_xlim(lo - 25, hi + 25)
    ax.set_ylim(-cfg.road.facade_y_m - 8, cfg.road.facade_y_m + 8)


def dataset_stats(cache: str | Path, out: str | Path | None = None) -> tuple[dict, Path]:
    """Summary of a cache and a PNG: class balance per split, UE positions coloured by LoS,
    path counts and received powers, and the pixels a UE's vehicle covers in the model's input
    (sim/pixels.py) against its distance to the BS."""
    from wmfm.cache import SPLITS, load

    from .pixels import DISTANCE_BINS_M, ue_pixel_stats

    cache = Path(cache)
    d = load(cache)
    meta = d["meta"]
    los, pos, split = d["los"].astype(bool), d["position"], d["split"]
    summary = {
        "samples": meta["samples"], "nlos_share": meta["counts"]["nlos_share"],
        "csi_shape": meta["arrays"]["csi"]["shape"][1:], "image_size": meta["image_size"],
        "splits": {name: {"samples": int((split == k).sum()), "nlos_share": round(float(1 - los[split == k].mean()), 4)
                          if (split == k).any() else None} for k, name in enumerate(SPLITS)},
        "guard_samples": int((split < 0).sum()),
        "mean_paths": round(float(d["n_paths"].mean()), 2),
        "power_dbm": {"los_median": float(np.median(d["power_dbm"][los])) if los.any() else None,
                      "nlos_median": float(np.median(d["power_dbm"][~los])) if (~los).any() else None},
        "ue_pixels": ue_pixel_stats(meta, d.get("box"), pos),
    }
    fig = plt.figure(figsize=(18, 8))
    grid = fig.add_gridspec(2, 3)
    axs = np.array([[fig.add_subplot(grid[r, c]) for c in range(2)] for r in range(2)])
    ax = axs[0, 0]
    x = np.arange(3)
    n_los = [int((los & (split == k)).sum()) for k in range(3)]
    n_nlos = [int((~los & (split == k)).sum()) for k in range(3)]
    ax.bar(x, n_los, label="LoS", color="tab:green")
    ax.bar(x, n_nlos, bottom=n_los, label="NLoS", color="tab:red")
    ax.set_xticks(x, SPLITS)
    ax.set_title(f"class balance per split (NLoS {summary['nlos_share']:.0%} overall)")
    ax.legend()
    ax = axs[0, 1]
    ax.scatter(pos[los, 0], pos[los, 1], s=3, c="tab:green", label="LoS")
    ax.scatter(pos[~los, 0], pos[~los, 1], s=3, c="tab:red", label="NLoS")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_title("UE positions")
    ax.legend(markerscale=4)
    ax = axs[1, 0]
    bins = np.arange(d["n_paths"].max() + 2) - 0.5
    ax.hist([d["n_paths"][los], d["n_paths"][~los]], bins=bins, label=["LoS", "NLoS"],
            color=["tab:green", "tab:red"], stacked=True)
    ax.set_xlabel("paths per UE")
    ax.set_title("path count")
    ax.legend()
    ax = axs[1, 1]
    ax.hist([d["power_dbm"][los], d["power_dbm"][~los]], bins=40, label=["LoS", "NLoS"],
            color=["tab:green", "tab:red"], alpha=0.7, histtype="stepfilled")
    ax.set_xlabel("total received power [dBm] (0 dBm transmitted)")
    ax.set_title("received power")
    ax.legend()
    _pixels_panel(fig.add_subplot(grid[:, 2]), summary["ue_pixels"], DISTANCE_BINS_M)
    fig.suptitle(f"cache {cache.name}: {meta['samples']} samples from {Path(meta['source']['scenario']).name}")
    fig.tight_layout()
    out = Path(out) if out else cache / "stats.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    (out.with_suffix(".json")).write_text(json.dumps(summary, indent=2))
    return summary, out


def _pixels_panel(ax, px: dict, edges) -> None:
    """Median visible width of a UE's vehicle [input px] per distance bin, one line per input size."""
    ax.set_title("UE vehicle width in the model input")
    if "unavailable" in px or not isinstance(px["by_distance_m"], dict):
        ax.text(0.5, 0.5, px.get("unavailable") or px["by_distance_m"], ha="center", va="center",
                wrap=True, transform=ax.transAxes, fontsize=9)
        ax.set_axis_off()
        return
    names = list(px["by_distance_m"])
    x = [(a + (b if np.isfinite(b) else a + 20)) / 2 for a, b in zip(edges[:-1], edges[1:])]
    seen = []
    for size, entry in px["input_sizes"].items():
        y = [entry["by_distance_m"][n]["median_width_px"] for n in names]
        seen += [v for v in y if v]
        ax.plot(x, [np.nan if v is None else v for v in y], "o-",
                label=f"{size}{' (cache)' if size == px['cache_input_size'] else ''}")
    ax.set_xticks(x, [f"{n} m" for n in names])
    ax.set_yscale("log")
    if seen:                                  # powers of two spanning the lines
        lo, hi = np.floor(np.log2(min(seen))), np.ceil(np.log2(max(seen)))
        ax.set_yticks(2.0 ** np.arange(lo, hi + 1))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("distance UE - BS")
    ax.set_ylabel("median visible width [input px]")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="input H x W")
