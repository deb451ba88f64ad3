"""Task heads and the end-to-end (E2E) baseline network.

`Heads` maps a feature vector to a LoS logit and a position in metres. For WMFM the
inputs are frozen, cached encoder outputs (by default the representations before the
projections, `WMFM.features_*`; optionally the joint-space embeddings): `csi` = the CSI one
(the xApp's fallback when a frame is missing), `image` = the image one only.

`FusedHeads` (modality `fused`) lets the CSI attend over the image tokens of its frame: one
small cross-attention whose scores start from the pretrained pointer (the CSI embedding's
similarity with each token: where the CSI says its vehicle is in the picture), so the camera
refines where the CSI points. The frame is embedded once (its tokens) and every UE paired
with it only adds this attention and the MLPs.

The E2E baseline is the same two encoders and the same heads (FusedHeads for `fused`),
randomly initialised and all trained on the labels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import _coords, build_encoders
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
        self.hidden, self.dropout = hidden, dropout

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = (f - self.in_mean) / self.in_std
        return self.los(f).squeeze(-1), self.pos(f) * self.pos_std + self.pos_mean

    def spec(self) -> dict:
        """Constructor arguments (besides the buffers, which the state dict carries)."""
        return {"kind": "mlp", "in_dim": int(self.in_mean.numel()), "hidden": self.hidden, "dropout": self.dropout}


class _Attend(nn.Module):
    """One task's cross-attention over the tokens and its MLP (LoS and position each have one, so
    each task keeps the weights of its own best validation point)."""

    def __init__(self, csi_dim: int, embed_dim: int, attn_dim: int, hidden: int, dropout: float, d_out: int):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(csi_dim, attn_dim), nn.Linear(embed_dim, attn_dim), nn.Linear(embed_dim,
                                                                                                           attn_dim)
        self.norm = nn.LayerNorm(attn_dim)
        self.pointer = nn.Parameter(torch.tensor(1.0))
        self.mlp = _mlp(csi_dim + attn_dim + 2, hidden, d_out, dropout)

    def attention(self, f, e, tokens, beta: float) -> torch.Tensor:
        scores = torch.einsum("bd,btd->bt", self.q(f), self.k(tokens)) / math.sqrt(self.q.out_features)
        return torch.softmax(scores + self.pointer * beta * torch.einsum("be,bte->bt", e, tokens), dim=-1)

    def forward(self, f, e, tokens, xy, beta: float) -> torch.Tensor:
        a = self.attention(f, e, tokens, beta)
        ctx = self.norm(torch.einsum("bt,btd->bd", a, self.v(tokens)))
        return self.mlp(torch.cat([f, ctx, a @ xy], dim=-1))


class FusedHeads(nn.Module):
    """(CSI feature [B, Fc], CSI embedding [B, E] unit norm, image tokens [B, T, E] unit norm of the
    UE's frame) -> (LoS logit [B], position [B, 3] m).

    Per task, attention over the tokens: score_t = q(f) . k(tok_t) / sqrt(d) + pointer * beta *
    (e . tok_t), ``pointer`` learnable (initialised at 1: the pretrained alignment decides at
    first). The attended value (layer-normed) and the attended token coordinates (where in the
    picture, in [-1, 1]) are concatenated to the standardised CSI feature and read by the task's MLP.
    """

    def __init__(self, csi_dim: int, embed_dim: int, grid: tuple[int, int], hidden: int, dropout: float,
                 beta: float = 10.0, attn_dim: int = 64, pos_mean=None, pos_std=None, in_mean=None, in_std=None):
        super().__init__()
        self.los = _Attend(csi_dim, embed_dim, attn_dim, hidden, dropout, 1)
        self.pos = _Attend(csi_dim, embed_dim, attn_dim, hidden, dropout, 3)
        self.beta, self.grid, self.attn_dim = float(beta), (int(grid[0]), int(grid[1])), attn_dim
        self.hidden, self.dropout = hidden, dropout
        self.register_buffer("token_xy", _coords(*self.grid)[0].flatten(1).t().flip(1).contiguous())  # [T, 2] (x, y)
        self.register_buffer("pos_mean", torch.zeros(3) if pos_mean is None else torch.as_tensor(pos_mean).float())
        self.register_buffer("pos_std", torch.ones(3) if pos_std is None else torch.as_tensor(pos_std).float())
        self.register_buffer("in_mean", torch.zeros(csi_dim) if in_mean is None else torch.as_tensor(in_mean).float())
        self.register_buffer("in_std", torch.ones(csi_dim) if in_std is None else torch.as_tensor(in_std).float())

    def attention(self, f: torch.Tensor, e: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """[B, T] the position branch's attention of each UE over its frame's tokens."""
        return self.pos.attention((f - self.in_mean) / self.in_std, e, tokens, self.beta)

    def forward(self, f: torch.Tensor, e: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = (f - self.in_mean) / self.in_std
        los = self.los(f, e, tokens, self.token_xy, self.beta).squeeze(-1)
        return los, self.pos(f, e, tokens, self.token_xy, self.beta) * self.pos_std + self.pos_mean

    def spec(self) -> dict:
        return {"kind": "fused_attention", "csi_dim": int(self.in_mean.numel()), "embed_dim": self.los.k.in_features,
                "grid": list(self.grid), "hidden": self.hidden, "dropout": self.dropout, "beta": self.beta,
                "attn_dim": self.attn_dim}


def build_heads(spec: dict) -> nn.Module:
    """Heads or FusedHeads from their spec() (a checkpoint's record); the state dict fills the rest."""
    args = {k: v for k, v in spec.items() if k not in ("kind", "input", "state_dict")}
    if spec.get("kind", "mlp") == "fused_attention":
        return FusedHeads(**(args | {"grid": tuple(args["grid"])}))
    return Heads(args["in_dim"], args["hidden"], args["dropout"])


class E2E(nn.Module):
    """(CSI [B, 2, A, K], image [B, 3, H, W]) -> (LoS logit [B], position [B, 3] m), all trainable.

    `fused`: the CSI feature, its unit-norm projection and the image tokens into FusedHeads (the
    WMFM fused heads' architecture); `csi` / `image`: Heads on that encoder's projection."""

    def __init__(self, cfg: ModelConfig, modality: str, hidden: int, dropout: float, pos_mean=None, pos_std=None,
                 beta: float = 10.0):
        super().__init__()
        if modality not in MODALITIES:
            raise ValueError(f"modality: expected one of {MODALITIES}, got {modality!r}")
        self.modality = modality
        csi, image = build_encoders(cfg)
        self.csi_encoder = csi if modality in ("fused", "csi") else None
        self.image_encoder = image if modality in ("fused", "image") else None
        if modality == "fused":
            self.heads = FusedHeads(cfg.csi.feature_dim, cfg.embed_dim, image.grid, hidden, dropout, beta,
                                    pos_mean=pos_mean, pos_std=pos_std)
        else:
            self.heads = Heads(cfg.embed_dim, hidden, dropout, pos_mean, pos_std)

    def forward(self, csi: torch.Tensor | None, image: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.modality == "fused":
            f = self.csi_encoder.features(csi)
            tok = F.normalize(self.image_encoder.encode(image)[2], dim=-1)
            return self.heads(f, F.normalize(self.csi_encoder.proj(f), dim=-1), tok)
        z_c = self.csi_encoder(csi) if self.csi_encoder is not None else None
        z_i = self.image_encoder(image) if self.image_encoder is not None else None
        return self.heads(features(z_c, z_i, self.modality))
