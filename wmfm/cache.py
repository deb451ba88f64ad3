"""The dataset cache format: what `wmfm dataset build` writes (wmfm.sim.dataset) and training
and export read (wmfm.model). Shared here so that `model` reads a cache without importing `sim`.

    CACHE/
      csi.npy       [N, 2, n_ue_ant * n_bs_ant, n_subcarriers] float32, real/imag (0 dBm transmit)
      images.npy    [N, H, W, 3] uint8 RGB, the camera frame of the sample's scene
      los.npy       [N] uint8, 1 = LoS           position.npy  [N, 3] float32, metres (UE antenna)
      scene.npy     [N] int32                    time.npy      [N] float64, seconds
      ue.npy        [N] int64, moving-object id  n_paths.npy   [N] int16
      power_dbm.npy [N] float32                  split.npy     [N] int8: 0 train, 1 val, 2 test, -1 guard
      meta.json     source, generating config, loader config, shapes, counts, split blocks
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

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
