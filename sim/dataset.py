"""`wmfm dataset build`: any DeepVerse6G scenario -> a compact, memory-mappable training cache.

The channels come from the official `deepverse` package (one `Dataset` per BS and per chunk
of scenes, since it generates everything eagerly as complex128); LoS labels from the per-path
flags; positions from `loc-ue`; the camera frame of each scene is decoded once, resized and
repeated for every UE of the scene; the UE identity and its vehicle's box come from its moving
object (UE j = object j); the BS and camera poses from the scenario's files.

Cache layout (N samples = UEs with at least one path, in time order):
  csi.npy       [N, 2, n_ue_ant * n_bs_ant, n_subcarriers] float32, real/imag, as deepverse
                generates it (0 dBm transmit power, no normalisation)
  images.npy    [N, H, W, 3] uint8 RGB
  los.npy       [N] uint8, 1 = LoS        position.npy [N, 3] float32, metres (UE antenna)
  scene.npy     [N] int32                 time.npy     [N] float64, seconds
  ue.npy        [N] int64 (moving-object id, or the UE index without a trajectory file)
  box.npy       [N, 2, 3] float32, metres: [[xmin, ymin, zmin], [xmax, ymax, zmax]] of the UE's
                vehicle (its object's `bounds`); NaN without a trajectory file
  n_paths.npy   [N] int16                 power_dbm.npy [N] float32, total received power
  split.npy     [N] int8: 0 train, 1 val, 2 test, -1 guard gap (unused)
  meta.json     source, generating config, loader config, shapes, counts, split; source.bs_pose
                {position_m [3], yaw_deg} (`tx_loc` or BS<k>_BS.mat, the loader's bs_antenna
                rotation[2]) and source.camera_properties {location, rotation [roll, pitch, yaw],
                FoV, resolution [W, H]} (the sensor's properties in param/scenario.yaml, when given)
Written to a temporary folder and renamed at the end: an interrupted build leaves nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

import wmfm
from wmfm import image
from wmfm.cache import FORMAT, SPLITS

from .pixels import CAMERA_KEYS
from .scenario import ScenarioError, ScenarioInfo, inspect

PROBES = 8                                  # frames whose decode export checks again

# Loader parameters used when the scenario carries none (param/config.yaml); the same
# antenna/OFDM layout as the twin's defaults.
DEFAULT_LOADER = {
    "camera": True, "lidar": False, "position": True,
    "comm": {
        "enable": True,
        "bs_antenna": {"shape": [32, 1], "rotation": [0, 0, 0], "spacing": 0.5, "FoV": [360, 180]},
        "ue_antenna": {"shape": [1, 1], "rotation": [0, 0, 0], "spacing": 0.5, "FoV": [360, 180]},
        "OFDM": {"bandwidth": 0.1, "subcarriers": 512, "selected_subcarriers": list(range(0, 512, 8))},
        "activate_RX_filter": 0, "generate_OFDM_channels": 1, "num_paths": 25, "enable_Doppler": 0,
    },
    "radar": {"enable": False},
}


def split_blocks(n_scenes: int, fractions=(0.7, 0.15, 0.15), guard_scenes: int = 30, seed: int = 0) -> dict:
    """Assign contiguous time blocks of scenes to train/val/test.

    The timeline is cut into equal blocks (3 to 20; at least ~10 guard lengths each) and the
    blocks are dealt to the splits by a seeded permutation, so every split samples several
    parts of the run. Scenes within ``guard`` of a boundary between two different splits are
    left out, so that a vehicle seen at the end of a train block is not seen again a frame
    later in a test block. Returns {"blocks": [...], "guard_scenes": g, "label": [S] int8}.
    """
    guard = max(0, min(guard_scenes, n_scenes // 50))
    n_blocks = int(np.clip(n_scenes // max(10 * guard, 1), 3, 20))
    counts = np.maximum(1, np.round(np.asarray(fractions) * n_blocks).astype(int))
    counts[0] = n_blocks - counts[1:].sum()
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(3), counts))
    edges = np.linspace(0, n_scenes, n_blocks + 1).round().astype(int)
    label = np.repeat(labels, np.diff(edges)).astype(np.int8)
    for b in range(1, n_blocks):
        if labels[b] != labels[b - 1]:
            e = edges[b]
            label[max(0, e - guard // 2): e + (guard - guard // 2)] = -1
    blocks = [{"split": SPLITS[lab], "scene_start": int(a), "scene_end": int(b)}
              for lab, a, b in zip(labels, edges[:-1], edges[1:])]
    return {"blocks": blocks, "guard_scenes": guard, "label": label}


def loader_params(info: ScenarioInfo, scenes: list[int], config: Path | None) -> dict:
    """deepverse parameters for ``scenes``, from --config, param/config.yaml or the defaults."""
    src = config or info.path / "param" / "config.yaml"
    params = dict(DEFAULT_LOADER)
    if src.is_file():
        try:
            text = src.read_text()
            loaded = json.loads(text) if src.suffix == ".json" else yaml.safe_load(text)
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            raise ScenarioError(f"{src}: loader config is not valid YAML/JSON ({exc})") from None
        if not isinstance(loaded, dict) or not isinstance(loaded.get("comm"), dict):
            raise ScenarioError(f"{src}: loader config needs a 'comm' section")
        params.update(loaded)
    elif config is not None:
        raise ScenarioError(f"{config}: loader config not found")
    params.update({
        "dataset_folder": str(info.path.resolve().parent), "scenario": info.path.name,
        "scenes": scenes, "basestations": [info.bs], "camera": info.camera_id is not None,
        "lidar": False, "position": True, "radar": {"enable": False},
    })
    return params


@contextlib.contextmanager
def _quiet_deepverse():
    """deepverse prints nested tqdm bars and status lines: silence them around its calls
    (TQDM_DISABLE is read by tqdm at import time, so redirect instead)."""
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        yield


def _open_dataset(params: dict, tmp: Path):
    import deepverse

    cfg_file = tmp / "loader.json"
    cfg_file.write_text(json.dumps(params))
    with _quiet_deepverse():
        return deepverse.Dataset(str(cfg_file))


def scene_period(info: ScenarioInfo, override: float | None = None) -> float:
    """Seconds between scenes: the override, else what our twin wrote, else 0.1 s."""
    return override or (info.twin or {}).get("config", {}).get("scene_period_s") or 0.1


def load_image(path: str, size: tuple[int, int]) -> np.ndarray:
    """A frame file -> uint8 [H, W, 3] RGB of ``size`` = (H, W), by the preprocessing the xApp's codec
    applies to the same bytes (wmfm.image: reduced DCT decode, then area resize)."""
    try:
        return image.decode(Path(path).read_bytes(), size)
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"{path}: image cannot be decoded ({exc})") from None


def build(scenario: str | Path, out: str | Path, bs: int = 1, camera: str | int | None = None,
          image_size: tuple[int, int] = (128, 128), config: str | Path | None = None,
          scene_period_s: float | None = None, guard_s: float = 3.0, chunk: int = 2500,
          overwrite: bool = False, progress: bool = True, seed: int = 0, allow_one_class: bool = False) -> dict:
    """Build the cache ``out`` from ``scenario``; returns meta (also written as meta.json).

    A split without LoS or without NLoS samples cannot train or evaluate a LoS classifier: the
    build stops with a hint, unless ``allow_one_class`` (then meta["warnings"] says so)."""
    t0 = time.perf_counter()
    scenario, out = Path(scenario), Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (use --overwrite to replace it)")
    info = inspect(scenario, bs=bs, camera=camera, progress=progress)
    if info.camera_id is None:
        raise ScenarioError(f"{scenario}/param/scenario.yaml: no 'camera' modality: WMFM needs camera frames")
    period = scene_period(info, scene_period_s)

    # samples: every (scene, UE) with at least one path
    index = [(s, j) for s, lk in zip(info.scenes, info.links) for j in np.flatnonzero(lk.n_paths > 0)]
    dropped = sum(int((lk.n_paths == 0).sum()) for lk in info.links)
    if not index:
        raise ScenarioError(f"{scenario}: no UE with at least one path in any scene")
    n = len(index)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        meta = _fill(info, index, tmp, n, image_size, Path(config) if config else None, period,
                     chunk, progress)
        n = meta["samples"]
        split = split_blocks(len(info.scenes), guard_scenes=int(round(guard_s / period)), seed=seed)
        scene_arr = np.load(tmp / "scene.npy")
        sample_split = split["label"][scene_arr]
        np.save(tmp / "split.npy", sample_split)
        los = np.load(tmp / "los.npy")
        warnings = _one_class_splits(los, sample_split)
        if warnings and not allow_one_class:
            raise ScenarioError(f"{scenario}: {warnings[0]}: generate more scenes (or try another --seed for the "
                                "split); --allow-one-class writes the cache anyway")
        source = {"scenario": str(scenario.resolve()), "bs": bs, "camera": info.camera_id,
                  "carrier_hz": info.carrier_hz, "num_bs": info.n_bs, "scenes": len(info.scenes),
                  "bs_pose": bs_pose(info, meta["loader"])}
        if (camera := camera_properties(info)) is not None:
            source["camera_properties"] = camera
        meta.update({
            "format": FORMAT,
            "created_by": f"wmfm {wmfm.__version__}",
            "source": source,
            "generator": info.twin,     # twin config + seed + summary when our twin wrote it
            "scene_period_s": period,
            "samples": n,
            "dropped_no_path": dropped,
            "dropped_outside_fov": meta["dropped_outside_fov"],
            "counts": {"los": int(los.sum()), "nlos": int(n - los.sum()),
                       "nlos_share": round(float(1 - los.mean()), 4)},
            "split": {"method": "contiguous time blocks, seeded block permutation, guard gaps",
                      "fractions": [0.7, 0.15, 0.15], "seed": seed,
                      "guard_scenes": split["guard_scenes"], "blocks": split["blocks"],
                      "samples": {name: int((sample_split == k).sum()) for k, name in enumerate(SPLITS)}
                      | {"guard": int((sample_split < 0).sum())}},
        })
        if warnings:
            meta["warnings"] = warnings
        meta["build_seconds"] = round(time.perf_counter() - t0, 2)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def bs_pose(info: ScenarioInfo, loader: dict) -> dict:
    """{"position_m": [x, y, z], "yaw_deg": yaw}: where deepverse puts the BS (`tx_loc`, else
    BS<k>_BS.mat) and the array's azimuth rotation (loader comm.bs_antenna.rotation[2])."""
    rot = np.ravel(loader.get("comm", {}).get("bs_antenna", {}).get("rotation", [0, 0, 0]))
    return {"position_m": [float(v) for v in info.bs_position],
            "yaw_deg": float(rot[2]) if len(rot) >= 3 else 0.0}


def camera_properties(info: ScenarioInfo) -> dict | None:
    """The camera sensor's location [m], rotation [roll, pitch, yaw] [deg], FoV [deg] and
    resolution [W, H] [px], as far as param/scenario.yaml gives them (None: none of them)."""
    props = {k: info.camera_properties[k] for k in CAMERA_KEYS if k in (info.camera_properties or {})}
    return props or None


def _one_class_splits(los: np.ndarray, split: np.ndarray) -> list[str]:
    """'the val split has no NLoS sample', ... for each split missing a class (empty list: none)."""
    out = []
    for k, name in enumerate(SPLITS):
        got = set(los[split == k].tolist())
        missing = [c for v, c in ((1, "LoS"), (0, "NLoS")) if v not in got]
        if missing:
            out.append(f"the {name} split has no {' and no '.join(missing)} sample "
                       f"({int((split == k).sum())} samples)")
    return out


@dataclass
class SceneSamples:
    """The UEs of one scene, as deepverse generates them (what the cache and the replay read)."""
    scene: int
    image: str                # the camera frame's file
    ues: list[int]            # UE index j within the scene's BS -> UE file
    csi: np.ndarray           # [n, n_ue_ant * n_bs_ant, n_sc] complex128
    position: np.ndarray      # [n, 3] float, metres (`loc-ue`)
    ue_id: np.ndarray         # [n] int64 moving-object id (the UE index without a trajectory file)
    outside_fov: list[int]    # UEs j whose every path lies outside the BS antenna's field of view (no channel)


def read_scenes(info: ScenarioInfo, by_scene: dict[int, list[int]], config: Path | None, tmp: Path,
                chunk: int = 2500, status=None) -> Iterator[SceneSamples]:
    """The UEs ``by_scene`` = {scene: [j, ...]} through deepverse, scene by scene in order (one
    ``Dataset`` per chunk of scenes: it generates everything eagerly). ``status(text)`` is told
    when a chunk is being loaded."""
    scenes = sorted(by_scene)
    for c0 in range(0, len(scenes), chunk):
        part = scenes[c0:c0 + chunk]
        if status:
            status(f"deepverse loading scenes {part[0]}-{part[-1]}")
        ds = _open_dataset(loader_params(info, part, config), tmp)
        if status:
            status("")
        owner = {}
        for oid, obj in getattr(ds.scenario, "moving_objects", {}).items():
            for t, j in zip(obj.time, obj.object_scene_id):
                owner[(t, j)] = oid
        for i, s in enumerate(part):
            ues, csi, pos, outside = [], [], [], []
            for j in (int(j) for j in by_scene[s]):
                ch = ds.get_sample("comm-ue", index=i, ue_idx=j, bs_idx=0)
                if ch.coeffs is None:   # every path outside the antenna field of view: this BS does not serve it
                    outside.append(j)
                    continue
                ues.append(j)
                csi.append(ch.coeffs.reshape(-1, ch.coeffs.shape[2]))
                pos.append(ds.get_sample("loc-ue", index=i, ue_idx=j))
            yield SceneSamples(s, ds.get_sample("cam", index=i, device_index=int(info.camera_index)), ues,
                               np.stack(csi) if csi else np.zeros((0, 0, 0), complex),
                               np.asarray(pos, float).reshape(-1, 3),
                               np.array([int(owner.get((s, j), j)) for j in ues], np.int64), outside)
        del ds


def _fill(info: ScenarioInfo, index, tmp: Path, n: int, image_size, config, period, chunk, progress) -> dict:
    """Read every sample through deepverse into memory-mapped arrays in ``tmp``."""
    from numpy.lib.format import open_memmap

    h, w = image_size
    arrays: dict[str, np.ndarray] = {}      # memmaps, opened at the first channel (its shape)
    los = np.zeros(n, np.uint8)
    pos = np.zeros((n, 3), np.float32)
    scene = np.zeros(n, np.int32)
    ue = np.zeros(n, np.int64)
    n_paths = np.zeros(n, np.int16)
    box = np.full((n, 2, 3), np.nan, np.float32)
    power = np.zeros(n, np.float32)
    by_scene: dict[int, list[int]] = {}
    for s, j in index:
        by_scene.setdefault(s, []).append(int(j))
    bar = tqdm(total=n, desc="cache", unit="sample", disable=not progress)
    k = outside = 0                         # samples are in (scene, UE) order, as `index`
    every = max(1, len(by_scene) // PROBES)
    probes: list[dict] = []                 # frame files and a sample of each: export decodes them again
    seen = 0
    for sc in read_scenes(info, by_scene, config, tmp, chunk, bar.set_postfix_str):
        outside += len(sc.outside_fov)
        bar.update(len(sc.ues) + len(sc.outside_fov))
        if not sc.ues:
            continue
        img = load_image(sc.image, (h, w))
        if seen % every == 0 and len(probes) < PROBES:
            probes.append({"file": str(Path(sc.image).resolve()), "sample": k})
        seen += 1
        lk = info.links[sc.scene]
        if not arrays:
            n_ant, n_sc = sc.csi.shape[1:]
            arrays["csi"] = open_memmap(tmp / "csi.npy", "w+", np.float32, (n, 2, n_ant, n_sc))
            arrays["images"] = open_memmap(tmp / "images.npy", "w+", np.uint8, (n, h, w, 3))
        for c, j, p, oid in zip(sc.csi, sc.ues, sc.position, sc.ue_id):
            arrays["csi"][k, 0], arrays["csi"][k, 1] = c.real, c.imag
            arrays["images"][k] = img
            pos[k] = p
            los[k] = lk.los[j]
            n_paths[k] = lk.n_paths[j]
            power[k] = lk.power_dbm[j]
            ue[k] = oid
            scene[k] = sc.scene
            if info.ue_bounds is not None:
                box[k] = info.ue_bounds[sc.scene][j]
            k += 1
    bar.close()
    if not arrays:
        raise ScenarioError(f"{info.path}: BS {info.bs} serves no UE: every path lies outside its antenna's field "
                            "of view (`comm.bs_antenna.FoV` of the loader config)")
    for a in arrays.values():
        a.flush()
    if k < n:                               # UEs outside the BS's field of view: shrink to the samples kept
        for name in list(arrays):
            src = arrays.pop(name)
            dst = open_memmap(tmp / f"{name}.part.npy", "w+", src.dtype, (k, *src.shape[1:]))
            for c0 in range(0, k, 4096):
                dst[c0:c0 + 4096] = src[c0:min(k, c0 + 4096)]
            dst.flush()
            del src, dst
            (tmp / f"{name}.part.npy").replace(tmp / f"{name}.npy")
        n = k
        los, pos, scene, ue, n_paths, box, power = (a[:k] for a in (los, pos, scene, ue, n_paths, box, power))
    for name, a in (("los", los), ("position", pos), ("scene", scene), ("time", scene * float(period)),
                    ("ue", ue), ("box", box), ("n_paths", n_paths), ("power_dbm", power)):
        np.save(tmp / f"{name}.npy", a)
    (tmp / "loader.json").unlink(missing_ok=True)
    return {
        "samples": n, "dropped_outside_fov": outside,
        "arrays": {
            "csi": {"shape": [n, 2, n_ant, n_sc], "dtype": "float32",
                    "layout": "[sample, real/imag, ue_ant*bs_ant, subcarrier]"},
            "images": {"shape": [n, h, w, 3], "dtype": "uint8", "layout": "[sample, H, W, RGB]"},
            "los": {"shape": [n], "dtype": "uint8"}, "position": {"shape": [n, 3], "dtype": "float32",
                                                                 "unit": "m"},
            "scene": {"shape": [n], "dtype": "int32"}, "time": {"shape": [n], "dtype": "float64", "unit": "s"},
            "ue": {"shape": [n], "dtype": "int64"},
            "box": {"shape": [n, 2, 3], "dtype": "float32", "unit": "m",
                    "layout": "[sample, min/max corner, xyz] of the UE's vehicle; NaN: no trajectory file"},
            "n_paths": {"shape": [n], "dtype": "int16"},
            "power_dbm": {"shape": [n], "dtype": "float32", "unit": "dBm"},
            "split": {"shape": [n], "dtype": "int8", "values": {"train": 0, "val": 1, "test": 2, "guard": -1}},
        },
        "loader": {k: v for k, v in loader_params(info, [], config).items()
                   if k not in ("scenes", "dataset_folder")},
        "image_size": [h, w],
        "preprocessing": {"image": {"decoder": image.DECODER, "opencv": image.cv2.__version__, "probes": probes}},
    }
