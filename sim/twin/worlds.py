"""Twin worlds: one street geometry per world id, drawn from realistic ranges.

A world is everything that stays when the traffic changes: road length and lanes, building
rows (widths, gaps, heights, depth), lamp-post spacing, the BS site (position along the
kerb, height, yaw), the camera on its pole (height, pitch, field of view, aimed at the
coverage zone) and the traffic's density, mix and speeds. `draw(w)` turns world id ``w`` into
a `TwinConfig` whose `layout_seed` fixes the concrete building layout, so world ``w`` has the
same street under every traffic seed (`wmfm twin generate --world W --seed S`).

The antenna array, the carrier and the OFDM grid are the same in every world: a model
pretrained on many worlds reads one CSI shape.
"""

from __future__ import annotations

import dataclasses as dc
import math
from dataclasses import dataclass

import numpy as np

from .params import DEFAULT_VEHICLES, SiteConfig, TwinConfig


@dataclass(frozen=True)
class WorldRanges:
    """Uniform ranges (lo, hi) each world is drawn from; urban streets with pole-mounted small cells."""
    road_length_m: tuple[float, float] = (160.0, 300.0)
    lanes_per_direction: tuple[int, ...] = (1, 2, 2, 3)      # drawn uniformly from this list
    lane_width_m: tuple[float, float] = (3.0, 3.75)
    sidewalk_m: tuple[float, float] = (2.0, 5.0)
    building_width_m: tuple[float, float] = (8.0, 50.0)      # each world draws its own [lo, hi] inside
    building_gap_max_m: tuple[float, float] = (2.0, 15.0)
    building_height_m: tuple[float, float] = (5.0, 45.0)
    building_depth_m: tuple[float, float] = (10.0, 20.0)
    scatterer_spacing_m: tuple[float, float] = (8.0, 20.0)
    headway_s: tuple[float, float] = (1.6, 4.0)              # mean time between vehicles per lane
    speed_scale: tuple[float, float] = (0.8, 1.2)            # x the vehicle types' mean speeds (~30-60 km/h)
    share_jitter: float = 0.5                                # vehicle-type shares x U(1 - j, 1 + j)
    bs_height_m: tuple[float, float] = (3.0, 8.0)            # lamp-post / facade small cell
    bs_yaw_deg: tuple[float, float] = (5.0, 40.0)            # broadside towards the coverage zone
    coverage_length_m: tuple[float, float] = (45.0, 65.0)
    camera_height_m: tuple[float, float] = (5.0, 10.0)       # traffic / ISAC camera on the BS pole
    camera_fov_deg: tuple[float, float] = (60.0, 100.0)      # widened when the zone does not fit


def draw(world: int, base: TwinConfig | None = None, ranges: WorldRanges = WorldRanges(), n_bs: int = 1) -> TwinConfig:
    """The twin config of world ``world`` (>= 0) on top of ``base`` (its scene period, UE policy,
    radio, propagation and camera sensor settings are kept); ``n_bs`` > 1 adds BSs down the street
    (`add_sites`, drawn after everything else: BS 1 is the same in the one-BS world)."""
    if world < 0:
        raise ValueError(f"world must be >= 0, got {world}")
    base = base or TwinConfig()
    rng = np.random.default_rng(np.random.SeedSequence([world, 0x5EED]))
    u = lambda r: float(rng.uniform(*r))       # noqa: E731
    road = dc.replace(base.road, length_m=round(u(ranges.road_length_m), 1),
                      lanes_per_direction=int(rng.choice(ranges.lanes_per_direction)),
                      lane_width_m=round(u(ranges.lane_width_m), 2), sidewalk_m=round(u(ranges.sidewalk_m), 2))
    w_lo = u((ranges.building_width_m[0], 15.0))
    h_lo = u((ranges.building_height_m[0], 12.0))
    w_hi = u((w_lo + 10, ranges.building_width_m[1]))
    buildings = dc.replace(base.buildings, width_m=(round(w_lo, 1), round(w_hi, 1)),
                           gap_m=(0.0, round(u(ranges.building_gap_max_m), 1)),
                           height_m=(round(h_lo, 1), round(u((h_lo + 5, ranges.building_height_m[1])), 1)),
                           depth_m=round(u(ranges.building_depth_m), 1))
    scale = u(ranges.speed_scale)
    j = ranges.share_jitter
    vehicles = tuple(dc.replace(v, share=round(v.share * u((1 - j, 1 + j)), 3),
                                speed_mps=round(v.speed_mps * scale, 2)) for v in DEFAULT_VEHICLES)
    half = road.length_m / 2
    zone = u(ranges.coverage_length_m)
    bs_x = round(u((-half + 15, half - zone - 20)), 1)
    start = u((4.0, 8.0))
    bs_y = -(road.half_width_m + u((0.5, road.sidewalk_m - 0.3)))
    bs = dc.replace(base.bs, position_m=(bs_x, round(bs_y, 2), round(u(ranges.bs_height_m), 2)),
                    yaw_deg=round(u(ranges.bs_yaw_deg), 1))
    traffic = dc.replace(base.traffic, vehicle_types=vehicles, headway_s=round(u(ranges.headway_s), 2),
                         coverage_x_m=(round(bs_x + start, 1), round(bs_x + start + zone, 1)))
    cam_h = max(u(ranges.camera_height_m), bs.position_m[2] + 0.5)
    camera = dc.replace(base.camera, position_m=(bs_x, round(bs_y, 2), round(cam_h, 2)))
    spacing = round(u(ranges.scatterer_spacing_m), 1)
    cfg = dc.replace(base, road=road, buildings=buildings, traffic=traffic, bs=bs, camera=camera,
                     propagation=dc.replace(base.propagation, scatterer_spacing_m=spacing),
                     layout_seed=int(rng.integers(2**31)), world=world)
    cfg = aim_camera(cfg, fov_deg=u(ranges.camera_fov_deg))
    if n_bs > 1:
        cfg = add_sites(cfg, n_bs, rng, ranges)
    cfg.validate(f"world {world}")
    return cfg


def add_sites(cfg: TwinConfig, n_bs: int, rng: np.random.Generator, ranges: WorldRanges = WorldRanges()) -> TwinConfig:
    """BSs 2..n_bs down the street after BS 1's zone, on the same kerb, each with its camera aimed
    at its own zone (the road grows when it is too short); heights and zones drawn as BS 1's. They
    face the way BS 1 does: the DeepVerse6G loader config gives every BS one antenna rotation."""
    u = lambda r: float(rng.uniform(*r))       # noqa: E731
    sites, end = [], cfg.traffic.coverage_x_m[1]
    for k in range(2, n_bs + 1):
        start, zone = u((4.0, 8.0)), u(ranges.coverage_length_m)
        x = round(end + u((10.0, 30.0)) - start, 1)
        y = -(cfg.road.half_width_m + u((0.5, cfg.road.sidewalk_m - 0.3)))
        bs = dc.replace(cfg.bs, position_m=(x, round(y, 2), round(u(ranges.bs_height_m), 2)))
        cam_h = max(u(ranges.camera_height_m), bs.position_m[2] + 0.5)
        cam = dc.replace(cfg.camera, id=f"unit{k}_cam1", position_m=(x, round(y, 2), round(cam_h, 2)))
        coverage = (round(x + start, 1), round(x + start + zone, 1))
        one = dc.replace(cfg, bs=bs, camera=cam, sites=(), traffic=dc.replace(cfg.traffic, coverage_x_m=coverage))
        one = aim_camera(one, fov_deg=u(ranges.camera_fov_deg))
        sites.append(SiteConfig(bs=bs, camera=one.camera, coverage_x_m=coverage))
        end = coverage[1]
    half = max(cfg.road.length_m / 2, end + 20, -cfg.traffic.coverage_x_m[0] + 20)
    return dc.replace(cfg, sites=tuple(sites), road=dc.replace(cfg.road, length_m=round(2 * half, 1)))


def every_vehicle_a_ue(world: int | None, scene_period_s: float, max_ues: int) -> TwinConfig:
    """The default street (``world`` None) or drawn world ``world``, frames ``scene_period_s``
    apart, every vehicle in the coverage zone a UE up to ``max_ues``: the experiments' and the
    corpus's twin."""
    base = TwinConfig()
    base = dc.replace(base, scene_period_s=scene_period_s,
                      traffic=dc.replace(base.traffic, ue_policy="all", max_ues=max_ues))
    return base if world is None else draw(world, base)


def coverage_corners(cfg: TwinConfig) -> np.ndarray:
    """[8, 3] corners of the coverage zone over the road: x in coverage_x_m, y across the lanes,
    z from the road to a 2 m vehicle roof."""
    lo, hi = cfg.traffic.coverage_x_m
    w = cfg.road.half_width_m
    return np.array([[x, y, z] for x in (lo, hi) for y in (-w, w) for z in (0.0, 2.0)])


def aim_camera(cfg: TwinConfig, fov_deg: float, margin_deg: float = 4.0, max_fov_deg: float = 110.0) -> TwinConfig:
    """Point the camera at the coverage zone: yaw and pitch at the middle of the zone's azimuth and
    elevation spans, and the horizontal field of view widened (up to ``max_fov_deg``) until both
    spans fit with ``margin_deg`` each side (the vertical field follows from the aspect ratio)."""
    cam = np.asarray(cfg.camera.position_m)
    rel = coverage_corners(cfg) - cam
    az = np.degrees(np.arctan2(rel[:, 1], rel[:, 0]))
    el = np.degrees(np.arctan2(rel[:, 2], np.hypot(rel[:, 0], rel[:, 1])))
    w, h = cfg.camera.resolution
    need_v = el.max() - el.min() + 2 * margin_deg
    need_h_for_v = 2 * math.degrees(math.atan(math.tan(math.radians(need_v / 2)) * w / h))
    fov = float(np.clip(max(fov_deg, az.max() - az.min() + 2 * margin_deg, need_h_for_v), 10.0, max_fov_deg))
    camera = dc.replace(cfg.camera, yaw_deg=round(float(az.max() + az.min()) / 2, 1),
                        pitch_deg=round(float(el.max() + el.min()) / 2, 1), fov_deg=round(fov, 1))
    return dc.replace(cfg, camera=camera)
