"""The four deployable graphs as torch modules, with their input/output specs: what `wmfm export`
turns into ONNX and what the xApp's torch backend runs (through checkpoint.load_graphs).

    csi_encoder    csi [B, 2, A, K] f32 (raw channel, real/imag)   -> feature [B, Fc], embedding [B, E]
    image_encoder  image [B, 3, H, W] f32 RGB in [0, 1]            -> feature [B, Fi], embedding [B, E],
                                                                      tokens [B, T, E]
    heads_fused    csi_feature [B, Fc], csi_embedding [B, E],
                   image_tokens [B, T, E] (the UE's frame's)       -> los_logit [B], p_los [B], position [B, 3] m
    heads_csi      csi_feature [B, Fc]                             -> los_logit [B], p_los [B], position [B, 3] m

A frame is embedded once (its tokens); each UE paired with it feeds those tokens to heads_fused.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .wmfm import WMFM


class _CSIEncoder(nn.Module):
    """The CSI encoder as the xApp runs it: (feature before the projection, unit-norm embedding)."""

    def __init__(self, enc: nn.Module):
        super().__init__()
        self.enc = enc

    def forward(self, x):
        f = self.enc.features(x)
        return f, F.normalize(self.enc.proj(f), dim=-1)


class _ImageEncoder(nn.Module):
    """The image encoder in one pass: (feature, unit-norm embedding, unit-norm tokens)."""

    def __init__(self, enc: nn.Module):
        super().__init__()
        self.enc = enc

    def forward(self, x):
        f, p, tok = self.enc.encode(x)
        return f, F.normalize(p, dim=-1), F.normalize(tok, dim=-1)


class _Heads(nn.Module):
    def __init__(self, heads: nn.Module):
        super().__init__()
        self.heads = heads

    def forward(self, *inputs):
        logit, pos = self.heads(*inputs)
        return logit, torch.sigmoid(logit), pos


def _spec(name, shape, dtype="float32"):
    return {"name": name, "shape": list(shape), "dtype": dtype}


def graph_modules(model: WMFM, heads: dict[str, nn.Module]) -> dict[str, tuple[nn.Module, dict]]:
    """{graph: (torch module, {"inputs": specs, "outputs": specs})} for the four graphs."""
    cfg = model.cfg
    fc, fi, e = cfg.csi.feature_dim, cfg.image.feature_dim, cfg.embed_dim
    t = model.image_encoder.grid[0] * model.image_encoder.grid[1]
    head_out = [_spec("los_logit", ["batch"]), _spec("p_los", ["batch"]), _spec("position", ["batch", 3])]
    return {
        "csi_encoder": (_CSIEncoder(model.csi_encoder), {
            "inputs": [_spec("csi", ["batch", 2, cfg.n_ant, cfg.n_sc])],
            "outputs": [_spec("feature", ["batch", fc]), _spec("embedding", ["batch", e])]}),
        "image_encoder": (_ImageEncoder(model.image_encoder), {
            "inputs": [_spec("image", ["batch", 3, *cfg.image_size])],
            "outputs": [_spec("feature", ["batch", fi]), _spec("embedding", ["batch", e]),
                        _spec("tokens", ["batch", t, e])]}),
        "heads_fused": (_Heads(heads["fused"]), {
            "inputs": [_spec("csi_feature", ["batch", fc]), _spec("csi_embedding", ["batch", e]),
                       _spec("image_tokens", ["batch", t, e])],
            "outputs": head_out}),
        "heads_csi": (_Heads(heads["csi"]), {"inputs": [_spec("csi_feature", ["batch", fc])], "outputs": head_out}),
    }
