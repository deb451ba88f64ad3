"""`wmfm corpus build`: many twin worlds -> one unlabelled pretraining corpus (format: wmfm/cache.py).

For each world w in ``first_world .. first_world + worlds - 1`` (skipping ``exclude``, the
held-out worlds): the twin writes the drawn world's scenario (every vehicle in the coverage zone
a UE), `wmfm dataset build` reads it through the official `deepverse` package, and the cache is
split in two: the arrays pretraining may read (CSI, each camera frame once, the frame index, the
train/val time blocks) go to ``shards/w<w>/``; the labels and everything else to ``labels/w<w>/``,
for diagnostics. The scenario is deleted afterwards unless ``keep_scenarios``.

Each world is written to a temporary folder and renamed when complete, and corpus.json is
rewritten after every world: an interrupted build keeps the finished worlds, and running the
same command again resumes where it stopped (a world whose shard.json matches the settings is
reused; more worlds extend the corpus).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import wmfm
from wmfm.cache import CORPUS_FORMAT, SPLITS, CorpusSpec, load
from wmfm.config import to_dict


def build(out: str | Path, spec: CorpusSpec, progress: bool = True, keep_scenarios: bool = False) -> dict:
    """Build (or resume, or extend) the corpus in ``out``; returns corpus.json's content."""
    spec.validate("corpus")
    out = Path(out)
    if out.exists() and not (out / "corpus.json").is_file() and any(out.iterdir()):
        raise FileExistsError(f"{out}: exists and is not a corpus (no corpus.json)")
    for d in ("shards", "labels", "scenarios"):
        (out / d).mkdir(parents=True, exist_ok=True)
    entries = []
    ids = spec.world_ids()
    bar = tqdm(ids, desc="corpus", unit="world", disable=not progress)
    for w in bar:
        name = f"w{w:05d}"
        shard = out / "shards" / name
        done = shard / "shard.json"
        if done.is_file() and json.loads(done.read_text()).get("settings") == spec.shard_settings():
            entries.append(json.loads(done.read_text())["entry"])
        else:
            bar.set_postfix_str(f"world {w}")
            entries.append(_build_world(out, name, w, spec, keep_scenarios))
        _write_meta(out, spec, entries, ids)
        bar.set_postfix_str(f"{sum(e['samples'] for e in entries)} samples")
    if not keep_scenarios:
        shutil.rmtree(out / "scenarios", ignore_errors=True)
    return _write_meta(out, spec, entries, ids)


def _write_meta(out: Path, spec: CorpusSpec, entries: list[dict], ids: list[int]) -> dict:
    """corpus.json: the finished worlds."""
    meta = {
        "format": CORPUS_FORMAT, "created_by": f"wmfm {wmfm.__version__}",
        "spec": to_dict(spec), "complete": len(entries) == len(ids),
        "worlds": [e["world"] for e in entries], "shards": entries,
        "samples": sum(e["samples"] for e in entries), "frames": sum(e["frames"] for e in entries),
        "samples_by_split": {k: sum(e["samples_by_split"][k] for e in entries) for k in ("train", "val", "guard")},
        "nlos_share": (round(sum(e["nlos"] for e in entries) / max(1, sum(e["samples"] for e in entries)), 4)),
        "bytes": {part: sum(e["bytes"][part] for e in entries) for part in ("shards", "labels")},
        "build_seconds": round(sum(e["seconds"] for e in entries), 1),     # per world, resumed runs included
    }
    meta["shape"] = entries[0]["shape"] if entries else None
    tmp = out / ".corpus.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(out / "corpus.json")
    return meta


def _bytes(folder: Path) -> int:
    return int(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()))


def _build_world(out: Path, name: str, world: int, spec: CorpusSpec, keep_scenarios: bool) -> dict:
    from .dataset import build as build_cache
    from .twin import worlds
    from .twin.generate import generate

    t0 = time.perf_counter()
    tmp = out / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        twin = worlds.every_vehicle_a_ue(world, spec.scene_period_s, spec.max_ues)
        summary = generate(out / "scenarios", name, spec.scenes_per_world, spec.seed + world, twin,
                           progress=False, overwrite=True)
        cache = tmp / "cache"
        build_cache(out / "scenarios" / name, cache, image_size=tuple(spec.image_size), progress=False,
                    allow_one_class=True)
        entry = _split_cache(cache, tmp / "shard", tmp / "labels")
        entry |= {"name": name, "world": world, "twin_seed": spec.seed + world, "scenes": spec.scenes_per_world,
                  "mean_ues_per_scene": summary["mean_ues_per_scene"], "seconds": round(time.perf_counter() - t0, 1),
                  "bytes": {"shards": _bytes(tmp / "shard"), "labels": _bytes(tmp / "labels")}}
        (tmp / "shard" / "shard.json").write_text(json.dumps({"settings": spec.shard_settings(), "entry": entry},
                                                             indent=2))
        for part, dest in (("labels", out / "labels" / name), ("shard", out / "shards" / name)):
            shutil.rmtree(dest, ignore_errors=True)
            (tmp / part).rename(dest)         # the shard last: its shard.json marks the world done
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not keep_scenarios:
            shutil.rmtree(out / "scenarios" / name, ignore_errors=True)
    return entry


def _split_cache(cache: Path, shard: Path, labels: Path) -> dict:
    """A labelled cache -> the shard (UNLABELLED arrays; test blocks join train, a corpus has no
    test) and the labels folder (every other array and the cache's meta.json)."""
    shard.mkdir(parents=True)
    labels.mkdir(parents=True)
    c = load(cache)
    scene = np.asarray(c["scene"], dtype=np.int64)
    _, first, inverse = np.unique(scene, return_index=True, return_inverse=True)
    split = np.asarray(c["split"]).copy()
    split[split == SPLITS.index("test")] = SPLITS.index("train")
    np.save(shard / "frames.npy", np.asarray(c["images"][first]))
    np.save(shard / "frame.npy", inverse.astype(np.int32).reshape(-1))
    np.save(shard / "split.npy", split)
    del c
    (cache / "csi.npy").rename(shard / "csi.npy")
    for f in cache.iterdir():
        if f.name != "images.npy":
            f.rename(labels / f.name)
    los = np.load(labels / "los.npy")
    csi_shape = list(np.load(shard / "csi.npy", mmap_mode="r").shape)
    return {"samples": int(len(split)), "frames": int(len(first)), "nlos": int((los == 0).sum()),
            "samples_by_split": {"train": int((split == 0).sum()), "val": int((split == 1).sum()),
                                 "guard": int((split < 0).sum())},
            "shape": {"csi": csi_shape[1:], "frames": list(np.load(shard / "frames.npy", mmap_mode="r").shape[1:])}}


def describe(meta: dict) -> str:
    """Lines that summarise a corpus for the terminal."""
    gib = meta["bytes"]["shards"] / 2**30
    return "\n".join([
        f"worlds        {len(meta['worlds'])} ({meta['worlds'][0]}..{meta['worlds'][-1]})"
        + ("" if meta["complete"] else "  INCOMPLETE: run the same command again to resume"),
        f"samples       {meta['samples']} UE samples in {meta['frames']} frames; train "
        f"{meta['samples_by_split']['train']}, val {meta['samples_by_split']['val']}, NLoS share "
        f"{meta['nlos_share']:.1%} (labels kept apart)",
        f"on disk       shards {gib:.2f} GiB, labels {meta['bytes']['labels'] / 2**20:.1f} MiB",
        f"build         {meta['build_seconds']} s",
    ])


