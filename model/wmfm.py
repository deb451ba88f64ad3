"""WMFM: the CSI and image encoders with L2-normalised embeddings and image tokens, the
learnable temperature, and the pretraining-only CSI self-supervision heads.

The model owns the temperature (a log logit scale, initialised at ln(1/0.07)); the loss
(`loss.py`) owns the pairing; the training loop owns the clamp at ln(100) (`clamp_`).
`csi_decoder` (masked angle-delay modelling) and `csi_ssl` (CSI-to-CSI contrast) are used by
pretraining only: no deployable graph reads them.
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
        fc = cfg.csi.feature_dim
        self.csi_decoder = nn.Linear(fc, cfg.n_ant * cfg.n_sc)               # log angle-delay map
        self.csi_ssl = nn.Sequential(nn.Linear(fc, fc), nn.GELU(), nn.Linear(fc, cfg.embed_dim))

    def encode_csi(self, csi: torch.Tensor) -> torch.Tensor:
        """CSI [B, 2, n_ant, n_sc] -> unit-norm embedding [B, embed_dim]."""
        return F.normalize(self.csi_encoder(csi), dim=-1)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Image [B, 3, H, W] in [0, 1] -> unit-norm embedding [B, embed_dim]."""
        return F.normalize(self.image_encoder(image), dim=-1)

    def encode_image_all(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Image -> (feature [B, Fi], unit-norm embedding [B, E], unit-norm tokens [B, T, E]), one pass."""
        f, p, tok = self.image_encoder.encode(image)
        return f, F.normalize(p, dim=-1), F.normalize(tok, dim=-1)

    def features_csi(self, csi: torch.Tensor) -> torch.Tensor:
        """CSI -> the representation before the projection [B, feature_dim] (what the heads read)."""
        return self.csi_encoder.features(csi)

    def features_image(self, image: torch.Tensor) -> torch.Tensor:
        """Image -> the representation before the projection [B, feature_dim]."""
        return self.image_encoder.features(image)

    def forward(self, csi: torch.Tensor, image: torch.Tensor, mil: bool = False, keep: torch.Tensor | None = None,
                view: torch.Tensor | None = None):
        """Pretraining's forward (what DDP wraps). global_clip: (z_csi [B, E], z_img [B, E], scale).
        ``mil``: {"z_csi" [B, E], "tokens" [F, T, E] unit norm (image [F, ...] one per frame),
        "scale", "log_map" [B, A, K] the CSI's log angle-delay map, "masked_map" [B, A, K] that map
        predicted from the map masked by ``keep`` (None without), "ssl" ([B, E], [B, E]) the
        CSI-to-CSI projections of csi and ``view`` (None without)}. The angle-delay map is
        computed once, and the image only up to the token stage."""
        if not mil:
            return self.encode_csi(csi), self.encode_image(image), self.logit_scale.exp()
        enc = self.csi_encoder
        ad = enc.transform(csi)
        f_c = enc.features_of_map(ad)
        out = {"z_csi": F.normalize(enc.proj(f_c), dim=-1),
               "tokens": F.normalize(self.image_encoder.tokens(image), dim=-1), "scale": self.logit_scale.exp(),
               "log_map": ad[:, 1], "masked_map": None, "ssl": None}
        if keep is not None:
            out["masked_map"] = self.csi_decoder(enc.features_of_map(ad * keep)).view(-1, *csi.shape[2:])
        if view is not None:
            out["ssl"] = (self.csi_ssl(f_c), self.csi_ssl(enc.features(view)))
        return out

    @torch.no_grad()
    def clamp_(self) -> None:
        self.logit_scale.clamp_(0.0, self.cfg.max_logit_scale)
