"""What the replay plays: a Recording, a time-ordered list of Scenes. A scene is one instant: a
camera frame (the file's bytes, as the camera wrote them) and/or the CSI of some UEs, with
their truth when it is known.

    load(scenario, split, cache)     a DeepVerse6G scenario (the twin's or a real download), read
                                     through the official `deepverse` package by the same code that
                                     builds the training cache, so a replayed report carries exactly
                                     the channel the model was evaluated on
    synthetic load                   wmfm.sim.loadgen: cameras and UEs at given rates, no truth
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wmfm.config import ConfigError

SPLITS = ("all", "train", "val", "test")


@dataclass
class Scene:
    """One instant of the recording: a camera frame and/or UE reports, with the truth per UE."""
    scene: int                     # scene index of the scenario (or the event's number in a synthetic load)
    t_s: float                     # scene time [s]
    camera: str                    # the camera that took `frame` (and sees these UEs)
    frame: bytes | None            # the JPEG/PNG file's bytes; None: no frame at this instant
    encoding: str                  # "jpeg" | "png"
    size: tuple[int, int]          # (width, height) of the frame
    ue_id: np.ndarray              # [n] int64
    csi: Sequence[np.ndarray]      # n x [2, A, K] float32 real/imag, as deepverse generates it
    los: np.ndarray | None = None  # [n] bool; None: unknown (a synthetic load)
    position: np.ndarray | None = None   # [n, 3] float64, metres
    cell: str | None = None        # "<plmn>:<nr_cell_id>" of these UEs; None: the replay spreads them


@dataclass
class Recording:
    scenario: str
    period_s: float                # seconds between scenes (a longer gap is cut to this when playing)
    split: str
    scenes: list[Scene]
    twin: dict | None = None       # the generating twin's config and summary, when our twin wrote it

    @property
    def n_reports(self) -> int:
        return sum(len(s.ue_id) for s in self.scenes)

    @property
    def cells(self) -> tuple[str, ...]:
        """The cells the scenes name (none: the replay spreads the UEs over its own)."""
        return tuple(sorted({s.cell for s in self.scenes if s.cell is not None}))

    @property
    def cameras(self) -> dict[str, tuple[int, int]]:
        """{camera id: (width, height)} of the frames, in order of appearance."""
        out: dict[str, tuple[int, int]] = {}
        for s in self.scenes:
            if s.frame is not None:
                out.setdefault(s.camera, tuple(s.size))
        return out

    def cameras_control(self) -> dict:
        """The xApp's `cameras` control for this recording: each camera with the cells it sees (none
        named: every cell) and its frame size (checked by the xApp)."""
        cells: dict[str, set] = {c: set() for c in self.cameras}
        for s in self.scenes:
            if s.cell is not None and s.camera in cells:
                cells[s.camera].add(s.cell)
        return {c: {"cells": sorted(cells[c]), "width": w, "height": h} for c, (w, h) in self.cameras.items()}


def scene_split(n_scenes: int, period_s: float, cache: Path | None, guard_s: float = 3.0,
                seed: int = 0) -> np.ndarray:
    """[S] int8 split label per scene (0 train, 1 val, 2 test, -1 guard), as `wmfm dataset build`
    cut it: from the cache's meta.json when given (the model's own split), else its defaults."""
    from .dataset import split_blocks
    guard = int(round(guard_s / period_s))
    if cache is not None:
        meta_file = Path(cache) / "meta.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"{meta_file}: not a wmfm cache (meta.json missing)")
        meta = json.loads(meta_file.read_text())
        if meta["source"]["scenes"] != n_scenes:
            raise ConfigError(f"--cache: built from {meta['source']['scenes']} scenes, the scenario has {n_scenes}")
        guard, seed = meta["split"]["guard_scenes"], meta["split"]["seed"]
        out = split_blocks(n_scenes, guard_scenes=guard, seed=seed)
        if out["blocks"] != meta["split"]["blocks"]:
            raise ConfigError(f"--cache: {meta_file} has split blocks this version does not reproduce")
        return out["label"]
    return split_blocks(n_scenes, guard_scenes=guard, seed=seed)["label"]


def load(scenario: str | Path, split: str = "test", cache: str | Path | None = None, bs: int = 1,
         camera: str | int | None = None, config: str | Path | None = None, scene_period_s: float | None = None,
         max_reports: int | None = None, progress: bool = True) -> Recording:
    """The scenes of ``split`` (UEs with at least one path, as the cache has them), through deepverse."""
    from PIL import Image
    from tqdm import tqdm

    from .dataset import read_scenes, scene_period
    from .scenario import ScenarioError, inspect

    if split not in SPLITS:
        raise ConfigError(f"--split: expected one of {SPLITS}, got {split!r}")
    info = inspect(scenario, bs=bs, camera=camera, progress=progress)
    if info.camera_id is None:
        raise ScenarioError(f"{scenario}/param/scenario.yaml: no 'camera' modality to replay")
    period = scene_period(info, scene_period_s)
    label = scene_split(len(info.scenes), period, Path(cache) if cache else None)
    by_scene: dict[int, list[int]] = {}
    total = 0
    for s, lk in zip(info.scenes, info.links):
        if split != "all" and label[s] != SPLITS.index(split) - 1:
            continue
        ues = [int(j) for j in np.flatnonzero(lk.n_paths > 0)]
        if ues:
            by_scene[s] = ues
            total += len(ues)
            if max_reports is not None and total >= max_reports:
                break
    if not by_scene:
        raise ScenarioError(f"{scenario}: no scene of split {split!r} has a UE with a path")
    scenes = []
    bar = tqdm(total=total, desc="load scenes", unit="UE", disable=not progress, leave=False)
    with tempfile.TemporaryDirectory(prefix="wmfm-replay-") as tmp:
        for sc in read_scenes(info, by_scene, Path(config) if config else None, Path(tmp), status=bar.set_postfix_str):
            bar.update(len(sc.outside_fov))
            if not sc.ues:                   # every UE outside the BS's field of view
                continue
            path = Path(sc.image)
            with Image.open(path) as im:
                size, fmt = im.size, im.format
            if fmt not in ("JPEG", "PNG"):
                raise ScenarioError(f"{path}: {fmt} frame (the camera messages carry JPEG or PNG)")
            csi = np.stack([sc.csi.real, sc.csi.imag], axis=1).astype(np.float32)
            scenes.append(Scene(sc.scene, sc.scene * period, info.camera_id, path.read_bytes(), fmt.lower(), size,
                                sc.ue_id, csi, info.links[sc.scene].los[sc.ues].astype(bool), sc.position))
            bar.update(len(sc.ues))
    bar.close()
    return Recording(str(scenario), period, split, scenes, info.twin)
