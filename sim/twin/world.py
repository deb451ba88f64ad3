"""Static street geometry and the traffic on it.

Boxes are axis-aligned, stored as float64 arrays ``[xmin, ymin, zmin, xmax, ymax, zmax]``
in metres (vehicles drive along x, so their boxes stay axis-aligned).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import TwinConfig


@dataclass(frozen=True)
class Facade:
    """The road-facing wall of one building: the plane y = ``y`` for x in [x0, x1], z in [0, height]."""

    y: float
    x0: float
    x1: float
    height: float
    normal_y: float   # +1: faces +y (building on the -y side), -1: faces -y


@dataclass(frozen=True)
class World:
    """Everything that does not move: buildings, their facades, point scatterers."""

    buildings: np.ndarray        # [B, 6] boxes
    facades: tuple[Facade, ...]
    scatterers: np.ndarray       # [S, 3] positions (lamp-post heads, signs)
    scatterer_rcs: np.ndarray    # [S] radar cross-section [m^2]
    scatterer_phase: np.ndarray  # [S] scattering phase [rad], fixed per object
    building_colors: np.ndarray  # [B, 3] uint8

    @staticmethod
    def build(cfg: TwinConfig, rng: np.random.Generator) -> World:
        road, bcfg, prop = cfg.road, cfg.buildings, cfg.propagation
        half_l = road.length_m / 2
        boxes, facades = [], []
        for side in (-1.0, 1.0):                       # -1: BS side (y < 0)
            y_face = side * road.facade_y_m
            x = -half_l - rng.uniform(0, bcfg.width_m[1])
            while x < half_l:
                w = rng.uniform(*bcfg.width_m)
                h = rng.uniform(*bcfg.height_m)
                y_back = y_face + side * bcfg.depth_m
                boxes.append([x, min(y_face, y_back), 0.0, x + w, max(y_face, y_back), h])
                facades.append(Facade(y_face, x, x + w, h, -side))
                x += w + rng.uniform(*bcfg.gap_m)
        kerb = road.half_width_m + 0.5
        xs = np.arange(-half_l, half_l, prop.scatterer_spacing_m)
        posts = [np.stack([xs + side * prop.scatterer_spacing_m / 4,          # staggered sides
                           np.full_like(xs, side * kerb),
                           rng.uniform(3.0, 6.0, len(xs))], axis=1) for side in (-1.0, 1.0)]
        scat = np.concatenate(posts)
        lo, hi = prop.scatterer_rcs_m2
        return World(
            buildings=np.asarray(boxes, dtype=np.float64).reshape(-1, 6),
            facades=tuple(facades),
            scatterers=scat,
            scatterer_rcs=rng.uniform(lo, hi, len(scat)),
            scatterer_phase=rng.uniform(-np.pi, np.pi, len(scat)),
            building_colors=rng.integers(90, 200, (len(boxes), 3)).astype(np.uint8),
        )


@dataclass
class Vehicles:
    """State of every vehicle on the road at one instant (one row per vehicle)."""

    id: np.ndarray          # [V] int, persistent
    type_idx: np.ndarray    # [V] int, index into cfg.traffic.vehicle_types
    lane: np.ndarray        # [V] int, 0..2*lanes-1
    x: np.ndarray           # [V] centre along the road [m]
    y: np.ndarray           # [V] lane centre [m]
    direction: np.ndarray   # [V] +1 / -1 (driving towards +x / -x)
    speed: np.ndarray       # [V] [m/s], >= 0
    accel: np.ndarray       # [V] [m/s^2]
    v0: np.ndarray          # [V] desired speed [m/s]
    length: np.ndarray
    width: np.ndarray
    height: np.ndarray
    color: np.ndarray       # [V, 3] uint8

    @property
    def boxes(self) -> np.ndarray:
        """[V, 6] axis-aligned boxes."""
        return np.stack([self.x - self.length / 2, self.y - self.width / 2, np.zeros_like(self.x),
                         self.x + self.length / 2, self.y + self.width / 2, self.height], axis=1)

    def __len__(self) -> int:
        return len(self.id)

    def subset(self, keep: np.ndarray) -> Vehicles:
        return Vehicles(**{k: v[keep] for k, v in self.__dict__.items()})

    @staticmethod
    def empty() -> Vehicles:
        f, i = np.zeros(0), np.zeros(0, dtype=np.int64)
        return Vehicles(i, i.copy(), i.copy(), f, f.copy(), f.copy(), f.copy(), f.copy(), f.copy(),
                        f.copy(), f.copy(), f.copy(), np.zeros((0, 3), np.uint8))

    @staticmethod
    def concat(a: Vehicles, b: Vehicles) -> Vehicles:
        return Vehicles(**{k: np.concatenate([getattr(a, k), getattr(b, k)]) for k in a.__dict__})


PALETTE = np.array([[200, 200, 205], [30, 30, 35], [150, 20, 25], [20, 50, 140], [235, 235, 240],
                    [90, 95, 100], [190, 150, 40], [40, 110, 60], [120, 120, 130], [170, 80, 30]],
                   dtype=np.uint8)


class Traffic:
    """Multi-lane traffic with the Intelligent Driver Model (Treiber et al. 2000) per lane.

    Lanes ``0..n-1`` drive towards +x at y = -(i + 1/2) w (the BS side), lanes ``n..2n-1``
    towards -x at y = +(i + 1/2) w. Vehicles enter at the upstream end with a shifted
    exponential headway and leave at the downstream end. No lane changes.
    """

    A_MAX, B_COMF, S0 = 1.4, 2.0, 2.0   # IDM: max accel [m/s^2], comfortable decel, jam gap [m]

    def __init__(self, cfg: TwinConfig, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        types = cfg.traffic.vehicle_types
        self.share = np.array([t.share for t in types]) / sum(t.share for t in types)
        self.lanes = 2 * cfg.road.lanes_per_direction
        self.half_l = cfg.road.length_m / 2
        self.t = 0.0
        self.next_id = 0
        self.next_spawn = rng.uniform(0, cfg.traffic.headway_s, self.lanes)
        # The type of the next vehicle of each lane is drawn when the previous one enters, and
        # kept while the entry is blocked: redrawing would favour short vehicles in queues.
        self.pending = rng.choice(len(cfg.traffic.vehicle_types), size=self.lanes, p=self.share)
        self.v = Vehicles.empty()

    def lane_geometry(self, lane: int) -> tuple[float, float]:
        n, w = self.cfg.road.lanes_per_direction, self.cfg.road.lane_width_m
        if lane < n:
            return -(lane + 0.5) * w, 1.0
        return (lane - n + 0.5) * w, -1.0

    def _spawn(self, lane: int) -> None:
        types = self.cfg.traffic.vehicle_types
        k = int(self.pending[lane])
        t = types[k]
        y, d = self.lane_geometry(lane)
        # Don't spawn into a queue: wait until the entry is clear.
        same = (self.v.lane == lane)
        if same.any():
            back = self.v.x[same] * d - self.v.length[same] / 2
            if back.min() + self.half_l < t.length_m + self.S0:
                return
        v0 = max(3.0, self.rng.normal(t.speed_mps, t.speed_std_mps))
        new = Vehicles(
            id=np.array([self.next_id]), type_idx=np.array([k]), lane=np.array([lane]),
            x=np.array([-d * (self.half_l - t.length_m / 2)]), y=np.array([y]), direction=np.array([d]),
            speed=np.array([v0 * self.rng.uniform(0.8, 1.0)]), accel=np.zeros(1), v0=np.array([v0]),
            length=np.array([t.length_m]), width=np.array([t.width_m]), height=np.array([t.height_m]),
            color=PALETTE[self.rng.integers(len(PALETTE))][None].copy())
        self.next_id += 1
        self.v = Vehicles.concat(self.v, new)
        self.pending[lane] = self.rng.choice(len(types), p=self.share)
        hw = self.cfg.traffic
        self.next_spawn[lane] = self.t + hw.min_headway_s + self.rng.exponential(hw.headway_s - hw.min_headway_s)

    def step(self, dt: float) -> None:
        """Advance the traffic by ``dt`` seconds."""
        v = self.v
        if len(v):
            s_along = v.x * v.direction                 # position along each lane's driving direction
            gap = np.full(len(v), np.inf)
            dv = np.zeros(len(v))
            for lane in range(self.lanes):
                idx = np.flatnonzero(v.lane == lane)
                if len(idx) < 2:
                    continue
                order = idx[np.argsort(s_along[idx])]   # rear to front
                rear, front = order[:-1], order[1:]
                gap[rear] = (s_along[front] - s_along[rear]) - (v.length[front] + v.length[rear]) / 2
                dv[rear] = v.speed[rear] - v.speed[front]
            t_gap = np.array([self.cfg.traffic.vehicle_types[k].time_gap_s for k in v.type_idx])
            s_star = self.S0 + v.speed * t_gap + v.speed * dv / (2 * np.sqrt(self.A_MAX * self.B_COMF))
            acc = self.A_MAX * (1 - (v.speed / v.v0) ** 4 - (np.maximum(s_star, 0) / np.maximum(gap, 0.1)) ** 2)
            acc = np.clip(acc, -8.0, self.A_MAX)
            new_speed = np.maximum(v.speed + acc * dt, 0.0)
            v.x = v.x + v.direction * (v.speed + new_speed) / 2 * dt
            v.accel = (new_speed - v.speed) / dt
            v.speed = new_speed
            self.v = v.subset(np.abs(v.x) < self.half_l + v.length)
        self.t += dt
        for lane in np.flatnonzero(self.next_spawn <= self.t):
            self._spawn(int(lane))
