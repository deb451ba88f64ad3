"""Inspection and validation of a DeepVerse6G scenario folder, real or synthetic.

The official `deepverse` package fails on bad input deep inside pandas/scipy, or silently
(a stray image shifts every index, an extra UE file drops UEs). Before anything is read
through it, `inspect` checks the layout described in docs/deepverse6g-format.md and
raises one `ScenarioError` naming the file and the field. It also reads what deepverse does
not expose correctly: the per-path LoS flags (its `LoS_status` is always -1), and what it
does not expose at all: the BS position, the camera's pose and intrinsics, and the 3-D box of
each UE's vehicle (UE j of a scene is moving object j of that scene).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io
import yaml
from natsort import natsorted

from wmfm.config import ConfigError

PARAMS_KEYS = ("carrier_freq", "transmit_power", "num_BS", "user_grids", "doppler_available",
               "dual_polar_available")
UE_FILE = re.compile(r"^BS(\d+)_UE_(\d+)-(\d+)\.mat$")


class ScenarioError(ConfigError):
    """A scenario file is missing, unreadable or inconsistent (the message names file and field);
    a user error like a bad config: one line, exit 2."""


@dataclass
class SceneLinks:
    """What one BS -> UE file of a scene says, per UE j."""

    n_paths: np.ndarray      # [N] int
    los: np.ndarray          # [N] bool: any path with LoS flag 1
    power_dbm: np.ndarray    # [N] total received power (-inf without paths)
    rx_locs: np.ndarray      # [N, 5]
    tx_loc: np.ndarray | None = None   # [3] BS position [m] when the file carries `tx_loc`


@dataclass
class ScenarioInfo:
    path: Path
    bs: int                                  # 1-based BS id used
    camera_id: str | None
    camera_index: int | None                 # position of the camera among the camera sensors
    carrier_hz: float
    n_bs: int
    scenes: list[int]                        # scene numbers, 0..S-1
    links: list[SceneLinks]                  # per scene
    image_files: list[str] = field(default_factory=list)
    has_trajectory: bool = False
    twin: dict | None = None                 # param/twin.json when the project's twin wrote it
    bs_position: np.ndarray | None = None    # [3] metres: `tx_loc`, else BS<k>_BS.mat rx_locs row k-1
    camera_properties: dict | None = None    # the camera sensor's `properties` in param/scenario.yaml
    ue_bounds: list[np.ndarray] | None = None  # per scene [N_s, 2, 3] min/max corners [m] of UE j's
                                               # vehicle (object j); None without a trajectory file


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _loadmat(path: Path, root: Path, **kw) -> dict:
    if not path.is_file():
        raise ScenarioError(f"{_rel(path, root)}: file missing")
    try:
        return scipy.io.loadmat(path, **kw)
    except Exception as exc:   # scipy raises ValueError/TypeError/EOFError... on truncated files
        raise ScenarioError(f"{_rel(path, root)}: cannot be read as a MAT file ({type(exc).__name__}: {exc}); "
                            "truncated or corrupt?") from None


def _paths_of(cell: np.ndarray, j: int, where: str) -> np.ndarray:
    try:
        m = np.asarray(cell[0][j][0][0][0], dtype=float)
    except (IndexError, TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}: channels{{{j + 1}}} is not a struct with a path matrix ({exc})") from None
    if m.ndim != 2 or m.shape[0] < 8:
        raise ScenarioError(f"{where}: channels{{{j + 1}}}.p has shape {m.shape}; expected R x P with R >= 8 rows")
    return m


def read_links(path: Path, root: Path, n: int) -> SceneLinks:
    """Validate one BS<k>_UE_0-<n>.mat and summarise its paths."""
    where = _rel(path, root)
    data = _loadmat(path, root)
    for key in ("channels", "rx_locs"):
        if key not in data:
            found = ", ".join(k for k in data if not k.startswith("__"))
            raise ScenarioError(f"{where}: key '{key}' missing (found: {found})")
    cell, locs = data["channels"], np.asarray(data["rx_locs"], dtype=float)
    if cell.dtype != object or cell.ndim != 2 or cell.shape[0] != 1:
        raise ScenarioError(f"{where}: channels must be a 1xN cell, got {cell.dtype} {cell.shape}")
    if cell.shape[1] != n:
        raise ScenarioError(f"{where}: channels has {cell.shape[1]} UEs but the file name says {n}")
    if locs.ndim != 2 or locs.shape != (n, 5):
        raise ScenarioError(f"{where}: rx_locs has shape {locs.shape}; expected ({n}, 5) to match channels")
    n_paths, los, power = np.zeros(n, int), np.zeros(n, bool), np.full(n, -np.inf)
    for j in range(n):
        m = _paths_of(cell, j, where)
        if not np.isfinite(m[:8]).all():
            raise ScenarioError(f"{where}: channels{{{j + 1}}}.p holds NaN/Inf")
        n_paths[j] = m.shape[1]
        if m.shape[1]:
            los[j] = bool((m[7] == 1).any())
            power[j] = 10 * np.log10(np.sum(10 ** (m[2] / 10)))
    tx = np.asarray(data["tx_loc"], dtype=float).ravel() if "tx_loc" in data else None
    if tx is not None and tx.shape != (3,):
        raise ScenarioError(f"{where}: tx_loc has {tx.size} values; expected 3 (x, y, z)")
    return SceneLinks(n_paths, los, power, locs, tx)


def _bs_position(scene_dir: Path, links: SceneLinks, bs: int, root: Path) -> np.ndarray:
    """Where BS ``bs`` stands [3], as deepverse places it: the UE file's `tx_loc`, else row
    bs-1 of rx_locs in BS<bs>_BS.mat (the BS is static: the first scene says it)."""
    if links.tx_loc is not None:
        return links.tx_loc
    f = scene_dir / f"BS{bs}_BS.mat"
    locs = np.asarray(_loadmat(f, root).get("rx_locs", np.zeros((0, 5))), dtype=float)
    if locs.ndim != 2 or locs.shape[0] < bs or locs.shape[1] < 3:
        raise ScenarioError(f"{_rel(f, root)}: rx_locs has shape {locs.shape}; BS {bs}'s position needs "
                            f"row {bs} (the UE files carry no tx_loc)")
    return locs[bs - 1, :3]


def _ue_bounds(objs: list, n: int, where: str) -> np.ndarray:
    """[n, 2, 3] `bounds` of the first n objects of a scene (UE j = object j)."""
    out = np.empty((n, 2, 3))
    for j, o in enumerate(objs[:n]):
        b = np.asarray(o.get("bounds") if isinstance(o, dict) else None, dtype=float)
        if b.shape != (2, 3):
            raise ScenarioError(f"{where}.objects{{{j + 1}}}.bounds has shape {b.shape}; "
                                "expected 2x3 [[xmin, ymin, zmin], [xmax, ymax, zmax]]")
        out[j] = b
    return out


def _scenario_yaml(root: Path) -> dict:
    f = root / "param" / "scenario.yaml"
    if not f.is_file():
        raise ScenarioError(f"{_rel(f, root)}: file missing (required: modalities and sensors)")
    try:
        cfg = yaml.safe_load(f.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{_rel(f, root)}: not valid YAML ({exc})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("modalities"), list):
        raise ScenarioError(f"{_rel(f, root)}: key 'modalities' missing or not a list")
    return cfg


def inspect(scenario: str | Path, bs: int = 1, camera: str | int | None = None,
            progress: bool = False) -> ScenarioInfo:
    """Check a scenario folder for BS ``bs`` (1-based) and camera ``camera`` (id, index, or None:
    BS k's first camera `unit<k>_cam1` when the scenario names its cameras as DeepVerse6G does,
    else the first camera) and return what it holds. Raises ScenarioError."""
    from tqdm import tqdm

    root = Path(scenario)
    if not root.is_dir():
        raise ScenarioError(f"{root}: scenario folder not found")
    cfg = _scenario_yaml(root)
    mods = {m.get("name"): m for m in cfg["modalities"] if isinstance(m, dict)}

    # wireless
    wmod = mods.get("wireless")
    wdir = root / (wmod.get("path", "wireless") if wmod else "wireless")
    params = _loadmat(wdir / "params.mat", root)
    for key in PARAMS_KEYS:
        if key not in params:
            raise ScenarioError(f"{_rel(wdir / 'params.mat', root)}: key '{key}' missing")
    carrier = float(np.asarray(params["carrier_freq"]).ravel()[0])
    n_bs = int(np.asarray(params["num_BS"]).ravel()[0])
    if not 1 <= bs <= max(n_bs, 1):
        raise ScenarioError(f"{_rel(wdir / 'params.mat', root)}: num_BS is {n_bs}; BS {bs} does not exist")
    scene_dirs = {}
    for d in wdir.iterdir() if wdir.is_dir() else []:
        m = re.fullmatch(r"scene_(\d+)", d.name)
        if m and d.is_dir():
            scene_dirs[int(m.group(1))] = d
    if not scene_dirs:
        raise ScenarioError(f"{_rel(wdir, root)}: no scene_<s> folders")
    scenes = sorted(scene_dirs)
    if scenes != list(range(len(scenes))):
        missing = sorted(set(range(scenes[-1] + 1)) - set(scenes))[:5]
        raise ScenarioError(f"{_rel(wdir, root)}: scene folders are not contiguous from 0 (missing scene_{missing[0]})")

    links = []
    for s in tqdm(scenes, desc="check scenario", unit="scene", disable=not progress, leave=False):
        d = scene_dirs[s]
        if not (d / f"BS{bs}_BS.mat").is_file():
            raise ScenarioError(f"{_rel(d / f'BS{bs}_BS.mat', root)}: file missing "
                                "(deepverse needs it for every active BS)")
        ue_files = [(f, UE_FILE.match(f)) for f in os.listdir(d)]
        ue_files = [(f, m) for f, m in ue_files if m and int(m.group(1)) == bs]
        if len(ue_files) != 1:
            raise ScenarioError(f"{_rel(d, root)}: expected exactly one BS{bs}_UE_0-<N>.mat, found "
                                f"{[f for f, _ in ue_files] or 'none'}")
        f, m = ue_files[0]
        if int(m.group(2)) != 0:
            raise ScenarioError(f"{_rel(d / f, root)}: UE range must start at 0")
        links.append(read_links(d / f, root, int(m.group(3))))

    # camera
    info = ScenarioInfo(root, bs, None, None, carrier, n_bs, scenes, links,
                        bs_position=_bs_position(scene_dirs[0], links[0], bs, root))
    cmod = mods.get("camera")
    if camera is not None or cmod is not None:
        entries = [s for s in (cmod or {}).get("sensors", []) or [] if isinstance(s, dict)]
        sensors = [s.get("id") for s in entries]
        if not sensors:
            raise ScenarioError(f"{_rel(root / 'param' / 'scenario.yaml', root)}: modality 'camera' lists no sensors")
        if camera is None:
            idx = sensors.index(f"unit{bs}_cam1") if f"unit{bs}_cam1" in sensors else 0
        elif isinstance(camera, int) or (isinstance(camera, str) and camera.isdigit() and camera not in sensors):
            idx = int(camera)
            if not 0 <= idx < len(sensors):
                raise ScenarioError(f"param/scenario.yaml: camera index {idx} out of range (sensors: {sensors})")
        elif camera in sensors:
            idx = sensors.index(camera)
        else:
            raise ScenarioError(f"param/scenario.yaml: unknown camera sensor id '{camera}' (sensors: {sensors})")
        cam_dir = root / cmod.get("path", "RGB_images") / str(sensors[idx])
        if not cam_dir.is_dir():
            raise ScenarioError(f"{_rel(cam_dir, root)}: folder of camera '{sensors[idx]}' missing")
        files = natsorted(str(Path(r) / f) for r, _, fs in os.walk(cam_dir) for f in fs)   # as deepverse lists them
        if len(files) != len(scenes):
            raise ScenarioError(f"{_rel(cam_dir, root)}: {len(files)} images for {len(scenes)} scenes "
                                "(deepverse maps image k to scene k: counts must match)")
        info.camera_id, info.camera_index, info.image_files = str(sensors[idx]), idx, files
        props = entries[idx].get("properties")
        info.camera_properties = props if isinstance(props, dict) else None

    # moving objects (optional): UE j of a scene is object j of that scene
    omod = next((m for n, m in mods.items() if n and "object" in n), None)
    if omod is not None:
        tfile = root / omod.get("path", "")
        data = _loadmat(tfile, root, simplify_cells=True)
        for key in ("object_info", "scene"):
            if key not in data:
                raise ScenarioError(f"{_rel(tfile, root)}: key '{key}' missing")
        tscenes = data["scene"] if isinstance(data["scene"], list) else [data["scene"]]
        if len(tscenes) < len(scenes):
            raise ScenarioError(f"{_rel(tfile, root)}: scene has {len(tscenes)} entries for {len(scenes)} scenes")
        bounds = []
        for s, (entry, lk) in enumerate(zip(tscenes, links)):
            objs = entry.get("objects", []) if isinstance(entry, dict) else []
            objs = [objs] if isinstance(objs, dict) else list(objs)
            if len(objs) < len(lk.n_paths):
                raise ScenarioError(f"{_rel(tfile, root)}: scene{{{s + 1}}}.objects has {len(objs)} objects "
                                    f"for {len(lk.n_paths)} UEs")
            bounds.append(_ue_bounds(objs, len(lk.n_paths), f"{_rel(tfile, root)}: scene{{{s + 1}}}"))
        info.has_trajectory, info.ue_bounds = True, bounds
    twin = root / "param" / "twin.json"
    if twin.is_file():
        info.twin = json.loads(twin.read_text())
    return info
