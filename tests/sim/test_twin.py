"""Tests of the street twin (wmfm.sim.twin): the DeepVerse6G files it writes, the physics of its
ray paths against closed forms computed here from the geometry, the camera, and its config.

Every expected value below is computed independently of the twin's own code (free-space loss,
image method, Fresnel, ITU-R P.526, the deepverse channel formula), so a wrong twin fails.
"""

from __future__ import annotations

import dataclasses as dc
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml
from wmfm.sim.twin.camera import Camera, Renderer
from wmfm.sim.twin.generate import Twin, generate
from wmfm.sim.twin.params import TwinConfig
from wmfm.sim.twin.propagation import (
    DIFFRACTION,
    LOS,
    WALL,
    Tracer,
)
from wmfm.sim.twin.world import PALETTE, Vehicles, World

from wmfm.config import ConfigError, from_dict

C0 = 299_792_458.0

# deepverse prints nested tqdm bars; silence them for the whole module.
os.environ.setdefault("TQDM_DISABLE", "1")
deepverse = pytest.importorskip("deepverse")


# ----------------------------------------------------------------------------------------- helpers

def los_only(cfg: TwinConfig, **bs_changes) -> TwinConfig:
    """Only the direct path: no ground/wall/vehicle reflections, no scatterers, no diffraction."""
    prop = dc.replace(cfg.propagation, los=True, diffraction=False, ground=False, walls=False,
                      vehicles=False, diffuse_paths=0)
    return dc.replace(cfg, propagation=prop, bs=dc.replace(cfg.bs, **bs_changes))


def make_vehicles(cfg: TwinConfig, spec: list[tuple[int, float, float]]) -> Vehicles:
    """Vehicles from (type index, x centre, y centre); sizes from the config's vehicle types."""
    types = cfg.traffic.vehicle_types
    n = len(spec)
    ti = np.array([s[0] for s in spec], dtype=np.int64)
    return Vehicles(
        id=np.arange(n), type_idx=ti, lane=np.zeros(n, dtype=np.int64),
        x=np.array([s[1] for s in spec], float), y=np.array([s[2] for s in spec], float),
        direction=np.ones(n), speed=np.full(n, 10.0), accel=np.zeros(n), v0=np.full(n, 12.0),
        length=np.array([types[k].length_m for k in ti]), width=np.array([types[k].width_m for k in ti]),
        height=np.array([types[k].height_m for k in ti]),
        color=np.repeat(PALETTE[2:3], n, axis=0))


def ue_antenna(cfg: TwinConfig, veh: Vehicles, row: int) -> np.ndarray:
    return np.array([veh.x[row], veh.y[row], veh.height[row] + cfg.traffic.ue_antenna_above_roof_m])


def fspl_dbm(d, f_hz: float):
    """Received power [dBm] for 0 dBm transmit power and isotropic antennas in free space."""
    return 20 * np.log10(C0 / f_hz / (4 * np.pi * np.asarray(d, float)))


def az_zen_deg(v: np.ndarray) -> tuple[float, float]:
    v = np.asarray(v, float) / np.linalg.norm(v)
    return float(np.degrees(np.arctan2(v[1], v[0]))), float(np.degrees(np.arccos(v[2])))


def load_scene_mat(scen: Path, s: int) -> dict:
    (f,) = list((scen / "wireless" / f"scene_{s}").glob("BS1_UE_0-*.mat"))
    return scipy.io.loadmat(f)


def ue_path_matrix(mat: dict, j: int) -> np.ndarray:
    return np.asarray(mat["channels"][0, j][0, 0]["p"], dtype=float).reshape(10, -1)


# Lane centres of the default road (2 lanes per direction, 3.5 m): BS side y < 0.
LANE_Y = (-5.25, -1.75, 1.75, 5.25)
CAR, VAN, BUS, TRUCK = range(4)


# ----------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def two_ue_scenario(tmp_path_factory):
    """6 scenes, 2 UEs per scene, default physics."""
    cfg = TwinConfig()
    cfg = dc.replace(cfg, traffic=dc.replace(cfg.traffic, ue_policy="fixed", ues_per_scene=2))
    out = tmp_path_factory.mktemp("twin2ue")
    summary = generate(out, "street", 6, seed=3, cfg=cfg, progress=False)
    return cfg, out / "street", summary


@pytest.fixture(scope="module")
def los_scenario(tmp_path_factory):
    """LoS-only physics, omnidirectional sector so deepverse's FoV filter keeps every LoS path."""
    base = TwinConfig()
    base = dc.replace(base, traffic=dc.replace(base.traffic, ue_policy="fixed", ues_per_scene=3))
    cfg = los_only(base, fov_deg=(360.0, 180.0), n_antennas=16, selected_subcarriers=16)
    out = tmp_path_factory.mktemp("twinlos")
    generate(out, "los", 12, seed=11, cfg=cfg, progress=False)
    return cfg, out / "los"


# ----------------------------------------------------------------------------------------- 1. loader

def test_official_deepverse_loads_generated_scenario(two_ue_scenario):
    cfg, scen, summary = two_ue_scenario
    n_scenes, n_ue = 6, 2
    assert summary["scenes"] == n_scenes and summary["ues"] == n_scenes * n_ue

    pm = deepverse.ParameterManager(str(scen / "param" / "config.yaml"))
    params = pm.get_params()
    assert Path(params["dataset_folder"]) == scen.parent.resolve()
    assert list(params["scenes"]) == list(range(n_scenes))
    ds = deepverse.Dataset(pm)

    n_sel = cfg.bs.selected_subcarriers
    objects = ds.get_modality("mobility").objects
    assert len(objects) >= n_ue, "trajectory.mat gave no moving objects"
    # (time index, position of the object in that scene) -> object, to pair UE j with object j
    by_slot = {}
    for obj in objects.values():
        for t, k in zip(obj.time, obj.object_scene_id):
            by_slot[(t, k)] = (obj, obj.time.index(t))

    for s in range(n_scenes):
        mat = load_scene_mat(scen, s)
        rx_locs = mat["rx_locs"]
        assert rx_locs.shape == (n_ue, 5)
        np.testing.assert_allclose(mat["tx_loc"].ravel(), cfg.bs.position_m)

        cam = ds.get_sample("cam", index=s, device_index=0)
        assert cam is not None and Path(cam).is_file()
        assert Path(cam).stem == str(s), f"camera file {cam} is not scene {s}"
        assert ds.get_sample("cam", index=s, device_index=cfg.camera.id) == cam

        for j in range(n_ue):
            ch = ds.get_sample("comm-ue", index=s, ue_idx=j, bs_idx=0)
            if ch.coeffs is not None:        # a UE outside the BS sector may have no path at all
                assert ch.coeffs.shape == (1, cfg.bs.n_antennas, n_sel)
                assert np.all(np.isfinite(ch.coeffs)) and np.abs(ch.coeffs).max() > 0
            loc = np.asarray(ds.get_sample("loc-ue", index=s, ue_idx=j))
            np.testing.assert_allclose(loc, rx_locs[j, :3], rtol=0, atol=1e-12)
            # distance column is the BS - antenna distance
            np.testing.assert_allclose(rx_locs[j, 3], np.linalg.norm(rx_locs[j, :3] - cfg.bs.position_m))

            # UE j of scene s is the j-th moving object of scene s
            assert (s, j) in by_slot, f"no moving object #{j} in scene {s}"
            obj, k = by_slot[(s, j)]
            x, y, _ = obj.location[k]
            np.testing.assert_allclose([x, y], rx_locs[j, :2], atol=1e-9)
            np.testing.assert_allclose(obj.tx_height[k], rx_locs[j, 2], atol=1e-9)
            b = np.asarray(obj.bounding_box[k])
            assert b.shape == (2, 3) and b[0, 0] < x < b[1, 0] and b[0, 1] < y < b[1, 1]
            props = ds.get_sample("mobility", object_id=obj.object_id, index=s)
            assert props is not None and props["location"][:2] == [x, y]

    # the two UEs of a scene are different vehicles
    assert all(by_slot[(s, 0)][0] is not by_slot[(s, 1)][0] for s in range(n_scenes))


# ----------------------------------------------------------------------------------------- 2. channel

def test_deepverse_channel_equals_closed_form_single_path(los_scenario):
    cfg, scen = los_scenario
    bs = np.asarray(cfg.bs.position_m, float)
    fc = cfg.bs.carrier_hz
    lam = C0 / fc
    B = cfg.bs.bandwidth_ghz * 1e9
    N = cfg.bs.total_subcarriers
    M = cfg.bs.n_antennas
    yaw = np.radians(cfg.bs.yaw_deg)
    spacing = cfg.bs.spacing_wavelengths

    loader = yaml.safe_load((scen / "param" / "config.yaml").read_text())
    sel = np.asarray(loader["comm"]["OFDM"]["selected_subcarriers"])
    assert len(sel) == cfg.bs.selected_subcarriers
    np.testing.assert_array_equal(sel, np.arange(0, N, N // len(sel)))      # evenly spaced from 0
    assert loader["comm"]["bs_antenna"]["rotation"] == [0.0, 0.0, cfg.bs.yaw_deg]
    fk = sel * B / N

    ds = deepverse.Dataset(str(scen / "param" / "config.yaml"))
    n_checked = n_blocked = 0
    for s in range(12):
        mat = load_scene_mat(scen, s)
        for j in range(mat["rx_locs"].shape[0]):
            p = ue_path_matrix(mat, j)
            coeffs = ds.get_sample("comm-ue", index=s, ue_idx=j, bs_idx=0).coeffs
            if p.shape[1] == 0:               # LoS blocked, nothing else enabled
                assert coeffs is None
                n_blocked += 1
                continue
            assert p.shape[1] == 1 and p[7, 0] == 1.0, "the only path of a LoS-only twin is the LoS"
            ue = mat["rx_locs"][j, :3]
            v = ue - bs                                   # departure direction
            d = np.linalg.norm(v)
            tau = d / C0
            amp = lam / (4 * np.pi * d)                   # sqrt(10^(P/10)), P = 20 log10(lam / 4 pi d)
            theta = np.arccos(v[2] / d)
            phi = np.arctan2(v[1], v[0])
            m = np.arange(M)
            a_tx = np.exp(1j * 2 * np.pi * spacing * m * np.sin(theta) * np.sin(phi - yaw))
            h = (a_tx[:, None] * amp * np.exp(-1j * 2 * np.pi * fc * tau)
                 * np.exp(-1j * 2 * np.pi * fk[None, :] * tau) / np.sqrt(N))
            assert coeffs.shape == (1, M, len(sel))
            np.testing.assert_allclose(coeffs[0], h, rtol=1e-6, atol=1e-6 * amp / np.sqrt(N))
            n_checked += 1
    assert n_checked >= 5, f"only {n_checked} LoS UEs to check"


# ----------------------------------------------------------------------------------------- 3. blockage

@pytest.fixture(scope="module")
def street():
    cfg = TwinConfig()
    world = World.build(cfg, np.random.default_rng(1))
    return cfg, world, Tracer(cfg, world)


def _crossing_t(bs, ue, box):
    """Parameter interval [t0, t1] of the line bs + t (ue - bs) inside the box (slab method)."""
    d = ue - bs
    t0, t1 = -np.inf, np.inf
    for a in range(3):
        if abs(d[a]) < 1e-12:
            assert box[a] <= bs[a] <= box[a + 3]
            continue
        ta, tb = sorted(((box[a] - bs[a]) / d[a], (box[a + 3] - bs[a]) / d[a]))
        t0, t1 = max(t0, ta), min(t1, tb)
    return t0, t1


def test_los_flag_and_diffraction_follow_vehicle_blockage(street):
    cfg, world, tracer = street
    bs = np.asarray(cfg.bs.position_m, float)
    lam = C0 / cfg.bs.carrier_hz
    ue_spec = (CAR, 30.0, LANE_Y[3])

    free = tracer.trace(make_vehicles(cfg, [ue_spec]), 0)
    ue = ue_antenna(cfg, make_vehicles(cfg, [ue_spec]), 0)
    d = np.linalg.norm(ue - bs)
    assert free.is_los
    (i_los,) = np.flatnonzero(free.los == 1)
    assert free.kind[i_los] == LOS
    assert free.power_dbm[i_los] == pytest.approx(fspl_dbm(d, cfg.bs.carrier_hz), abs=1e-9)
    assert not (free.kind == DIFFRACTION).any()

    # a truck on the BS-UE line, in lane 1, between them
    t_lane = (LANE_Y[1] - bs[1]) / (ue[1] - bs[1])
    x_truck = bs[0] + t_lane * (ue[0] - bs[0])
    veh = make_vehicles(cfg, [ue_spec, (TRUCK, x_truck, LANE_Y[1])])
    truck = veh.boxes[1]
    t0, t1 = _crossing_t(bs, ue, truck)
    assert 0 < t0 < t1 < 1, "test geometry: the truck must cross the BS-UE segment"
    blocked = tracer.trace(veh, 0)
    assert not blocked.is_los
    assert not (blocked.kind == LOS).any() and not (blocked.los > 0).any()
    assert (blocked.kind == DIFFRACTION).sum() == 1
    i_dif = int(np.flatnonzero(blocked.kind == DIFFRACTION)[0])
    p_dif = blocked.power_dbm[i_dif]
    assert p_dif < free.power_dbm[i_los]
    # ITU-R P.526 single knife edge over the roof, at the middle of the truck's crossing
    tc = (t0 + t1) / 2
    line = bs + tc * (ue - bs)
    h = truck[5] - line[2]
    assert h > 0
    d1, d2 = tc * d, (1 - tc) * d
    nu = h * np.sqrt(2 / lam * (1 / d1 + 1 / d2))
    J = 6.9 + 20 * np.log10(np.sqrt((nu - 0.1) ** 2 + 1) + nu - 0.1)
    edge = np.array([line[0], line[1], truck[5]])
    length = np.linalg.norm(edge - bs) + np.linalg.norm(ue - edge)
    assert p_dif == pytest.approx(fspl_dbm(length, cfg.bs.carrier_hz) - J, abs=1e-6)
    # the diffracted ray leaves the BS towards the roof edge, not along the blocked line
    np.testing.assert_allclose(blocked.dod[i_dif], (edge - bs) / np.linalg.norm(edge - bs), atol=1e-9)
    assert blocked.toa_s[i_dif] == pytest.approx(length / C0, rel=1e-12)

    # the same truck well off the line (behind the BS, far upstream) blocks nothing
    veh_off = make_vehicles(cfg, [ue_spec, (TRUCK, -40.0, LANE_Y[1])])
    t0, t1 = _crossing_t(bs, ue, veh_off.boxes[1])
    assert not (t0 < t1 and t1 > 0 and t0 < 1)
    off = tracer.trace(veh_off, 0)
    assert off.is_los and (off.kind == LOS).sum() == 1
    assert off.power_dbm[off.kind == LOS][0] == pytest.approx(free.power_dbm[i_los], abs=1e-12)
    assert not (off.kind == DIFFRACTION).any()

    # a car (1.5 m) on the line under the ray does not block: the line passes over its roof there
    z_line = bs[2] + t_lane * (ue[2] - bs[2])
    assert z_line > cfg.traffic.vehicle_types[CAR].height_m + 0.2
    under = tracer.trace(make_vehicles(cfg, [ue_spec, (CAR, x_truck, LANE_Y[1])]), 0)
    assert under.is_los


def _blocked_by_sampling(p0, p1, boxes, margin):
    """Is any sample point of segment p0-p1 strictly inside a box grown by ``margin``?"""
    t = np.linspace(0, 1, int(np.linalg.norm(p1 - p0) / 0.005) + 2)
    pts = p0[None] + t[:, None] * (p1 - p0)[None]
    lo, hi = boxes[:, :3] - margin, boxes[:, 3:] + margin
    inside = np.all((pts[:, None] > lo[None]) & (pts[:, None] < hi[None]), axis=2)
    return bool(inside.any())


def test_los_flag_matches_sampled_geometry_in_traffic():
    """Over real traffic, a UE is LoS exactly when the BS-antenna segment misses every box
    (checked by dense sampling, ambiguous grazing cases skipped)."""
    cfg = TwinConfig()
    twin = Twin(cfg, seed=5)
    bs = np.asarray(cfg.bs.position_m, float)
    n_los = n_nlos = 0
    for _ in range(6):
        twin.advance(1.0)
        veh = twin.traffic.v
        boxes = np.concatenate([twin.world.buildings, veh.boxes])
        for r in np.flatnonzero(np.abs(veh.x) < 80):
            ue = ue_antenna(cfg, veh, r)
            sure = _blocked_by_sampling(bs, ue, boxes, -0.02)
            maybe = _blocked_by_sampling(bs, ue, boxes, +0.02)
            if sure != maybe:
                continue
            ps = twin.tracers[0].trace(veh, r)
            assert ps.is_los == (not sure), f"vehicle row {r} at x={veh.x[r]:.1f}: LoS flag disagrees"
            assert (ps.kind == LOS).sum() == int(ps.is_los)
            if ps.is_los:
                n_los += 1
            else:
                n_nlos += 1
                assert (ps.kind == DIFFRACTION).sum() == 1
    assert n_los >= 10 and n_nlos >= 3, (n_los, n_nlos)


# ----------------------------------------------------------------------------------------- 4. distance

def test_los_power_falls_as_free_space(street):
    cfg0, world, _ = street
    cfg = los_only(cfg0)
    tracer = Tracer(cfg, world)
    bs = np.asarray(cfg.bs.position_m, float)
    xs = [4.0, 8.0, 15.0, 25.0, 40.0, 60.0, 90.0]
    d, p, toa = [], [], []
    for x in xs:
        veh = make_vehicles(cfg, [(CAR, x, LANE_Y[2])])
        ps = tracer.trace(veh, 0)
        assert len(ps) == 1 and ps.kind[0] == LOS and ps.los[0] == 1
        d.append(np.linalg.norm(ue_antenna(cfg, veh, 0) - bs))
        p.append(ps.power_dbm[0])
        toa.append(ps.toa_s[0])
    d, p = np.array(d), np.array(p)
    slope, _ = np.polyfit(np.log10(d), p, 1)
    assert slope == pytest.approx(-20.0, abs=0.01)
    np.testing.assert_allclose(p, 20 * np.log10(C0 / cfg.bs.carrier_hz / (4 * np.pi * d)), rtol=0, atol=1e-9)
    np.testing.assert_allclose(toa, d / C0, rtol=1e-12)


# ----------------------------------------------------------------------------------------- 5. angles

def test_los_angles_match_geometry(street):
    cfg0, world, _ = street
    cfg = los_only(cfg0)
    tracer = Tracer(cfg, world)
    bs = np.asarray(cfg.bs.position_m, float)
    for spec in [(CAR, 20.0, LANE_Y[0]), (BUS, -30.0, LANE_Y[3]), (TRUCK, 55.0, LANE_Y[2]), (VAN, 3.0, LANE_Y[1])]:
        veh = make_vehicles(cfg, [spec])
        ue = ue_antenna(cfg, veh, 0)
        ps = tracer.trace(veh, 0)
        mat = ps.matrix()
        assert mat.shape == (10, 1) and mat[7, 0] == 1.0
        az, zen = az_zen_deg(bs - ue)                    # DoA: from the UE back towards the BS
        assert mat[3, 0] == pytest.approx(az, abs=1e-9)
        assert mat[4, 0] == pytest.approx(zen, abs=1e-9)
        az, zen = az_zen_deg(ue - bs)                    # DoD: from the BS towards the UE
        assert mat[5, 0] == pytest.approx(az, abs=1e-9)
        assert mat[6, 0] == pytest.approx(zen, abs=1e-9)
        assert mat[1, 0] == pytest.approx(np.linalg.norm(ue - bs) / C0, rel=1e-12)
        assert mat[2, 0] == pytest.approx(fspl_dbm(np.linalg.norm(ue - bs), cfg.bs.carrier_hz), abs=1e-9)
        ph = np.degrees(-2 * np.pi * cfg.bs.carrier_hz * np.linalg.norm(ue - bs) / C0)
        assert np.exp(1j * np.radians(mat[0, 0])) == pytest.approx(np.exp(1j * np.radians(ph)), abs=1e-6)
        assert -180 <= mat[0, 0] < 180


def test_wall_reflection_obeys_image_method(street):
    cfg0, world, _ = street
    prop = dc.replace(cfg0.propagation, los=True, diffraction=False, ground=False, walls=True,
                      vehicles=False, diffuse_paths=0)
    cfg = dc.replace(cfg0, propagation=prop)
    tracer = Tracer(cfg, world)
    bs = np.asarray(cfg.bs.position_m, float)
    f = cfg.bs.carrier_hz
    n_walls = 0
    for x in (10.0, 25.0, 45.0, 70.0):
        veh = make_vehicles(cfg, [(CAR, x, LANE_Y[2])])
        ue = ue_antenna(cfg, veh, 0)
        ps = tracer.trace(veh, 0)
        mat = ps.matrix()
        for i in np.flatnonzero(ps.kind == WALL):
            n_walls += 1
            pts = np.asarray(ps.points[i])
            assert pts.shape == (3, 3)
            np.testing.assert_allclose(pts[0], bs)
            np.testing.assert_allclose(pts[2], ue)
            r = pts[1]
            # on one facade: plane y = facade.y, inside its x extent and height
            fac = [fc for fc in world.facades if abs(r[1] - fc.y) < 1e-9]
            assert fac, f"reflection point {r} is on no facade plane"
            assert any(fc.x0 <= r[0] <= fc.x1 and 0 <= r[2] <= fc.height for fc in fac)
            assert abs(abs(r[1]) - cfg.road.facade_y_m) < 1e-9
            n = np.array([0.0, np.sign(-r[1]), 0.0])                  # facade normal, towards the road
            u_in = (r - bs) / np.linalg.norm(r - bs)
            u_out = (ue - r) / np.linalg.norm(ue - r)
            # angle of incidence equals angle of reflection (mirror law, same plane of incidence)
            np.testing.assert_allclose(u_out, u_in - 2 * (u_in @ n) * n, atol=1e-9)
            assert np.arccos(-u_in @ n) == pytest.approx(np.arccos(u_out @ n), abs=1e-9)
            # delay: distance from the BS image in the facade plane to the UE
            image = bs.copy()
            image[1] = 2 * r[1] - bs[1]
            L = np.linalg.norm(ue - image)
            assert mat[1, i] == pytest.approx(L / C0, rel=1e-12)
            # angles
            assert mat[5, i] == pytest.approx(az_zen_deg(r - bs)[0], abs=1e-9)
            assert mat[6, i] == pytest.approx(az_zen_deg(r - bs)[1], abs=1e-9)
            assert mat[3, i] == pytest.approx(az_zen_deg(r - ue)[0], abs=1e-9)
            assert mat[4, i] == pytest.approx(az_zen_deg(r - ue)[1], abs=1e-9)
            # power: free space over the unfolded length + TE Fresnel coefficient (ITU-R P.2040)
            cos_i = abs(u_in @ n)
            eps = prop.wall_permittivity - 1j * 17.98 * prop.wall_conductivity / (f / 1e9)
            root = np.sqrt(eps - (1 - cos_i**2))
            gamma = (cos_i - root) / (cos_i + root)
            assert 0 < abs(gamma) < 1
            assert mat[2, i] == pytest.approx(fspl_dbm(L, f) + 20 * np.log10(abs(gamma)), abs=1e-9)
            assert mat[2, i] < mat[2, ps.kind == LOS][0]
            assert mat[7, i] == 0
    assert n_walls >= 2


# ----------------------------------------------------------------------------------------- 6. camera

@pytest.mark.parametrize("extra", [(CAR, 18.0, LANE_Y[1]), (TRUCK, 30.0, LANE_Y[2]), (VAN, 12.0, LANE_Y[0]),
                                   (CAR, 14.0, LANE_Y[3])])
def test_camera_changes_only_inside_projected_vehicle(street, extra):
    cfg, world, _ = street
    renderer = Renderer(cfg, world, np.random.default_rng(7))
    base = [(BUS, 60.0, LANE_Y[3]), (CAR, 40.0, LANE_Y[0])]
    img0 = renderer.render(make_vehicles(cfg, base), np.random.default_rng(0))
    veh1 = make_vehicles(cfg, base + [extra])
    img1 = renderer.render(veh1, np.random.default_rng(0))
    assert img0.shape == img1.shape == (cfg.camera.resolution[1], cfg.camera.resolution[0], 3)
    assert img0.dtype == np.uint8

    box = veh1.boxes[-1]
    corners = np.array([[box[3 * bx], box[1 + 3 * by], box[2 + 3 * bz]]
                        for bx in (0, 1) for by in (0, 1) for bz in (0, 1)])
    uv, z = Camera(cfg.camera).project(corners)
    assert (z > 0).all()
    u0, v0 = uv.min(axis=0)
    u1, v1 = uv.max(axis=0)
    H, W = img0.shape[:2]
    assert 0 <= u0 and u1 < W and 0 <= v0 and v1 < H, "test geometry: vehicle must be fully in view"

    changed = np.any(img0 != img1, axis=2)
    vs, us = np.nonzero(changed)
    assert len(us) > 0
    m = 2.0
    assert us.min() >= u0 - m and us.max() <= u1 + m
    assert vs.min() >= v0 - m and vs.max() <= v1 + m
    iu0, iu1 = int(np.floor(u0)), int(np.ceil(u1))
    iv0, iv1 = int(np.floor(v0)), int(np.ceil(v1))
    area = (iu1 - iu0 + 1) * (iv1 - iv0 + 1)
    assert changed[iv0:iv1 + 1, iu0:iu1 + 1].sum() > 0.3 * area


# ----------------------------------------------------------------------------------------- 7. generate

def test_generate_summary_and_files(tmp_path):
    cfg = TwinConfig()
    cfg = dc.replace(cfg, camera=dc.replace(cfg.camera, format="png"))
    n = 7
    summary = generate(tmp_path, "gen", n, seed=2, cfg=cfg, progress=False)
    for key in ("scenes", "ues", "nlos_share", "los", "nlos", "paths_by_kind"):
        assert key in summary
    assert summary["scenes"] == n and summary["ues"] >= n
    assert summary["los"] + summary["nlos"] == summary["ues"]
    assert summary["nlos_share"] == pytest.approx(summary["nlos"] / summary["ues"], abs=1e-4)
    assert 0 <= summary["nlos_share"] <= 1
    scen = tmp_path / "gen"
    assert Path(summary["path"]) == scen

    images = sorted((scen / "RGB_images" / cfg.camera.id).iterdir())
    assert len(images) == n
    assert sorted(int(p.stem) for p in images) == list(range(n))
    assert all(p.suffix == ".png" for p in images)
    scene_dirs = [p for p in (scen / "wireless").iterdir() if p.is_dir() and p.name.startswith("scene_")]
    assert len(scene_dirs) == n
    n_ues = []
    for p in scene_dirs:
        files = sorted(q.name for q in p.iterdir())
        assert files[0] == "BS1_BS.mat" and len(files) == 2 and files[1].startswith("BS1_UE_0-")
        n_ues.append(int(files[1][len("BS1_UE_0-"):-4]))
    assert sum(n_ues) == summary["ues"]

    traj = scipy.io.loadmat(scen / "wireless" / "trajectory.mat", simplify_cells=True)
    scenes = traj["scene"]
    scenes = scenes if isinstance(scenes, list) else [scenes]
    assert len(scenes) == n
    info = traj["object_info"]
    assert {o["name"] for o in info} == {t.name for t in cfg.traffic.vehicle_types}
    for s, sc in enumerate(scenes):
        objs = sc["objects"]
        objs = objs if isinstance(objs, list) else [objs]
        locs = load_scene_mat(scen, s)["rx_locs"]
        assert len(objs) >= len(locs)
        ue = locs[0]
        assert (objs[0]["x"], objs[0]["y"]) == pytest.approx((ue[0], ue[1]))

    params = scipy.io.loadmat(scen / "wireless" / "params.mat")
    assert params["carrier_freq"].item() == cfg.bs.carrier_hz

    with pytest.raises(FileExistsError):
        generate(tmp_path, "gen", 2, seed=2, cfg=cfg, progress=False)
    again = generate(tmp_path, "gen", 2, seed=2, cfg=cfg, progress=False, overwrite=True)
    assert again["scenes"] == 2
    assert len(list((scen / "RGB_images" / cfg.camera.id).iterdir())) == 2


def test_generate_is_deterministic_per_seed(tmp_path):
    cfg = los_only(TwinConfig())
    a = generate(tmp_path / "a", "s", 3, seed=9, cfg=cfg, progress=False)
    b = generate(tmp_path / "b", "s", 3, seed=9, cfg=cfg, progress=False)
    for s in range(3):
        ma, mb = load_scene_mat(Path(a["path"]), s), load_scene_mat(Path(b["path"]), s)
        np.testing.assert_array_equal(ma["rx_locs"], mb["rx_locs"])


# ----------------------------------------------------------------------------------------- 8. config

def test_strict_config_names_the_field():
    with pytest.raises(ConfigError, match=r"road\.lanes\b"):
        from_dict(TwinConfig, {"road": {"lanes": 2}})
    with pytest.raises(ConfigError, match=r"road\.lanes_per_direction") as exc:
        from_dict(TwinConfig, {"road": {"lanes_per_direction": "two"}})
    assert "int" in str(exc.value)
    with pytest.raises(ConfigError, match=r"road\.lanes_per_direction"):
        from_dict(TwinConfig, {"road": {"lanes_per_direction": 9}})
    with pytest.raises(ConfigError, match=r"bs\.n_antennas"):
        from_dict(TwinConfig, {"bs": {"n_antennas": 32.5}})
    ok = from_dict(TwinConfig, {"road": {"lanes_per_direction": 3}, "bs": {"fov_deg": [360, 180]}})
    assert ok.road.lanes_per_direction == 3 and ok.bs.fov_deg == (360.0, 180.0)


def test_ground_bounce_is_shadowed_by_the_own_roof_unless_the_antenna_is_on_a_mast():
    from wmfm.sim.twin.generate import Twin
    from wmfm.sim.twin.propagation import C0, GROUND, fresnel

    def ground_paths(above_roof):
        cfg = TwinConfig()
        cfg = dc.replace(cfg, traffic=dc.replace(cfg.traffic, ue_antenna_above_roof_m=above_roof),
                         propagation=dc.replace(cfg.propagation, walls=False, vehicles=False, diffuse_paths=0))
        twin = Twin(cfg, 0)
        v = twin.traffic.v.subset(np.array([0]))          # a single vehicle on the road
        v.x[:], v.y[:] = 30.0, 1.75
        return cfg, v, twin.tracers[0].trace(v, 0)

    _, _, ps = ground_paths(0.1)
    assert not (ps.kind == GROUND).any()
    cfg, v, ps = ground_paths(1.5)
    k = np.flatnonzero(ps.kind == GROUND)
    assert len(k) == 1
    bs = np.asarray(cfg.bs.position_m)
    ue = np.array([30.0, 1.75, v.height[0] + 1.5])
    image = bs * np.array([1, 1, -1])
    length = np.linalg.norm(ue - image)
    cos_i = (ue[2] + bs[2]) / length
    gam = fresnel(np.array([cos_i]), cfg.propagation.ground_permittivity,
                  cfg.propagation.ground_conductivity, cfg.bs.carrier_hz, "TM")[0]
    lam = C0 / cfg.bs.carrier_hz
    expected = 20 * np.log10(lam / (4 * np.pi * length)) + 20 * np.log10(abs(gam))
    assert ps.power_dbm[k[0]] == pytest.approx(expected, abs=1e-9)
    assert ps.toa_s[k[0]] == pytest.approx(length / C0, rel=1e-12)
    assert ps.power_dbm[k[0]] < ps.power_dbm[ps.los > 0][0]


# ----------------------------------------------------------------------------------------- 9. UEs and worlds

def _objects(scen: Path) -> list[list[dict]]:
    traj = scipy.io.loadmat(scen / "wireless" / "trajectory.mat", simplify_cells=True)["scene"]
    return [sc["objects"] if isinstance(sc["objects"], list) else [sc["objects"]] for sc in traj]


def test_every_vehicle_in_the_coverage_zone_is_a_ue(tmp_path):
    """DeepVerse6G's convention: a scene's UEs are its moving objects (here: those in the zone,
    up to max_ues), UE j is object j, and a UE keeps its place while it stays in the zone."""
    cfg = TwinConfig()
    assert cfg.traffic.ue_policy == "all"
    n = 30
    generate(tmp_path, "all", n, seed=4, cfg=cfg, progress=False)
    lo, hi = cfg.traffic.coverage_x_m
    scenes = _objects(tmp_path / "all")
    per_scene = []
    for s, objs in enumerate(scenes):
        locs = load_scene_mat(tmp_path / "all", s)["rx_locs"]
        in_zone = [o for o in objs if lo <= o["x"] <= hi]
        per_scene.append(len(locs))
        assert len(locs) == min(cfg.traffic.max_ues, max(1, len(in_zone)))
        for j, loc in enumerate(locs):               # UE j is object j, antenna on its roof
            o = objs[j]
            assert (loc[0], loc[1]) == pytest.approx((o["x"], o["y"]))
            assert loc[2] == pytest.approx(o["bounds"][1][2] + cfg.traffic.ue_antenna_above_roof_m)
            if in_zone:
                assert lo <= o["x"] <= hi
    assert np.mean(per_scene) > 3, "the default street should serve several vehicles per scene"
    # trajectories: the UEs of a scene still in the zone a scene later stay UEs, first and in order
    ue_ids = [[o["id"] for o in objs[:k]] for objs, k in zip(scenes, per_scene)]
    kept = 0
    for s in range(n - 1):
        nxt = {o["id"]: o for o in scenes[s + 1]}
        stay = [i for i in ue_ids[s] if i in nxt and lo <= nxt[i]["x"] <= hi]
        assert ue_ids[s + 1][:len(stay)] == stay
        kept += len(stay)
    assert kept > 0


def test_ue_cap_and_fixed_policy(tmp_path):
    base = TwinConfig()
    cap = dc.replace(base, traffic=dc.replace(base.traffic, max_ues=2))
    s = generate(tmp_path, "cap", 10, seed=4, cfg=cap, progress=False)
    assert s["ues"] <= 20 and s["mean_ues_per_scene"] <= 2
    fixed = dc.replace(base, traffic=dc.replace(base.traffic, ue_policy="fixed", ues_per_scene=1))
    s = generate(tmp_path, "fixed", 10, seed=4, cfg=fixed, progress=False)
    assert s["ues"] == 10
    with pytest.raises(ConfigError, match=r"traffic\.ue_policy"):
        from_dict(TwinConfig, {"traffic": {"ue_policy": "some"}})


def test_worlds_differ_and_keep_their_street_under_every_traffic_seed(tmp_path):
    from wmfm.sim.twin import worlds
    from wmfm.sim.twin.generate import build_world

    cfgs = [worlds.draw(w) for w in range(6)]
    assert worlds.draw(3) == cfgs[3], "a world id draws the same world every time"
    for key in (lambda c: c.road.length_m, lambda c: c.bs.position_m, lambda c: c.camera.position_m,
                lambda c: c.traffic.headway_s, lambda c: c.layout_seed):
        assert len({key(c) for c in cfgs}) == len(cfgs)
    assert len({c.road.lanes_per_direction for c in cfgs}) >= 2
    # the same world under two traffic seeds: same buildings; another world: other buildings
    a, b, c = build_world(cfgs[1], seed=0), build_world(cfgs[1], seed=7), build_world(cfgs[2], seed=0)
    np.testing.assert_array_equal(a.buildings, b.buildings)
    assert a.buildings.shape != c.buildings.shape or not np.allclose(a.buildings, c.buildings)
    r = worlds.WorldRanges()
    uv, z = Camera(TwinConfig().camera).project(worlds.coverage_corners(TwinConfig()))
    assert (z > 0).all() and (uv >= 0).all() and (uv <= TwinConfig().camera.resolution).all()
    for cfg in cfgs:
        cfg.validate("world")
        assert r.camera_height_m[0] <= cfg.camera.position_m[2] <= r.camera_height_m[1] + 5.5
        assert cfg.camera.position_m[2] > cfg.bs.position_m[2], "the camera sits above the small cell"
        assert r.bs_height_m[0] <= cfg.bs.position_m[2] <= r.bs_height_m[1]
        # the camera sees the whole coverage zone
        uv, z = Camera(cfg.camera).project(worlds.coverage_corners(cfg))
        w, h = cfg.camera.resolution
        assert (z > 0).all() and (uv >= 0).all() and (uv[:, 0] <= w).all() and (uv[:, 1] <= h).all()


def test_a_drawn_world_loads_in_deepverse(tmp_path):
    from wmfm.sim.twin import worlds

    cfg = worlds.draw(5)
    s = generate(tmp_path, "w5", 4, seed=1, cfg=cfg, progress=False)
    assert s["world"] == 5
    ds = deepverse.Dataset(str(tmp_path / "w5" / "param" / "config.yaml"))
    locs = load_scene_mat(tmp_path / "w5", 2)["rx_locs"]
    for j in range(len(locs)):
        np.testing.assert_allclose(ds.get_sample("loc-ue", index=2, ue_idx=j), locs[j, :3])
    twin = yaml.safe_load((tmp_path / "w5" / "param" / "twin.json").read_text())
    assert twin["config"]["world"] == 5 and twin["config"]["layout_seed"] == cfg.layout_seed


def test_twin_show_draws_each_world(tmp_path):
    """`wmfm twin show` draws the world the scenario was generated in (its street and buildings)."""
    import matplotlib.pyplot as plt
    from wmfm.sim.show import draw_map
    from wmfm.sim.twin import worlds
    from wmfm.sim.twin.generate import build_world

    from wmfm.cli import main

    pngs = []
    for w in (2, 6):
        generate(tmp_path, f"w{w}", 3, seed=0, cfg=worlds.draw(w), progress=False)
        png = tmp_path / f"w{w}.png"
        assert main(["twin", "show", "--scenario", str(tmp_path / f"w{w}"), "--scene", "2", "--out", str(png)]) == 0
        assert png.stat().st_size > 20_000
        pngs.append(png.read_bytes())
        twin = yaml.safe_load((tmp_path / f"w{w}" / "param" / "twin.json").read_text())
        fig, ax = plt.subplots()
        cfg, bs = draw_map(ax, twin)
        expected = build_world(worlds.draw(w), seed=0).buildings
        drawn = np.array([[p.get_x(), p.get_y()] for p in ax.patches[1:1 + len(expected)]])   # 0: the road
        np.testing.assert_allclose(drawn, expected[:, [0, 1]])
        np.testing.assert_allclose(bs, worlds.draw(w).bs.position_m)
        plt.close(fig)
    assert pngs[0] != pngs[1]


def test_several_bs_per_world(tmp_path):
    """`--bs K`: BSs down the street, each with its camera and zone; every UE has a channel from every
    BS (DeepVerse6G's layout, read one BS at a time); BS 1 is the one-BS world's."""
    from wmfm.sim.dataset import build
    from wmfm.sim.twin import worlds

    one, three = worlds.draw(4), worlds.draw(4, n_bs=3)
    assert three.bs == one.bs and three.camera == one.camera and three.n_bs == 3
    zones = [three.site(k).traffic.coverage_x_m for k in range(3)]
    assert all(a[1] < b[0] for a, b in zip(zones, zones[1:])), "zones follow each other down the street"
    for k in range(3):                                   # each camera sees its own zone
        site = three.site(k)
        uv, z = Camera(site.camera).project(worlds.coverage_corners(site))
        assert (z > 0).all() and (uv >= 0).all() and (uv <= site.camera.resolution).all()
    generate(tmp_path, "w4", 12, seed=2, cfg=dc.replace(three, scene_period_s=0.5), progress=False)
    scen = tmp_path / "w4"
    assert scipy.io.loadmat(scen / "wireless" / "params.mat")["num_BS"].item() == 3
    assert sorted(p.name for p in (scen / "RGB_images").iterdir()) == ["unit1_cam1", "unit2_cam1", "unit3_cam1"]
    for s in range(12):
        files = sorted(p.name for p in (scen / "wireless" / f"scene_{s}").iterdir())
        n = {f.split("-")[1] for f in files if "_UE_" in f}
        assert len(n) == 1 and len(files) == 6, files          # the same UEs for every BS
    cache = build(scen, tmp_path / "c2", bs=2, image_size=(32, 32), progress=False, allow_one_class=True)
    assert cache["source"]["camera"] == "unit2_cam1"
    assert cache["source"]["bs_pose"]["position_m"] == pytest.approx(list(three.sites[0].bs.position_m))
    total = sum(int(f.split("-")[1][:-4]) for s in range(12)
                for f in os.listdir(scen / "wireless" / f"scene_{s}") if f.startswith("BS2_UE_"))
    assert cache["samples"] + cache["dropped_outside_fov"] + cache["dropped_no_path"] == total
    assert cache["samples"] > 0 and cache["dropped_outside_fov"] > 0, "BS 1's zone is behind BS 2's sector"


def test_frames_at_a_street_cameras_size_cached_at_the_models(tmp_path):
    """`--camera-size`: the scenario's frames at 1280x720 JPEG; the cache decodes them to its own size."""
    from PIL import Image
    from wmfm.sim import dataset

    from wmfm.cli import main
    assert main(["twin", "generate", "--out", str(tmp_path), "--name", "hd", "--scenes", "60", "--camera-size",
                 "1280x720", "--ues", "fixed", "--quiet"]) == 0
    frames = sorted((tmp_path / "hd" / "RGB_images").rglob("*.jpg"))
    assert len(frames) == 60
    with Image.open(frames[0]) as im:
        assert (im.format, im.size) == ("JPEG", (1280, 720))
    meta = dataset.build(tmp_path / "hd", tmp_path / "cache", image_size=(64, 64), progress=False, guard_s=0.2,
                         allow_one_class=True)
    assert meta["arrays"]["images"]["shape"][1:] == [64, 64, 3]
    assert main(["twin", "generate", "--out", str(tmp_path), "--name", "x", "--camera-size", "1280", "--quiet"]) == 2
