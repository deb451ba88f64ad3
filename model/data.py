"""A dataset cache in memory as torch tensors, label subsets, and the training augmentations.

The whole cache fits in memory at the sizes this project trains on (5000 samples of
2x32x64 CSI and 64x64 images are ~140 MB), so batches are index gathers: no DataLoader
workers to compete with the two compute threads of a small CPU host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wmfm.cache import SPLITS, load

from .hparams import AugmentConfig


@dataclass
class Data:
    csi: torch.Tensor        # [N, 2, A, K] float32, as the cache stores it (not normalised)
    images: torch.Tensor     # [N, H, W, 3] uint8, at the model's image size
    los: torch.Tensor        # [N] float32, 1 = LoS
    position: torch.Tensor   # [N, 3] float32, metres
    frame: torch.Tensor      # [N] int64, camera frame (scene) id: UEs of one frame share the image
    split: torch.Tensor      # [N] int8: 0 train, 1 val, 2 test, -1 guard
    meta: dict

    def index(self, name: str) -> torch.Tensor:
        return torch.nonzero(self.split == SPLITS.index(name)).flatten()

    def image_batch(self, idx: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] float32 in [0, 1]."""
        return self.images[idx].permute(0, 3, 1, 2).float().div_(255.0)

    def __len__(self) -> int:
        return len(self.los)

    def to(self, device: str) -> Data:
        """All tensors on `device` (a GPU run keeps the whole cache in GPU memory)."""
        moved = {k: getattr(self, k).to(device) for k in ("csi", "images", "los", "position", "frame", "split")}
        return Data(**moved, meta=self.meta)


def load_data(cache: str | Path, image_size: tuple[int, int]) -> Data:
    """Read a `wmfm dataset build` cache; images are resized (area) if the cache holds another size."""
    c = load(cache, mmap=False)
    images = torch.from_numpy(c["images"])
    if tuple(images.shape[1:3]) != tuple(image_size):
        parts = []
        for s in range(0, len(images), 1024):
            x = images[s:s + 1024].permute(0, 3, 1, 2).float()
            x = F.interpolate(x, size=tuple(image_size), mode="area")
            parts.append(x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous())
        images = torch.cat(parts)
    return Data(csi=torch.from_numpy(c["csi"].astype(np.float32, copy=False)),
                images=images,
                los=torch.from_numpy(c["los"].astype(np.float32)),
                position=torch.from_numpy(c["position"].astype(np.float32)),
                frame=torch.from_numpy(c["scene"].astype(np.int64)),
                split=torch.from_numpy(c["split"].astype(np.int8)),
                meta=c["meta"])


def label_subset(los: torch.Tensor, train_idx: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Nested, class-stratified subset of the labelled train split.

    Each class is permuted once per seed and its first ceil(fraction * n_class) samples kept
    (at least one of each class), so the 5 % subset contains the 1 % one, and so on.
    """
    g = torch.Generator().manual_seed(10_000 + seed)
    keep = []
    for cls in (0.0, 1.0):
        members = train_idx[los[train_idx] == cls]
        if len(members) == 0:
            continue
        members = members[torch.randperm(len(members), generator=g)]
        keep.append(members[:max(1, math.ceil(fraction * len(members)))])
    return torch.sort(torch.cat(keep)).values


def augment_csi(csi: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Receiver noise at an SNR ~ U(snr_db) per sample and a random common phase; [B, 2, A, K]."""
    b = csi.shape[0]
    p = csi.pow(2).sum(1).mean(dim=(1, 2))                                     # [B] mean |h|^2
    lo, hi = cfg.snr_db
    snr = 10 ** ((lo + (hi - lo) * torch.rand(b, generator=g).to(csi.device)) / 10)
    sigma = torch.sqrt(p / snr / 2)[:, None, None, None]
    x = csi + sigma * torch.randn(csi.shape, generator=g).to(csi.device)
    if cfg.random_phase:
        phi = 2 * math.pi * torch.rand(b, generator=g).to(csi.device)
        c, s = torch.cos(phi)[:, None, None], torch.sin(phi)[:, None, None]
        x = torch.stack([c * x[:, 0] - s * x[:, 1], s * x[:, 0] + c * x[:, 1]], dim=1)
    return x


def augment_image(image: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Exposure, contrast and sensor noise on [B, 3, H, W] in [0, 1]; no geometric change."""
    b = image.shape[0]
    gain = 1 + cfg.brightness * (2 * torch.rand(b, 1, 1, 1, generator=g).to(image.device) - 1)
    contrast = 1 + cfg.contrast * (2 * torch.rand(b, 1, 1, 1, generator=g).to(image.device) - 1)
    mean = image.mean(dim=(1, 2, 3), keepdim=True)
    x = (image - mean) * contrast + mean * gain
    x = x + cfg.pixel_noise * torch.randn(image.shape, generator=g).to(image.device)
    return x.clamp_(0, 1)
