"""Task heads and the end-to-end (E2E) baseline network.

`Heads` maps a feature vector to a LoS logit and a position in metres. For WMFM the
inputs are frozen, cached encoder outputs (by default the representations before the
projections, `WMFM.features_*`; optionally the joint-space embeddings): `fused` = both
concatenated, `csi` = the CSI one only (the xApp's fallback when a frame is missing),
`image` = the image one only. The E2E baseline is the same two encoders, randomly initialised, with the
same heads on their (un-normalised) projections, all trained on the labels.
"""

from __future__ import annotations

import torch
from torch import nn

from .encoders import build_encoders
from .hparams import ModelConfig

MODALITIES = ("fused", "csi", "image")


def features(z_csi: torch.Tensor | None, z_img: torch.Tensor | None, modality: str) -> torch.Tensor:
    if modality == "fused":
        return torch.cat([z_csi, z_img], dim=-1)
    if modality == "csi":
        return z_csi
    if modality == "image":
        return z_img
    raise ValueError(f"modality: expected one of {MODALITIES}, got {modality!r}")


def _mlp(d_in: int, hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, d_out))


class Heads(nn.Module):
    """features [B, F] -> (LoS logit [B], position [B, 3] in metres).

    Two independent MLPs on standardised inputs (`in_mean`, `in_std`: statistics of the train
    split's features, no labels needed). The position MLP predicts standardised coordinates;
    `pos_mean` and `pos_std` (from the labelled subset) bring them back to metres.
    """

    def __init__(self, in_dim: int, hidden: int, dropout: float, pos_mean=None, pos_std=None,
                 in_mean=None, in_std=None):
        super().__init__()
        self.los = _mlp(in_dim, hidden, 1, dropout)
        self.pos = _mlp(in_dim, hidden, 3, dropout)
        self.register_buffer("pos_mean", torch.zeros(3) if pos_mean is None else torch.as_tensor(pos_mean).float())
        self.register_buffer("pos_std", torch.ones(3) if pos_std is None else torch.as_tensor(pos_std).float())
        self.register_buffer("in_mean", torch.zeros(in_dim) if in_mean is None else torch.as_tensor(in_mean).float())
        self.register_buffer("in_std", torch.ones(in_dim) if in_std is None else torch.as_tensor(in_std).float())

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = (f - self.in_mean) / self.in_std
        return self.los(f).squeeze(-1), self.pos(f) * self.pos_std + self.pos_mean


class E2E(nn.Module):
    """(CSI [B, 2, A, K], image [B, 3, H, W]) -> (LoS logit [B], position [B, 3] m), all trainable."""

    def __init__(self, cfg: ModelConfig, modality: str, hidden: int, dropout: float, pos_mean=None, pos_std=None):
        super().__init__()
        if modality not in MODALITIES:
            raise ValueError(f"modality: expected one of {MODALITIES}, got {modality!r}")
        self.modality = modality
        csi, image = build_encoders(cfg)
        self.csi_encoder = csi if modality in ("fused", "csi") else None
        self.image_encoder = image if modality in ("fused", "image") else None
        d = cfg.embed_dim * (2 if modality == "fused" else 1)
        self.heads = Heads(d, hidden, dropout, pos_mean, pos_std)

    def forward(self, csi: torch.Tensor | None, image: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        z_c = self.csi_encoder(csi) if self.csi_encoder is not None else None
        z_i = self.image_encoder(image) if self.image_encoder is not None else None
        return self.heads(features(z_c, z_i, self.modality))
