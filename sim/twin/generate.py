"""`wmfm twin generate`: simulate traffic, trace the paths of each UE, render the camera and
write everything in the DeepVerse6G format."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .camera import Renderer
from .params import TwinConfig
from .propagation import KIND_NAMES, Tracer
from .world import Traffic, Vehicles, World
from .writer import ScenarioWriter


def rngs(seed: int) -> list[np.random.Generator]:
    """Independent streams of one seed: world, traffic, noise bank, UE choice, frames."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)]


def build_world(cfg: TwinConfig, seed: int) -> World:
    """The static world of a run: from ``cfg.layout_seed`` when set (a drawn world keeps its
    street under every traffic seed), else from the run's seed."""
    rng = np.random.default_rng(cfg.layout_seed) if cfg.layout_seed is not None else rngs(seed)[0]
    return World.build(cfg, rng)


class Twin:
    """The simulated world of one seed: static world, traffic, and per BS a tracer and a renderer."""

    def __init__(self, cfg: TwinConfig, seed: int):
        self.cfg = cfg
        _, traffic_rng, render_rng, self.ue_rng, self.frame_rng = rngs(seed)
        self.world = build_world(cfg, seed)
        self.traffic = Traffic(cfg, traffic_rng)
        self.sites = [cfg.site(k) for k in range(cfg.n_bs)]
        self.tracers = [Tracer(site, self.world) for site in self.sites]
        self.renderers = [Renderer(site, self.world, render_rng) for site in self.sites]
        self.ue_weight = np.array([t.ue_weight for t in cfg.traffic.vehicle_types])
        self.connected: list[int] = []
        self.advance(cfg.traffic.warmup_s)

    def advance(self, seconds: float) -> None:
        n = max(1, math.ceil(seconds / 0.1 - 1e-9))     # IDM steps of at most 100 ms
        for _ in range(n):
            self.traffic.step(seconds / n)

    def select_ues(self) -> np.ndarray:
        """Rows of this scene's UEs. A UE stays connected while it is in the coverage zone, so
        consecutive scenes form trajectories. Policy "all": every vehicle in the zone, up to
        ``max_ues`` (newcomers nearest to the BS first); "fixed": ``ues_per_scene`` vehicles,
        free slots drawn by ``ue_weight``. A scene whose zone is empty takes the vehicle nearest
        to it, so that no scene is without a UE."""
        tc = self.cfg.traffic
        veh = self.traffic.v
        lo, hi = tc.coverage_x_m
        eligible = self.ue_weight[veh.type_idx] > 0 if tc.ue_policy == "fixed" else np.ones(len(veh), bool)
        in_zone = np.zeros(len(veh), bool)
        for site in self.sites:                     # the zone of any BS
            a, b = site.traffic.coverage_x_m
            in_zone |= (veh.x >= a) & (veh.x <= b)
        inside = in_zone & eligible
        row_of = {int(i): r for r, i in enumerate(veh.id)}
        keep = [i for i in self.connected if i in row_of and inside[row_of[i]]]
        want = tc.ues_per_scene if tc.ue_policy == "fixed" else min(tc.max_ues, max(1, int(inside.sum())))
        need = want - len(keep)
        if need > 0:
            cand = np.flatnonzero(inside & ~np.isin(veh.id, keep))
            if (len(cand) < need and tc.ue_policy == "fixed") or len(cand) == 0:
                # too few in the zone: take the eligible vehicles nearest to it
                pool = np.flatnonzero(eligible & ~np.isin(veh.id, keep))
                dist = np.abs(veh.x[pool] - (lo + hi) / 2)
                cand = pool[np.argsort(dist)[:need]]
                if len(cand) < need:
                    raise RuntimeError(f"not enough eligible vehicles on the road for {want} UEs per scene: "
                                       "lower traffic.headway_s or raise ue_weight")
            elif tc.ue_policy == "fixed":
                w = self.ue_weight[veh.type_idx[cand]]
                cand = self.ue_rng.choice(cand, size=need, replace=False, p=w / w.sum())
            else:                                   # nearest to a BS first
                bs = np.array([site.bs.position_m for site in self.sites])
                dist = np.hypot(veh.x[cand, None] - bs[None, :, 0], veh.y[cand, None] - bs[None, :, 1]).min(axis=1)
                cand = cand[np.argsort(dist, kind="stable")[:need]]
            keep += [int(veh.id[r]) for r in cand]
        self.connected = keep
        return np.array([row_of[i] for i in keep], dtype=int)


def objects_columns(veh: Vehicles, ue_rows: np.ndarray, cfg: TwinConfig) -> dict[str, np.ndarray]:
    """The moving objects of one scene, UEs first (UE j is object j, the pairing DeepVerse6G uses)."""
    order = np.concatenate([ue_rows, np.setdiff1d(np.arange(len(veh)), ue_rows)]).astype(int)
    v = veh.subset(order)
    type_ids = np.array([t.id for t in cfg.traffic.vehicle_types])
    boxes = v.boxes
    return {
        "id": v.id, "type": type_ids[v.type_idx], "x": v.x, "y": v.y, "z": np.zeros(len(v)),
        "angle": np.where(v.direction > 0, 0.0, 180.0), "speed": v.speed, "acceleration": v.accel,
        "bounds": boxes.reshape(-1, 2, 3),        # [[xmin, ymin, zmin], [xmax, ymax, zmax]]
        "tx_height": v.height + cfg.traffic.ue_antenna_above_roof_m, "slope": np.zeros(len(v)),
    }


def generate(out: Path, name: str, scenes: int, seed: int, cfg: TwinConfig | None = None,
             progress: bool = True, overwrite: bool = False) -> dict:
    """Write scenario ``out/name`` with ``scenes`` scenes; returns the summary (also in param/twin.json)."""
    from wmfm.config import ConfigError
    cfg = cfg or TwinConfig()
    if scenes < 1:
        raise ConfigError(f"scenes: must be >= 1, got {scenes}")
    if seed < 0:
        raise ConfigError(f"seed: must be >= 0, got {seed}")
    target = Path(out) / name
    if target.exists():
        if not overwrite:
            raise FileExistsError(f"{target}: already exists (use --overwrite to replace it)")
        shutil.rmtree(target)
    try:
        return _generate(Path(out), name, scenes, seed, cfg, progress)
    except BaseException:                   # interrupted or failed: no half-written scenario stays behind
        shutil.rmtree(target, ignore_errors=True)
        raise


def _generate(out: Path, name: str, scenes: int, seed: int, cfg: TwinConfig, progress: bool) -> dict:
    target = out / name
    t0 = time.perf_counter()
    twin = Twin(cfg, seed)
    writer = ScenarioWriter(out, name, cfg)
    writer.write_params()
    n_ue = n_los = n_paths = 0
    los_by_bs = np.zeros(cfg.n_bs, dtype=np.int64)
    kinds = np.zeros(len(KIND_NAMES), dtype=np.int64)
    vehicles_seen = 0
    bar = tqdm(range(scenes), desc=f"generate {name}", unit="scene", disable=not progress)
    for s in bar:
        if s:
            twin.advance(cfg.scene_period_s)
        veh = twin.traffic.v
        rows = twin.select_ues()
        links, images = [], []
        for k, (site, tracer, renderer) in enumerate(zip(twin.sites, twin.tracers, twin.renderers)):
            mats, locs = [], []
            for r in rows:
                ps = tracer.trace(veh, r)
                mats.append(ps.matrix())
                ue = np.array([veh.x[r], veh.y[r], veh.height[r] + cfg.traffic.ue_antenna_above_roof_m])
                dist = float(np.linalg.norm(ue - np.asarray(site.bs.position_m)))
                locs.append([*ue, dist, -ps.total_power_dbm()])
                los_by_bs[k] += ps.is_los
                if k == 0:
                    n_paths += len(ps)
                    kinds += np.bincount(ps.kind, minlength=len(KIND_NAMES))
            links.append((mats, np.asarray(locs, dtype=float)))
            images.append(renderer.render(veh, twin.frame_rng))
        n_ue += len(rows)
        n_los = int(los_by_bs[0])
        vehicles_seen += len(veh)
        writer.write_scene(s, links, images, objects_columns(veh, rows, cfg))
        if progress and s % 50 == 0:
            bar.set_postfix(nlos=f"{1 - n_los / n_ue:.0%}")
    t_scenes = time.perf_counter() - t0
    summary = {
        "scenes": scenes, "ues": n_ue, "los": n_los, "nlos": n_ue - n_los,
        "nlos_share": round(1 - n_los / n_ue, 4), "mean_paths_per_ue": round(n_paths / n_ue, 2),
        "paths_by_kind": {k: int(c) for k, c in zip(KIND_NAMES, kinds)},
        "mean_vehicles_on_road": round(vehicles_seen / scenes, 1),
        "mean_ues_per_scene": round(n_ue / scenes, 2), "ue_policy": cfg.traffic.ue_policy,
        "world": cfg.world, "bs": cfg.n_bs,
        "image_size": list(cfg.camera.resolution), "scene_period_s": cfg.scene_period_s,
    }
    writer.finish(seed, summary)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    if cfg.n_bs > 1:                       # the counts above are BS 1's
        summary["nlos_share_by_bs"] = [round(1 - int(v) / n_ue, 4) for v in los_by_bs]
    summary["scenes_per_s"] = round(scenes / summary["seconds"], 1)
    summary["ues_per_s"] = round(n_ue / summary["seconds"], 1)
    summary["scenes_per_s_excluding_trajectory_file"] = round(scenes / t_scenes, 1)
    summary["path"] = str(target)
    return summary
