"""`wmfm experiment`: twin worlds (or a DeepVerse6G scenario) -> caches and corpus -> the WMFM vs
E2E protocol.

Composed here, at the top, because it spans `sim` (twin, cache, corpus) and `model` (the
protocol): `model` reads caches and corpora (wmfm.cache) but never imports `sim` (DESIGN.md's
dependency rule).

    OUT/data/twin, OUT/data/cache       the labelled target world (unless --scenario / --cache)
    OUT/data/unseen/{twin,cache}        the unseen world (config unseen_world)
    OUT/data/corpus                     the unlabelled corpus (unless --corpus)
    OUT/...                             report.json, report.md, plots, model.pt (model/experiment.py)
Each is reused when it matches the config.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from wmfm import image
from wmfm.cache import image_decoder
from wmfm.config import to_dict


def twin_config(cfg, world: int | None = None):
    """The twin the experiment config asks for (frame period, UEs per frame) on the default street,
    or on drawn world ``world``."""
    from wmfm.sim.twin import worlds
    return worlds.every_vehicle_a_ue(world, cfg.scene_period_s, cfg.max_ues)


def prepare_cache(cfg, folder: Path, scenario: Path | None, progress: bool, world: int | None = None,
                  scenes: int | None = None) -> Path:
    """A twin world (the default street, or drawn ``world``; unless a scenario is given) and its
    cache in FOLDER/twin and FOLDER/cache, reused when already built from the same twin config, seed
    and scene count (or the same scenario) at the same image size."""
    from wmfm.sim.dataset import build
    from wmfm.sim.twin.generate import generate

    cache = folder / "cache"
    scenes = scenes or cfg.scenes
    twin = to_dict(twin_config(cfg, world))
    if (cache / "meta.json").is_file():
        meta = json.loads((cache / "meta.json").read_text())
        gen = meta.get("generator") or {}
        src = str(scenario.resolve()) if scenario else str((folder / "twin").resolve())
        same_twin = scenario is not None or (gen.get("config") == twin and gen.get("seed") == cfg.twin_seed
                                             and meta["source"]["scenes"] == scenes)
        same_pixels = meta["image_size"] == list(cfg.image_size) and image_decoder(meta) == image.DECODER
        if meta["source"]["scenario"] == src and same_pixels and same_twin:
            return cache
    if scenario is None:
        scenario = folder / "twin"
        generate(folder, "twin", scenes, cfg.twin_seed, twin_config(cfg, world), overwrite=True, progress=progress)
    build(scenario, cache, image_size=cfg.image_size, overwrite=True, progress=progress)
    return cache


def prepare_corpus(cfg, folder: Path, progress: bool) -> Path:
    """The preset's corpus in FOLDER (`wmfm corpus build`; finished worlds are reused)."""
    import dataclasses

    from wmfm.sim import corpus
    spec = dataclasses.replace(cfg.corpus, scene_period_s=cfg.scene_period_s, max_ues=cfg.max_ues)
    meta = corpus.build(folder, spec, progress=progress)
    if progress:
        print(corpus.describe(meta))
    return folder


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
        corpus: str | Path | None = None, device: str = "cpu", progress: bool = True,
        preset_name: str = "custom") -> dict:
    """The whole experiment into ``out``: data (made or given), then the protocol; returns the report.

    OUT/data/cache: the labelled target world (default street), OUT/data/unseen/cache: the unseen
    world, OUT/data/corpus: the unlabelled corpus (unless --corpus), each reused when it matches."""
    from wmfm.model import experiment
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache) if cache else prepare_cache(cfg, out / "data", Path(scenario) if scenario else None, progress)
    unseen = None
    if cfg.unseen_world is not None:
        unseen = prepare_cache(cfg, out / "data" / "unseen", None, progress, world=cfg.unseen_world,
                               scenes=cfg.unseen_scenes)
    if cfg.pretrain_on != "target" and corpus is None:
        corpus = prepare_corpus(cfg, out / "data" / "corpus", progress)
    from wmfm.sim.pixels import cache_rects  # the UEs' vehicle boxes: for the association score only
    boxes = {"target": cache_rects(cache, cfg.model.image_size)}
    if unseen is not None:
        boxes["unseen"] = cache_rects(unseen, cfg.model.image_size)
    return experiment.run(cfg, out, cache, corpus=corpus, unseen=unseen, device=device, progress=progress,
                          preset_name=preset_name, t_start=t0, boxes={k: v for k, v in boxes.items() if v})
