"""WMFM: the CSI and image encoders with L2-normalised embeddings and the learnable temperature.

The model owns the temperature (a log logit scale, initialised at ln(1/0.07)); the loss
(`loss.py`) owns the pairing; the training loop owns the clamp at ln(100) (`clamp_`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import build_encoders
from .hparams import ModelConfig


class WMFM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.csi_encoder, self.image_encoder = build_encoders(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(float(cfg.init_logit_scale)))

    def encode_csi(self, csi: torch.Tensor) -> torch.Tensor:
        """CSI [B, 2, n_ant, n_sc] -> unit-norm embedding [B, embed_dim]."""
        return F.normalize(self.csi_encoder(csi), dim=-1)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Image [B, 3, H, W] in [0, 1] -> unit-norm embedding [B, embed_dim]."""
        return F.normalize(self.image_encoder(image), dim=-1)

    def features_csi(self, csi: torch.Tensor) -> torch.Tensor:
        """CSI -> the representation before the projection [B, feature_dim] (what the heads read)."""
        return self.csi_encoder.features(csi)

    def features_image(self, image: torch.Tensor) -> torch.Tensor:
        """Image -> the representation before the projection [B, feature_dim]."""
        return self.image_encoder.features(image)

    def forward(self, csi: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.encode_csi(csi), self.encode_image(image), self.logit_scale.exp()

    @torch.no_grad()
    def clamp_(self) -> None:
        self.logit_scale.clamp_(0.0, self.cfg.max_logit_scale)
