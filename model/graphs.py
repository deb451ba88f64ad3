"""The four deployable graphs as torch modules, with their input/output specs: what `wmfm export`
turns into ONNX and what the xApp's torch backend runs (through checkpoint.load_graphs).

    csi_encoder    csi [B, 2, A, K] f32 (raw channel, real/imag)   -> feature [B, Fc], embedding [B, E]
    image_encoder  image [B, 3, H, W] f32 RGB in [0, 1]            -> feature [B, Fi], embedding [B, E]
    heads_fused    csi_feature [B, Fc], image_feature [B, Fi]      -> los_logit [B], p_los [B], position [B, 3] m
    heads_csi      csi_feature [B, Fc]                             -> los_logit [B], p_los [B], position [B, 3] m
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .heads import Heads
from .wmfm import WMFM


class _Encoder(nn.Module):
    """An encoder as the xApp runs it: (feature before the projection, unit-norm embedding)."""

    def __init__(self, enc: nn.Module):
        super().__init__()
        self.enc = enc

    def forward(self, x):
        f = self.enc.features(x)
        return f, F.normalize(self.enc.proj(f), dim=-1)


class _Heads(nn.Module):
    def __init__(self, heads: Heads):
        super().__init__()
        self.heads = heads

    def forward(self, *features):
        logit, pos = self.heads(torch.cat(features, dim=-1) if len(features) > 1 else features[0])
        return logit, torch.sigmoid(logit), pos


def _spec(name, shape, dtype="float32"):
    return {"name": name, "shape": list(shape), "dtype": dtype}


def graph_modules(model: WMFM, heads: dict[str, Heads]) -> dict[str, tuple[nn.Module, dict]]:
    """{graph: (torch module, {"inputs": specs, "outputs": specs})} for the four graphs."""
    cfg = model.cfg
    fc, fi, e = cfg.csi.feature_dim, cfg.image.feature_dim, cfg.embed_dim
    head_out = [_spec("los_logit", ["batch"]), _spec("p_los", ["batch"]), _spec("position", ["batch", 3])]
    return {
        "csi_encoder": (_Encoder(model.csi_encoder), {
            "inputs": [_spec("csi", ["batch", 2, cfg.n_ant, cfg.n_sc])],
            "outputs": [_spec("feature", ["batch", fc]), _spec("embedding", ["batch", e])]}),
        "image_encoder": (_Encoder(model.image_encoder), {
            "inputs": [_spec("image", ["batch", 3, *cfg.image_size])],
            "outputs": [_spec("feature", ["batch", fi]), _spec("embedding", ["batch", e])]}),
        "heads_fused": (_Heads(heads["fused"]), {
            "inputs": [_spec("csi_feature", ["batch", fc]), _spec("image_feature", ["batch", fi])],
            "outputs": head_out}),
        "heads_csi": (_Heads(heads["csi"]), {"inputs": [_spec("csi_feature", ["batch", fc])], "outputs": head_out}),
    }
