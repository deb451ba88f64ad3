"""A dataset cache or an unlabelled corpus in memory as torch tensors, label subsets, and the
training augmentations.

Each camera frame is held once and the samples (UEs) of a frame point at it. The data fit in
memory at the sizes this project trains on (a labelled cache of ~8000 samples of 2x32x64 CSI
is ~130 MB; the `cpu` preset's 20-world corpus ~1.8 GB), so batches are index gathers: no DataLoader
workers to compete with the compute threads of a small CPU host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wmfm.cache import SPLITS, load, load_corpus

from .hparams import AugmentConfig

TENSORS = ("csi", "frames", "frame", "split", "los", "position")


@dataclass
class Data:
    csi: torch.Tensor               # [N, 2, A, K] float32, as the cache stores it (not normalised)
    frames: torch.Tensor            # [F, H, W, 3] uint8, each camera frame once, at the model's image size
    frame: torch.Tensor             # [N] int64, row of the sample's frame in `frames` (UEs of a frame share it)
    split: torch.Tensor             # [N] int8: 0 train, 1 val, 2 test, -1 guard
    los: torch.Tensor | None        # [N] float32, 1 = LoS; None: unlabelled (a pretraining corpus)
    position: torch.Tensor | None   # [N, 3] float32, metres; None: unlabelled
    meta: dict

    def index(self, name: str) -> torch.Tensor:
        return torch.nonzero(self.split == SPLITS.index(name)).flatten()

    def image_batch(self, idx: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] float32 in [0, 1]: the frames of samples ``idx``."""
        return self.frames[self.frame[idx]].permute(0, 3, 1, 2).float().div_(255.0)

    def __len__(self) -> int:
        return len(self.csi)

    def to(self, device: str) -> Data:
        """All tensors on `device` (a GPU run keeps the whole data set in GPU memory)."""
        moved = {k: None if getattr(self, k) is None else getattr(self, k).to(device) for k in TENSORS}
        return Data(**moved, meta=self.meta)

    def unlabelled(self) -> Data:
        """The same samples without their labels (what pretraining may see)."""
        return Data(self.csi, self.frames, self.frame, self.split, None, None, self.meta)


def resize_frames(frames: np.ndarray, image_size: tuple[int, int]) -> torch.Tensor:
    """[F, h, w, 3] uint8 -> [F, H, W, 3] uint8 (area resampling; unchanged at the same size)."""
    images = torch.from_numpy(np.array(frames, dtype=np.uint8))
    if tuple(images.shape[1:3]) == tuple(image_size):
        return images
    parts = []
    for s in range(0, len(images), 1024):
        x = images[s:s + 1024].permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=tuple(image_size), mode="area")
        parts.append(x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous())
    return torch.cat(parts)


def load_data(cache: str | Path, image_size: tuple[int, int]) -> Data:
    """Read a `wmfm dataset build` cache; frames are resized (area) if the cache holds another size."""
    c = load(cache, mmap=True)
    scene = c["scene"].astype(np.int64)
    _, first, inverse = np.unique(scene, return_index=True, return_inverse=True)
    return Data(csi=torch.from_numpy(np.array(c["csi"], dtype=np.float32)),
                frames=resize_frames(np.asarray(c["images"][first]), image_size),
                frame=torch.from_numpy(inverse.astype(np.int64).reshape(-1)),
                split=torch.from_numpy(c["split"].astype(np.int8)),
                los=torch.from_numpy(c["los"].astype(np.float32)),
                position=torch.from_numpy(c["position"].astype(np.float32)),
                meta=c["meta"])


def concat(parts: list[Data], meta: dict | None = None) -> Data:
    """Samples of several data sets in one, unlabelled (frame rows renumbered)."""
    offsets = np.cumsum([0] + [len(p.frames) for p in parts[:-1]])
    return Data(csi=torch.cat([p.csi for p in parts]), frames=torch.cat([p.frames for p in parts]),
                frame=torch.cat([p.frame + int(o) for p, o in zip(parts, offsets)]),
                split=torch.cat([p.split for p in parts]), los=None, position=None,
                meta=meta or {"parts": [p.meta for p in parts]})


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


def csi_view(csi: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """A second physical view of each CSI for CSI-to-CSI contrast: augment_csi (noise at a random
    SNR, common phase), then a random cfg.dropout share of subcarriers and of antennas zeroed."""
    x = augment_csi(csi, cfg, g)
    b, _, a, k = x.shape
    keep_k = (torch.rand(b, 1, 1, k, generator=g) >= cfg.dropout).float().to(x.device)
    keep_a = (torch.rand(b, 1, a, 1, generator=g) >= cfg.dropout).float().to(x.device)
    return x * keep_k * keep_a


def augment_image(image: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Exposure, contrast and sensor noise on [B, 3, H, W] in [0, 1]; no geometric change."""
    b = image.shape[0]
    gain = 1 + cfg.brightness * (2 * torch.rand(b, 1, 1, 1, generator=g).to(image.device) - 1)
    contrast = 1 + cfg.contrast * (2 * torch.rand(b, 1, 1, 1, generator=g).to(image.device) - 1)
    mean = image.mean(dim=(1, 2, 3), keepdim=True)
    x = (image - mean) * contrast + mean * gain
    x = x + cfg.pixel_noise * torch.randn(image.shape, generator=g).to(image.device)
    return x.clamp_(0, 1)


def load_unlabelled(corpus: str | Path, image_size: tuple[int, int]) -> Data:
    """A `wmfm corpus build` corpus, every shard in one Data without labels (wmfm.cache.load_corpus
    opens only the unlabelled arrays)."""
    c = load_corpus(corpus)
    parts = [Data(csi=torch.from_numpy(np.array(s["csi"], dtype=np.float32)),
                  frames=resize_frames(np.asarray(s["frames"]), image_size),
                  frame=torch.from_numpy(s["frame"].astype(np.int64)),
                  split=torch.from_numpy(s["split"].astype(np.int8)),
                  los=None, position=None, meta={"shard": s["name"]}) for s in c["shards"]]
    return concat(parts, meta=c["meta"])
