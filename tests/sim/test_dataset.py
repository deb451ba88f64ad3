"""The cache built through the official deepverse reader, its splits, foreign scenarios and
bad input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml
from PIL import Image
from wmfm.sim import dataset
from wmfm.sim.pixels import box_pixels, ue_pixel_stats
from wmfm.sim.scenario import ScenarioError
from wmfm.sim.show import dataset_stats

from wmfm import cache as cache_format


@pytest.fixture(scope="module")
def cache(twin_scenario, tmp_path_factory):
    scen, _ = twin_scenario
    out = tmp_path_factory.mktemp("cache") / "c"
    meta = dataset.build(scen, out, image_size=(64, 80), progress=False)
    return out, meta


def test_cache_matches_deepverse_and_the_scenario_files(twin_scenario, cache):
    import deepverse

    scen, summary = twin_scenario
    out, meta = cache
    d = cache_format.load(out)
    n = summary["ues"]                         # the twin writes no zero-path UE here
    assert meta["samples"] == n == 300
    assert d["csi"].shape == (n, 2, 32, 64) and d["csi"].dtype == np.float32
    assert d["images"].shape == (n, 64, 80, 3) and d["images"].dtype == np.uint8
    assert meta["counts"]["nlos"] == summary["nlos"]
    # one sample against deepverse directly, loaded with the config the twin wrote
    k = 137
    s, j = int(d["scene"][k]), 1 if k % 2 else 0
    cfg = yaml.safe_load((scen / "param" / "config.yaml").read_text())
    cfg["scenes"] = [s]
    (out.parent / "one.json").write_text(json.dumps(cfg))
    ds = deepverse.Dataset(str(out.parent / "one.json"))
    c = ds.get_sample("comm-ue", index=0, ue_idx=j, bs_idx=0).coeffs.reshape(32, 64)
    np.testing.assert_allclose(d["csi"][k, 0] + 1j * d["csi"][k, 1], c, rtol=1e-5, atol=1e-12)
    # LoS and position from the scene's .mat file; UE id = trajectory object j of that scene
    m = scipy.io.loadmat(scen / "wireless" / f"scene_{s}" / "BS1_UE_0-2.mat")
    assert d["los"][k] == int((m["channels"][0][j][0][0][0][7] == 1).any())
    np.testing.assert_allclose(d["position"][k], m["rx_locs"][j, :3], rtol=1e-6)
    traj = scipy.io.loadmat(scen / "wireless" / "trajectory.mat", simplify_cells=True)
    obj = traj["scene"][s]["objects"][j]
    assert d["ue"][k] == int(obj["id"])
    assert abs(obj["x"] - d["position"][k, 0]) < 1e-4
    # the image is the scene's frame, resized
    frame = np.asarray(Image.open(scen / "RGB_images" / "unit1_cam1" / f"{s}.jpg").resize((80, 64)))
    assert np.abs(frame.astype(int) - d["images"][k].astype(int)).mean() < 8
    assert np.allclose(d["time"], d["scene"] * 0.1)


def test_the_cache_and_the_xapp_codec_give_the_same_pixels(twin_scenario, cache):
    """Training = serving: a frame file through the cache and the same bytes through the xApp's
    codec (a CameraFrame message) give identical arrays; export re-checks the recorded probes."""
    from wmfm.xapp import codec

    from wmfm import image
    scen, _ = twin_scenario
    out, meta = cache
    d = cache_format.load(out)
    pre = meta["preprocessing"]["image"]
    assert pre["decoder"] == image.DECODER and cache_format.image_decoder(meta) == image.DECODER
    assert 1 <= len(pre["probes"]) <= dataset.PROBES
    lim = codec.Limits(32, 64, (64, 80), source_size=(64, 80))
    for probe in pre["probes"]:
        data = Path(probe["file"]).read_bytes()
        head = image.header(data)
        frame = codec.decode_frame(codec.encode_frame("cam0", 0, 1, data, head.width, head.height, "jpeg"), lim, 0)
        np.testing.assert_array_equal(frame.image, d["images"][probe["sample"]])
    # and at a camera's full size: a 1280x720 JPEG written to disk
    big = np.asarray(Image.fromarray(np.asarray(d["images"][0])).resize((1280, 720), Image.BICUBIC))
    path = out.parent / "720p.jpg"
    Image.fromarray(big).save(path, quality=85)
    lim = codec.Limits(32, 64, (64, 64), source_size=(64, 64))
    frame = codec.decode_frame(codec.encode_frame("cam0", 0, 1, path.read_bytes(), 1280, 720, "jpeg"), lim, 0)
    np.testing.assert_array_equal(frame.image, dataset.load_image(str(path), (64, 64)))


def test_box_holds_the_ue_antenna_and_the_poses_are_the_twins(twin_scenario, cache):
    scen, _ = twin_scenario
    out, meta = cache
    d = cache_format.load(out)
    n = meta["samples"]
    assert d["box"].shape == (n, 2, 3) and d["box"].dtype == np.float32 and meta["arrays"]["box"]["unit"] == "m"
    lo, hi, pos = d["box"][:, 0], d["box"][:, 1], d["position"]
    assert np.isfinite(d["box"]).all() and (hi > lo).all()
    assert ((lo[:, :2] <= pos[:, :2]) & (pos[:, :2] <= hi[:, :2])).all()
    twin = json.loads((scen / "param" / "twin.json").read_text())["config"]
    np.testing.assert_allclose(pos[:, 2], hi[:, 2] + twin["traffic"]["ue_antenna_above_roof_m"], atol=1e-5)
    assert meta["source"]["bs_pose"] == {"position_m": twin["bs"]["position_m"], "yaw_deg": twin["bs"]["yaw_deg"]}
    cam = twin["camera"]
    assert meta["source"]["camera_properties"] == {
        "location": cam["position_m"], "rotation": [cam["roll_deg"], cam["pitch_deg"], cam["yaw_deg"]],
        "FoV": cam["fov_deg"], "resolution": cam["resolution"]}


def test_box_pixels_of_a_box_straight_ahead_behind_and_at_the_edge():
    # camera at the origin looking along +x, 90 deg FoV over 200 px: f = 100 / tan(45 deg) = 100 px
    props = {"location": [0, 0, 0], "rotation": [0, 0, 0], "FoV": 90, "resolution": [200, 100]}
    f = 100 / np.tan(np.radians(45))
    boxes = np.array([
        [[10, -1, -0.5], [12, 1, 0.5]],       # 2 m wide, 1 m high, nearest face 10 m ahead
        [[-12, -1, -0.5], [-10, 1, 0.5]],     # behind the camera
        [[10, -20, -0.5], [10.5, -5, 0.5]],   # right of the axis (-y), past the frame's right edge
        [[10, 50, -0.5], [12, 52, 0.5]],      # outside the field of view
        [[np.nan] * 3, [np.nan] * 3],         # unknown
    ])
    w, h, visible = box_pixels(props, boxes, (64, 64))
    assert visible.tolist() == [True, False, True, False, False]
    assert w[0] == pytest.approx(f * 2 / 10 * 64 / 200) and h[0] == pytest.approx(f * 1 / 10 * 64 / 100)
    assert w[2] == pytest.approx((200 - (100 + f * 5 / 10.5)) * 64 / 200)     # clipped at u = W
    assert (w[~visible] == 0).all() and (h[~visible] == 0).all()
    w2, h2, _ = box_pixels(props, boxes[:1], (128, 256))                     # squash resize
    assert w2[0] == pytest.approx(4 * w[0]) and h2[0] == pytest.approx(2 * h[0])


def test_stats_report_the_pixels_a_ue_covers(cache, tmp_path):
    out, meta = cache
    summary, png = dataset_stats(out, tmp_path / "stats.png")
    px = summary["ue_pixels"]
    assert px["cache_input_size"] == "64x80" and px["boxes"] == meta["samples"]
    assert set(px["input_sizes"]) == {"64x80", "64x64", "128x128", "224x224"}
    assert 0.5 < px["visible_share"] <= 1 and set(px["by_distance_m"]) == {"0-20", "20-40", "40-60", "60+"}
    small, big = px["input_sizes"]["64x64"], px["input_sizes"]["128x128"]
    assert 0 < small["width_px"]["p10"] <= small["width_px"]["median"] <= small["width_px"]["p90"]
    assert big["width_px"]["median"] == pytest.approx(2 * small["width_px"]["median"], abs=0.02)   # rounded
    assert big["area_px"]["median"] == pytest.approx(4 * small["area_px"]["median"], rel=0.01)
    near = [b for b in small["by_distance_m"].values() if b["median_width_px"] is not None]
    assert len(near) >= 2 and near[0]["median_width_px"] > near[-1]["median_width_px"]    # farther: smaller
    assert json.loads(png.with_suffix(".json").read_text()) == summary and png.stat().st_size > 10_000
    # a cache without boxes (older format) or without camera properties: said, not failed
    assert "unavailable" in ue_pixel_stats(meta, None, np.zeros((3, 3)))
    bare = dict(meta, source={k: v for k, v in meta["source"].items() if k != "camera_properties"})
    assert "location" in ue_pixel_stats(bare, np.zeros((3, 2, 3)), np.zeros((3, 3)))["unavailable"]


def test_splits_are_disjoint_time_blocks_with_guard_gaps(cache):
    out, meta = cache
    d = cache_format.load(out)
    split, scene = d["split"], d["scene"]
    spans = {}
    for k in range(3):
        assert (split == k).sum() > 0
        spans[k] = set(scene[split == k].tolist())
    assert not (spans[0] & spans[1]) and not (spans[0] & spans[2]) and not (spans[1] & spans[2])
    guard = meta["split"]["guard_scenes"]
    assert guard >= 1
    tr, te = np.array(sorted(spans[0])), np.array(sorted(spans[2]))
    assert np.abs(tr[:, None] - te[None, :]).min() > guard // 2
    # each block is one contiguous run of scenes
    for b in meta["split"]["blocks"]:
        assert b["scene_end"] > b["scene_start"]
    assert sum(meta["split"]["samples"].values()) == meta["samples"]


def test_split_blocks_contiguous_and_guarded():
    sp = dataset.split_blocks(5000, guard_scenes=30, seed=1)
    lab = sp["label"]
    assert sp["guard_scenes"] == 30 and 3 <= len(sp["blocks"]) <= 20
    changes = np.flatnonzero(np.diff(lab[lab >= 0]) != 0)
    # between two different kept labels there is always a gap of exactly the guard
    kept = np.flatnonzero(lab >= 0)
    for c in changes:
        assert kept[c + 1] - kept[c] - 1 == 30
    counts = [(lab == k).sum() / 5000 for k in range(3)]
    assert counts[0] > 0.55 and counts[1] > 0.08 and counts[2] > 0.08


def _path_cell(mats):
    cell = np.empty((1, len(mats)), dtype=object)
    for j, m in enumerate(mats):
        s = np.empty((1, 1), dtype=[("p", "O")])
        s[0, 0]["p"] = m
        cell[0, j] = s
    return cell


def write_foreign(root: Path, n_scenes=6):
    """A scenario this project did not write: 2 BSs, PNG frames, a camera that is not the first,
    UEs with two paths and with none, no trajectory file, no loader config."""
    sc = root / "foreign"
    (sc / "param").mkdir(parents=True)
    (sc / "param" / "scenario.yaml").write_text(yaml.safe_dump({"modalities": [
        {"name": "camera", "path": "RGB_images", "sensors": [{"id": "cam_a"}, {"id": "cam_b"}]},
        {"name": "wireless", "path": "wireless"}]}))
    w = sc / "wireless"
    w.mkdir()
    scipy.io.savemat(w / "params.mat", {"carrier_freq": 60e9, "transmit_power": 0.0, "num_BS": 2.0,
                                        "user_grids": np.array([[1, 1, 1]]), "doppler_available": 0.0,
                                        "dual_polar_available": 0.0})
    bs = np.array([[0.0, 0.0, 6.0], [50.0, 0.0, 6.0]])
    for s in range(n_scenes):
        d = w / f"scene_{s}"
        d.mkdir()
        for k in (1, 2):
            scipy.io.savemat(d / f"BS{k}_BS.mat", {"channels": _path_cell([np.zeros((8, 0)), np.zeros((8, 0))]),
                                                   "rx_locs": np.c_[bs, np.zeros((2, 2))]})
            two = np.array([[10.0, -20], [1e-7, 1.2e-7], [-80, -95], [180, 150], [90, 92], [0, 30],
                            [90, 88], [1 if s % 2 else 0, 0]])     # R = 8 rows
            scipy.io.savemat(d / f"BS{k}_UE_0-2.mat", {
                "channels": _path_cell([two, np.zeros((8, 0))]),
                "rx_locs": np.array([[10.0 + s, 3, 1.5, 12, 80], [20, -3, 1.5, 21, 0]])})
    for cam in ("cam_a", "cam_b"):
        (sc / "RGB_images" / cam).mkdir(parents=True)
        for s in range(n_scenes):
            Image.fromarray(np.full((48, 64, 3), 20 * s + (100 if cam == "cam_b" else 0), np.uint8)).save(
                sc / "RGB_images" / cam / f"frame_{s}.png")
    return sc


def test_reads_a_scenario_this_project_did_not_write(tmp_path):
    sc = write_foreign(tmp_path)
    # six scenes cut into three splits: a split without NLoS cannot train a LoS head; said at once
    with pytest.raises(ScenarioError, match=r"split has no (NLoS|LoS) sample .*--allow-one-class"):
        dataset.build(sc, tmp_path / "c", bs=2, camera="cam_b", image_size=(24, 32), progress=False)
    assert not (tmp_path / "c").exists()
    meta = dataset.build(sc, tmp_path / "c", bs=2, camera="cam_b", image_size=(24, 32), progress=False,
                         allow_one_class=True)
    assert meta["warnings"] and all("split has no" in w for w in meta["warnings"])
    d = cache_format.load(tmp_path / "c")
    assert meta["samples"] == 6 and meta["dropped_no_path"] == 6      # the zero-path UE of every scene
    assert meta["source"]["num_bs"] == 2 and meta["source"]["camera"] == "cam_b"
    assert d["n_paths"].tolist() == [2] * 6
    assert d["los"].tolist() == [0, 1, 0, 1, 0, 1]
    np.testing.assert_allclose(d["position"][:, 0], 10.0 + np.arange(6))
    assert d["images"][3].mean() == pytest.approx(160, abs=1)          # cam_b frame of scene 3
    assert d["ue"].tolist() == [0] * 6                                 # no trajectory: UE index
    assert np.abs(d["csi"]).max() > 0 and d["csi"].shape == (6, 2, 32, 64)
    assert d["box"].shape == (6, 2, 3) and np.isnan(d["box"]).all()       # no trajectory: no box
    assert meta["source"]["bs_pose"] == {"position_m": [50.0, 0.0, 6.0], "yaw_deg": 0.0}   # BS2_BS.mat row 2
    assert "camera_properties" not in meta["source"]
    summary, _ = dataset_stats(tmp_path / "c")
    assert "no UE boxes" in summary["ue_pixels"]["unavailable"]


def _expect_error(scenario, tmp_path, match, **kw):
    out = tmp_path / "cache_out"
    with pytest.raises(ScenarioError, match=match):
        dataset.build(scenario, out, progress=False, **kw)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cache_out")], "temporary folder left"


@pytest.fixture
def copy_twin(twin_scenario, tmp_path):
    dst = tmp_path / "scen" / "small"
    shutil.copytree(twin_scenario[0], dst)
    return dst


def test_missing_file(copy_twin, tmp_path):
    (copy_twin / "wireless" / "scene_7" / "BS1_BS.mat").unlink()
    _expect_error(copy_twin, tmp_path, r"wireless/scene_7/BS1_BS\.mat: file missing")


def test_truncated_file(copy_twin, tmp_path):
    f = copy_twin / "wireless" / "scene_3" / "BS1_UE_0-2.mat"
    f.write_bytes(f.read_bytes()[:300])
    _expect_error(copy_twin, tmp_path, r"wireless/scene_3/BS1_UE_0-2\.mat: cannot be read.*truncated")


def test_truncated_image(copy_twin, tmp_path):
    f = copy_twin / "RGB_images" / "unit1_cam1" / "5.jpg"
    f.write_bytes(f.read_bytes()[:200])
    _expect_error(copy_twin, tmp_path, r"5\.jpg: image cannot be decoded")


def test_wrong_key(copy_twin, tmp_path):
    f = copy_twin / "wireless" / "params.mat"
    p = scipy.io.loadmat(f)
    p["carrier_frequency"] = p.pop("carrier_freq")
    scipy.io.savemat(f, {k: v for k, v in p.items() if not k.startswith("__")})
    _expect_error(copy_twin, tmp_path, r"wireless/params\.mat: key 'carrier_freq' missing")


def test_images_vs_scenes(copy_twin, tmp_path):
    (copy_twin / "RGB_images" / "unit1_cam1" / "149.jpg").unlink()
    _expect_error(copy_twin, tmp_path, r"RGB_images/unit1_cam1: 149 images for 150 scenes")


def test_rx_locs_vs_channels(copy_twin, tmp_path):
    f = copy_twin / "wireless" / "scene_9" / "BS1_UE_0-2.mat"
    m = scipy.io.loadmat(f)
    scipy.io.savemat(f, {"channels": m["channels"], "rx_locs": m["rx_locs"][:1]})
    _expect_error(copy_twin, tmp_path, r"scene_9/BS1_UE_0-2\.mat: rx_locs has shape \(1, 5\); expected \(2, 5\)")


def test_unknown_sensor(copy_twin, tmp_path):
    _expect_error(copy_twin, tmp_path, r"unknown camera sensor id 'front_cam'", camera="front_cam")


def test_cli_reports_one_line_and_exit_2(copy_twin, tmp_path):
    (copy_twin / "wireless" / "scene_2" / "BS1_BS.mat").unlink()
    r = subprocess.run([sys.executable, "-m", "wmfm", "dataset", "build", "--scenario", str(copy_twin),
                        "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "%|" not in ln]
    assert len(lines) == 1 and "scene_2/BS1_BS.mat: file missing" in lines[0], r.stderr
