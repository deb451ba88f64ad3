"""Geometric ray paths from the BS to a UE, the twin's stand-in for a ray tracer.

Every path is derived from the geometry of one instant:
- LoS: present only when the BS-UE segment crosses no vehicle box and no building;
  when vehicles block it, a knife-edge diffraction path over the highest blocker's roof
  (ITU-R P.526 single-edge approximation, further blockers' losses added) replaces it.
- ground: image method on z = 0, Fresnel TM coefficient (vertical polarisation).
- walls: image method on each road-facing building facade, Fresnel TE coefficient.
- vehicles: image method on the four sides of each reflective (van/bus/truck) vehicle,
  metal (|Gamma| = 1, phase pi) plus a fixed loss for finite curved panels.
- diffuse: bistatic radar equation off point scatterers (lamp posts, signs) with a fixed
  RCS and phase per object; the strongest visible ones are kept.
Every segment of every path is checked against vehicles and buildings; a blocked
reflected/scattered path is dropped. Powers are received powers in dBm for 0 dBm transmit
power and isotropic antennas (the array response is applied by the loader).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import TwinConfig
from .world import Vehicles, World

C0 = 299_792_458.0

LOS, DIFFRACTION, GROUND, WALL, VEHICLE, DIFFUSE = range(6)
KIND_NAMES = ("LoS", "diffraction", "ground", "wall", "vehicle", "diffuse")


@dataclass
class PathSet:
    """Paths of one BS-UE link, columns sorted by decreasing power."""

    power_dbm: np.ndarray    # [P]
    toa_s: np.ndarray        # [P] absolute time of flight
    phase_deg: np.ndarray    # [P] in [-180, 180)
    doa: np.ndarray          # [P, 3] unit vectors from the UE back along the incoming ray
    dod: np.ndarray          # [P, 3] unit vectors from the BS along the departing ray
    los: np.ndarray          # [P] 1.0 for the line-of-sight path
    doppler: np.ndarray      # [P, 2] radial velocity [m/s] (>0 approaching), acceleration [m/s^2]
    kind: np.ndarray         # [P] int, index into KIND_NAMES
    points: list             # P arrays [k, 3]: BS, interaction points, UE (for plots)

    def __len__(self) -> int:
        return len(self.power_dbm)

    @property
    def is_los(self) -> bool:
        return bool((self.los > 0).any())

    def matrix(self) -> np.ndarray:
        """The DeepVerse6G path matrix [10, P] (rows: phase, ToA, power, DoA phi/theta, DoD phi/theta,
        LoS flag, Doppler velocity/acceleration; angles in degrees)."""
        doa_phi, doa_theta = angles_deg(self.doa)
        dod_phi, dod_theta = angles_deg(self.dod)
        return np.stack([self.phase_deg, self.toa_s, self.power_dbm, doa_phi, doa_theta,
                         dod_phi, dod_theta, self.los, self.doppler[:, 0], self.doppler[:, 1]])

    def total_power_dbm(self) -> float:
        if not len(self):
            return -np.inf
        return float(10 * np.log10(np.sum(10 ** (self.power_dbm / 10))))


def angles_deg(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth phi (from +x towards +y) and zenith theta (from +z) of unit vectors [P, 3], degrees."""
    phi = np.degrees(np.arctan2(u[:, 1], u[:, 0]))
    theta = np.degrees(np.arccos(np.clip(u[:, 2], -1.0, 1.0)))
    return phi, theta


def segment_box_hits(p0: np.ndarray, p1: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slab test of segments [S, 3] -> [S, 3] against boxes [M, 6].

    Returns (hit [S, M] bool, t_in [S, M], t_out [S, M]); t in [0, 1] along the segment.
    Touching a box at an end point (a reflection point on a facade) is not a hit.
    """
    d = p1 - p0
    lo, hi = boxes[None, :, :3], boxes[None, :, 3:]
    o = p0[:, None, :]
    dd = d[:, None, :]
    zero = np.abs(dd) < 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - o) / dd
        t2 = (hi - o) / dd
    inside = (o >= lo) & (o <= hi)
    tlo = np.where(zero, np.where(inside, -np.inf, np.inf), np.minimum(t1, t2))
    thi = np.where(zero, np.where(inside, np.inf, -np.inf), np.maximum(t1, t2))
    t_in, t_out = tlo.max(axis=2), thi.min(axis=2)
    eps = 1e-7
    hit = (t_out - t_in > eps) & (t_out > eps) & (t_in < 1 - eps)
    return hit, t_in, t_out


def fresnel(cos_i: np.ndarray, eps_r: float, sigma: float, f_hz: float, pol: str) -> np.ndarray:
    """Fresnel reflection coefficient of a half-space (complex), incidence cos_i from the normal."""
    eps_c = eps_r - 1j * 17.98 * sigma / (f_hz / 1e9)      # ITU-R P.2040 eq. (9b)
    sin2 = 1 - cos_i**2
    root = np.sqrt(eps_c - sin2)
    if pol == "TE":
        return (cos_i - root) / (cos_i + root)
    return (eps_c * cos_i - root) / (eps_c * cos_i + root)


def knife_edge_loss_db(nu: np.ndarray) -> np.ndarray:
    """ITU-R P.526 J(nu) approximation, valid for nu > -0.78 (0 dB below)."""
    nu = np.asarray(nu, dtype=float)
    j = 6.9 + 20 * np.log10(np.sqrt((nu - 0.1) ** 2 + 1) + nu - 0.1)
    return np.where(nu > -0.78, j, 0.0)


class Tracer:
    """Computes the paths of every UE of one scene (the world is fixed, vehicles move).

    All candidate paths are polylines BS -> interaction point -> UE (the LoS path uses its
    midpoint), so every segment of every candidate is checked against all boxes at once.
    """

    def __init__(self, cfg: TwinConfig, world: World):
        self.cfg, self.world = cfg, world
        self.prop = cfg.propagation
        self.f = cfg.bs.carrier_hz
        self.lam = C0 / self.f
        self.bs = np.asarray(cfg.bs.position_m, dtype=float)
        self.reflective = np.array([t.reflective for t in cfg.traffic.vehicle_types])
        fac = world.facades
        self.fac_coord = np.array([f.y for f in fac])
        self.fac_normal = np.array([f.normal_y for f in fac])
        self.fac_lo = np.array([[f.x0, 0.0] for f in fac]).reshape(-1, 2)
        self.fac_hi = np.array([[f.x1, f.height] for f in fac]).reshape(-1, 2)
        sc = world.scatterers
        self.sc_d1 = np.linalg.norm(sc - self.bs, axis=1)
        # bistatic radar equation without the UE-side distance: lambda^2 sigma / ((4 pi)^3 d1^2)
        self.sc_gain_db = 10 * np.log10(self.lam**2 * world.scatterer_rcs / ((4 * np.pi) ** 3 * self.sc_d1**2))

    def _specular(self, ue, axis, coord, normal, lo, hi):
        """Image-method reflections off axis-aligned rectangles (K of them, vectorised).

        Plane: x[axis] = coord[k] with outward normal sign normal[k]; the rectangle spans
        lo[k] .. hi[k] on the two other axes (in increasing axis order).
        Returns (valid [K], reflection points [K, 3], cos of incidence [K]).
        """
        bs = self.bs
        img = np.repeat(bs[None], len(coord), axis=0)
        img[:, axis] = 2 * coord - bs[axis]
        d = ue[None] - img
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (coord - img[:, axis]) / d[:, axis]
        r = img + t[:, None] * d
        others = [a for a in range(3) if a != axis]
        inside = np.all((r[:, others] >= lo) & (r[:, others] <= hi), axis=1)
        valid = ((bs[axis] - coord) * normal > 1e-6) & ((ue[axis] - coord) * normal > 1e-6) & inside
        cos_i = np.abs(d[:, axis]) / np.linalg.norm(d, axis=1)
        return valid, r, cos_i

    def trace(self, veh: Vehicles, ue_row: int) -> PathSet:
        """Paths from the BS to the roof antenna of vehicle row ``ue_row`` of ``veh``."""
        prop, bs, f = self.prop, self.bs, self.f
        vboxes = veh.boxes
        ue = np.array([veh.x[ue_row], veh.y[ue_row], veh.height[ue_row] + self.cfg.traffic.ue_antenna_above_roof_m])
        mids, gains, kinds, excl = [], [], [], []     # candidate paths (specular / diffracted)

        def add(points, gain, kind, exclude=None):
            mids.append(points)
            gains.append(gain)
            kinds.append(np.full(len(points), kind))
            excl.append(np.full(len(points), -1) if exclude is None else exclude)

        add(((bs + ue) / 2)[None], np.ones(1, complex), LOS)
        if prop.ground:
            valid, r, cos_i = self._specular(ue, 2, np.zeros(1), np.ones(1),
                                             np.full((1, 2), -np.inf), np.full((1, 2), np.inf))
            gam = fresnel(cos_i, prop.ground_permittivity, prop.ground_conductivity, f, "TM")
            add(r[valid], gam[valid], GROUND)
        if prop.walls and len(self.fac_coord):
            valid, r, cos_i = self._specular(ue, 1, self.fac_coord, self.fac_normal, self.fac_lo, self.fac_hi)
            gam = fresnel(cos_i[valid], prop.wall_permittivity, prop.wall_conductivity, f, "TE")
            add(r[valid], gam, WALL)
        if prop.vehicles and len(veh):
            rows = np.flatnonzero(self.reflective[veh.type_idx])
            rows = rows[rows != ue_row]                   # not the UE's own vehicle
            if len(rows):
                b = vboxes[rows]
                metal = -(10 ** (-prop.vehicle_extra_loss_db / 20))     # |Gamma| = 1, phase pi, less losses
                for axis in (0, 1):
                    other = 1 - axis
                    coord = np.concatenate([b[:, axis], b[:, axis + 3]])
                    normal = np.repeat([-1.0, 1.0], len(b))
                    lo = np.tile(np.stack([b[:, other], np.full(len(b), 0.3)], axis=1), (2, 1))  # 0.3 m clearance
                    hi = np.tile(np.stack([b[:, other + 3], b[:, 5]], axis=1), (2, 1))
                    valid, r, _ = self._specular(ue, axis, coord, normal, lo, hi)
                    add(r[valid], np.full(valid.sum(), metal, complex), VEHICLE, np.tile(rows, 2)[valid])
        if prop.diffuse_paths and len(self.world.scatterers):
            sc = self.world.scatterers
            d2 = np.linalg.norm(sc - ue, axis=1)
            p_db = self.sc_gain_db - 20 * np.log10(d2)
            cand = np.argsort(-p_db)[: 3 * prop.diffuse_paths]
            add(sc[cand], 10 ** (p_db[cand] / 20) * np.exp(1j * self.world.scatterer_phase[cand]), DIFFUSE)

        mid = np.concatenate(mids)
        gain = np.concatenate(gains)
        kind = np.concatenate(kinds)
        exclude = np.concatenate(excl)
        n = len(mid)
        boxes = np.concatenate([self.world.buildings, vboxes])
        nb = len(self.world.buildings)
        seg0 = np.concatenate([np.repeat(bs[None], n, 0), mid])
        seg1 = np.concatenate([mid, np.repeat(ue[None], n, 0)])
        hit, t_in, t_out = segment_box_hits(seg0, seg1, boxes)
        ex = np.flatnonzero(exclude >= 0)        # a reflecting vehicle does not block its own path
        hit[ex, nb + exclude[ex]] = False
        hit[n + ex, nb + exclude[ex]] = False
        blocked = hit[:n].any(axis=1) | hit[n:].any(axis=1)

        keep = ~blocked
        los = np.zeros(n)
        los[0] = 1.0
        points = np.stack([np.repeat(bs[None], n, 0), mid, np.repeat(ue[None], n, 0)], axis=1)
        if blocked[0]:
            keep[0] = False
            # LoS blocked by vehicles only: knife-edge diffraction over the roofs of the blockers
            # (both half-segments of the LoS candidate lie on the BS-UE line).
            if prop.los and prop.diffraction and not hit[[0, n], :nb].any():
                edge, loss_db = self._diffraction(ue, hit, t_in, t_out, n, nb, vboxes)
                points = np.concatenate([points, np.stack([bs, edge, ue])[None]])
                gain = np.append(gain, 10 ** (-loss_db / 20) * np.exp(-1j * np.pi / 4))
                kind = np.append(kind, DIFFRACTION)
                los = np.append(los, 0.0)
                keep = np.append(keep, True)
        elif not prop.los:
            keep[0] = False
        diffuse = np.flatnonzero(keep & (kind == DIFFUSE))
        keep[diffuse[prop.diffuse_paths:]] = False        # the strongest visible scatterers only
        return self._assemble(points[keep], gain[keep], kind[keep], los[keep], veh, ue_row)

    def _diffraction(self, ue, hit, t_in, t_out, n, nb, vboxes):
        """Edge point and loss [dB] of the LoS diffracted over the blocking vehicles."""
        bs, lam = self.bs, self.lam
        # t along the full BS-UE segment of each blocker, from the two half segments
        rows = []
        for half, off in ((0, 0.0), (n, 0.5)):
            k = np.flatnonzero(hit[half, nb:])
            rows += [(v, off + 0.5 * (t_in[half, nb + v] + t_out[half, nb + v]) / 2) for v in k]
        dist = np.linalg.norm(ue - bs)
        best = {}
        for v, t in rows:                       # a box crossing the midpoint shows up twice
            best.setdefault(v, t)
        v = np.array(list(best))
        t = np.clip(np.array(list(best.values())), 1e-3, 1 - 1e-3)
        line = bs[None] + t[:, None] * (ue - bs)[None]
        h = vboxes[v, 5] - line[:, 2]
        nu = h * np.sqrt(2 / lam * (1 / (t * dist) + 1 / ((1 - t) * dist)))
        main = int(np.argmax(nu))
        edge = line[main].copy()
        edge[2] = vboxes[v[main], 5]
        return edge, float(knife_edge_loss_db(nu).sum())

    def _assemble(self, points, gain, kind, los, veh, ue_row) -> PathSet:
        """Powers, delays, phases, angles and Doppler of the kept paths [P, 3, 3]."""
        seg = np.diff(points, axis=1)                                  # [P, 2, 3]
        seg_len = np.linalg.norm(seg, axis=2)
        length = seg_len.sum(axis=1)
        toa = length / C0
        amp = np.abs(gain)
        specular = kind != DIFFUSE
        # specular/diffracted: free space over the unfolded length; diffuse: gain holds the
        # bistatic-radar amplitude already
        power = np.where(specular, 20 * np.log10(self.lam / (4 * np.pi * length)), 0.0) \
            + 20 * np.log10(np.maximum(amp, 1e-30))
        phase = np.degrees(np.angle(gain) - 2 * np.pi * self.f * toa)
        phase = (phase + 180.0) % 360.0 - 180.0
        dod = seg[:, 0] / seg_len[:, :1]
        doa = -seg[:, 1] / seg_len[:, 1:]
        d = veh.direction[ue_row]
        vel = np.array([d * veh.speed[ue_row], 0.0, 0.0])
        acc = np.array([d * veh.accel[ue_row], 0.0, 0.0])
        dop = np.stack([doa @ vel, doa @ acc], axis=1)
        order = np.argsort(-power, kind="stable")[: self.prop.max_paths]
        return PathSet(power[order], toa[order], phase[order], doa[order], dod[order], los[order],
                       dop[order], kind[order], list(points[order]))
