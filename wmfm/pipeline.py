"""`wmfm experiment`: twin (or a DeepVerse6G scenario) -> dataset cache -> the WMFM vs E2E sweep.

Composed here, at the top, because it spans `sim` (twin, cache) and `model` (the sweep):
`model` reads caches (wmfm.cache) but never imports `sim` (DESIGN.md's dependency rule).

    OUT/data/twin     the twin scenario (unless --scenario / --cache)
    OUT/data/cache    its cache; both reused when they match the config
    OUT/...           report.json, report.md, plots, model.pt (model/experiment.py)
"""

from __future__ import annotations

import dataclasses as dc
import json
import shutil
import time
from pathlib import Path

from wmfm.config import to_dict


def twin_config(cfg):
    """The twin the experiment config asks for (frame period, UEs per frame) on the twin's defaults."""
    from wmfm.sim.twin.params import TwinConfig
    base = TwinConfig()
    return dc.replace(base, scene_period_s=cfg.scene_period_s,
                      traffic=dc.replace(base.traffic, ues_per_scene=cfg.ues_per_scene))


def prepare_cache(cfg, out: Path, scenario: Path | None, progress: bool) -> Path:
    """The twin (unless a scenario is given) and its cache under OUT/data, reused when already built
    from the same twin config, seed and scene count (or the same scenario) at the same image size."""
    from wmfm.sim.dataset import build
    from wmfm.sim.twin.generate import generate

    cache = out / "data" / "cache"
    twin = to_dict(twin_config(cfg))
    if (cache / "meta.json").is_file():
        meta = json.loads((cache / "meta.json").read_text())
        gen = meta.get("generator") or {}
        src = str(scenario.resolve()) if scenario else str((out / "data" / "twin").resolve())
        same_twin = scenario is not None or (gen.get("config") == twin and gen.get("seed") == cfg.twin_seed
                                             and meta["source"]["scenes"] == cfg.scenes)
        if meta["source"]["scenario"] == src and meta["image_size"] == list(cfg.image_size) and same_twin:
            return cache
    if scenario is None:
        scenario = out / "data" / "twin"
        generate(out / "data", "twin", cfg.scenes, cfg.twin_seed, twin_config(cfg), overwrite=True,
                 progress=progress)
    build(scenario, cache, image_size=cfg.image_size, overwrite=True, progress=progress)
    return cache


def check_out(out: Path, overwrite: bool) -> None:
    """The `--overwrite` rule of every command that writes a folder: an existing, non-empty OUT is
    refused unless asked; with `overwrite` the previous results go (a matching OUT/data is kept)."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out}: already exists (pass --overwrite to replace its results; a twin and "
                                  "cache in OUT/data that match the config are reused)")
        for p in out.iterdir():
            if p.name != "data":
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def run(cfg, out: str | Path, scenario: str | Path | None = None, cache: str | Path | None = None,
        device: str = "cpu", progress: bool = True, preset_name: str = "custom") -> dict:
    """The whole experiment into ``out``: data (made or given), then the sweep; returns the report."""
    from wmfm.model import experiment
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache) if cache else prepare_cache(cfg, out, Path(scenario) if scenario else None, progress)
    return experiment.run(cfg, out, cache, device=device, progress=progress, preset_name=preset_name, t_start=t0)
