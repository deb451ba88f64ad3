"""The dataset cache format: what `wmfm dataset build` writes (wmfm.sim.dataset) and training
and export read (wmfm.model). Shared here so that `model` reads a cache without importing `sim`.

    CACHE/
      csi.npy       [N, 2, n_ue_ant * n_bs_ant, n_subcarriers] float32, real/imag (0 dBm transmit)
      images.npy    [N, H, W, 3] uint8 RGB, the camera frame of the sample's scene
      los.npy       [N] uint8, 1 = LoS           position.npy  [N, 3] float32, metres (UE antenna)
      scene.npy     [N] int32                    time.npy      [N] float64, seconds
      ue.npy        [N] int64, moving-object id  n_paths.npy   [N] int16
      box.npy       [N, 2, 3] float32, metres, min/max corners of the UE's vehicle (NaN: unknown)
      power_dbm.npy [N] float32                  split.npy     [N] int8: 0 train, 1 val, 2 test, -1 guard
      meta.json     source (with bs_pose and the camera's properties), generating config, loader
                    config, shapes, counts, split blocks
    meta["arrays"] lists the arrays a cache holds: a reader looks an optional one (box) up there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import ConfigError, check, to_dict
from .image import DECODER

SPLITS = ("train", "val", "test")
FORMAT = "wmfm-cache/1"


def load(cache: str | Path, mmap: bool = True) -> dict:
    """Open a cache: {name: array (memory-mapped for csi/images)} plus 'meta'."""
    cache = Path(cache)
    meta_file = cache / "meta.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{meta_file}: not a wmfm cache (meta.json missing)")
    meta = json.loads(meta_file.read_text())
    out = {"meta": meta}
    for name in meta["arrays"]:
        out[name] = np.load(cache / f"{name}.npy", mmap_mode="r" if mmap and name in ("csi", "images") else None)
    return out


# --------------------------------------------------------------------------- unlabelled corpus
#
#     CORPUS/
#       corpus.json          worlds, scenes, samples, frames, bytes, build settings (CORPUS_FORMAT)
#       shards/<world>/      what pretraining reads, and only that:
#         csi.npy            [N, 2, A, K] float32        frames.npy [F, H, W, 3] uint8, each frame once
#         frame.npy          [N] int32, row in frames     split.npy  [N] int8: 0 train, 1 val, -1 guard
#         shard.json         world, counts, shapes
#       labels/<world>/      LoS, positions, boxes, ... of the same samples: diagnostics only, never
#                            opened by `load_corpus`

CORPUS_FORMAT = "wmfm-corpus/1"
UNLABELLED = ("csi", "frames", "frame", "split")


@dataclass(frozen=True)
class CorpusSpec:
    """What `wmfm corpus build` makes (sim/corpus.py): saved in corpus.json and in an experiment's config."""

    worlds: int = 10                          # drawn worlds in the corpus
    scenes_per_world: int = 1000              # camera frames per world (every vehicle in the zone a UE)
    first_world: int = 1                      # world ids first_world, first_world + 1, ... (as `twin generate --world`)
    exclude: tuple[int, ...] = ()             # world ids never in the corpus (the unseen test world)
    seed: int = 0                             # traffic seed of world w: seed + w
    scene_period_s: float = 0.5
    image_size: tuple[int, int] = (64, 64)    # (H, W) of the stored frames
    max_ues: int = 20                         # UEs per scene at most

    def validate(self, where: str) -> None:
        check(self.worlds >= 1, f"{where}.worlds", "must be >= 1")
        check(self.scenes_per_world >= 200, f"{where}.scenes_per_world", "must be >= 200 (time blocks with guards)")
        check(self.first_world >= 0, f"{where}.first_world", "must be >= 0")
        check(self.seed >= 0, f"{where}.seed", "must be >= 0")
        check(0.001 <= self.scene_period_s <= 10, f"{where}.scene_period_s", "must be in 0.001..10 s")
        check(min(self.image_size) >= 8, f"{where}.image_size", "must be >= 8 pixels")

    def world_ids(self) -> list[int]:
        out, w = [], self.first_world
        while len(out) < self.worlds:
            if w not in self.exclude:
                out.append(w)
            w += 1
        return out

    def shard_settings(self) -> dict:
        """What a world's shard depends on (a shard built with other settings, or frames decoded by
        another preprocessing, is rebuilt)."""
        return {k: v for k, v in to_dict(self).items() if k not in ("worlds", "first_world", "exclude")} | {
            "image_decoder": DECODER}


def image_decoder(meta: dict) -> str | None:
    """The preprocessing that decoded a cache's frames (wmfm.image.DECODER), None when not recorded."""
    return ((meta.get("preprocessing") or {}).get("image") or {}).get("decoder")


class CorpusError(ConfigError):
    """A corpus folder is missing, incomplete or holds labels where pretraining reads."""


def corpus_meta(corpus: str | Path) -> dict:
    """corpus.json of a corpus folder (finished or not)."""
    meta_file = Path(corpus) / "corpus.json"
    if not meta_file.is_file():
        raise CorpusError(f"{meta_file}: not a wmfm corpus (corpus.json missing; `wmfm corpus build` writes it)")
    meta = json.loads(meta_file.read_text())
    if meta.get("format") != CORPUS_FORMAT:
        raise CorpusError(f"{meta_file}: format {meta.get('format')!r}, expected {CORPUS_FORMAT!r}")
    return meta


def load_corpus(corpus: str | Path) -> dict:
    """Open a finished corpus for pretraining: {"meta": corpus.json, "shards": [{name: memmap array}, ...]}.

    Only the arrays in UNLABELLED are opened, from shards/ only; a shard folder holding any other
    array is refused, so that no label can reach pretraining through a corpus."""
    corpus = Path(corpus)
    meta = corpus_meta(corpus)
    if not meta.get("complete"):
        raise CorpusError(f"{corpus}: incomplete ({len(meta['shards'])} of {meta['spec']['worlds']} worlds; an "
                          "interrupted build?): run the same `wmfm corpus build` again to finish it")
    shards = []
    for entry in meta["shards"]:
        folder = corpus / "shards" / entry["name"]
        extra = sorted(p.name for p in folder.glob("*.npy") if p.stem not in UNLABELLED)
        if extra:
            raise CorpusError(f"{folder}: holds {', '.join(extra)}; a shard may hold only {', '.join(UNLABELLED)}")
        missing = [n for n in UNLABELLED if not (folder / f"{n}.npy").is_file()]
        if missing:
            raise CorpusError(f"{folder}: {missing[0]}.npy missing (interrupted build? run `wmfm corpus build` again)")
        shards.append({n: np.load(folder / f"{n}.npy", mmap_mode="r") for n in UNLABELLED} | {"name": entry["name"]})
    return {"meta": meta, "shards": shards}
