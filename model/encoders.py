"""The two encoders: CSI [B, 2, A, K] -> [B, D] and camera image [B, 3, H, W] -> [B, D].

CSI encoder. A fixed unitary 2-D DFT takes the channel from antenna x subcarrier to
angle x delay, where a street channel is a handful of peaks (one per path): the peak's
row is the angle of arrival, its column the delay (range), its height the path gain. The
map is what localisation and LoS detection need, and a shift in angle or delay is a shift
of the map, which convolutions handle with few weights. The transform is a pair of real
matmuls (no FFT op), so it exports to ONNX and TensorRT unchanged. The input is
power-normalised per sample: path loss is calibration-dependent and the xApp gets no
reliable absolute scale. Stages of stride-2 convolutions follow, then a *flatten* (not a
global pool) so that where a peak sits (angle, range) reaches the features.

Image encoder. A small residual CNN trained from scratch, with two coordinate channels
(CoordConv, on the CSI map too) and a flattened last map, for the same reason: the pixel where a vehicle
stands is the information, not only what it looks like. It also keeps a spatial map as
*tokens* (`token_stage`, 8x8 at 64 px: one token per 8x8-pixel cell, with the cell's
coordinates), projected into the joint space: a UE's CSI is aligned with the token of its own
vehicle (loss.mil_loss), and the fused heads attend over them (heads.FusedHeads).

GroupNorm everywhere (per-sample statistics): batch-size independent, so DDP shards and
batch-1 inference see the same function as training.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .hparams import CSIEncoderConfig, ImageEncoderConfig, ModelConfig


def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


def _dft(n: int, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.arange(n, dtype=torch.float64)
    ang = (1 if inverse else -1) * 2 * math.pi * torch.outer(k, k) / n
    return (torch.cos(ang) / math.sqrt(n)).float(), (torch.sin(ang) / math.sqrt(n)).float()


class AngleDelay(nn.Module):
    """CSI [B, 2, A, K] (real/imag) -> [B, 2, A, K] angle-delay magnitude map (linear, log).

    Power-normalised per sample, so the map sums to A*K in linear power whatever the path loss.
    Angle axis: DFT over antennas, fftshifted so broadside sits in the middle row.
    Delay axis: inverse DFT over the (evenly spaced) subcarriers.
    """

    def __init__(self, n_ant: int, n_sc: int):
        super().__init__()
        ar, ai = _dft(n_ant, inverse=False)
        shift = torch.roll(torch.arange(n_ant), n_ant // 2)
        dr, di = _dft(n_sc, inverse=True)
        self.register_buffer("ar", ar[shift], persistent=False)
        self.register_buffer("ai", ai[shift], persistent=False)
        self.register_buffer("dr", dr, persistent=False)
        self.register_buffer("di", di, persistent=False)

    def forward(self, csi: torch.Tensor) -> torch.Tensor:
        xr, xi = csi[:, 0], csi[:, 1]                                      # [B, A, K]
        p = (xr * xr + xi * xi).mean(dim=(1, 2), keepdim=True)
        s = torch.rsqrt(p + 1e-30)                                          # channel gains are ~1e-6
        xr, xi = xr * s, xi * s
        yr, yi = self.ar @ xr - self.ai @ xi, self.ar @ xi + self.ai @ xr   # angle: F_a X
        zr, zi = yr @ self.dr - yi @ self.di, yr @ self.di + yi @ self.dr   # delay: (F_a X) F_d
        pw = zr * zr + zi * zi
        return torch.stack([torch.sqrt(pw + 1e-12), torch.log10(pw + 1e-4) / 2.0], dim=1)


class _ConvStage(nn.Sequential):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), _gn(c_out), nn.GELU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), _gn(c_out), nn.GELU())


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), _gn(c_out), nn.GELU(),
                                  nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), _gn(c_out))
        self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=2, bias=False), _gn(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.body(x) + self.skip(x))


def _coords(h: int, w: int) -> torch.Tensor:
    """[1, 2, H, W] row/column coordinates in [-1, 1] (CoordConv)."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack([yy, xx])[None]


def _head(body: nn.Module, c_in: int, size: tuple[int, int], pool: str, feature_dim: int, embed_dim: int,
          dropout: float) -> tuple[nn.Module, nn.Module]:
    """Trunk (pool or flatten -> feature_dim) and projection (-> embed_dim) after `body`."""
    with torch.no_grad():
        out = body(torch.zeros(1, c_in, *size))
    reduce = nn.Flatten() if pool == "flatten" else nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    flat = out.numel() if pool == "flatten" else out.shape[1]
    trunk = nn.Sequential(reduce, nn.Linear(flat, feature_dim), nn.GELU(), nn.Dropout(dropout))
    return trunk, nn.Linear(feature_dim, embed_dim)


class CSIEncoder(nn.Module):
    """CSI [B, 2, n_ant, n_sc] float32 -> projection [B, embed_dim] (not yet normalised)."""

    def __init__(self, n_ant: int, n_sc: int, cfg: CSIEncoderConfig, embed_dim: int):
        super().__init__()
        self.transform = AngleDelay(n_ant, n_sc)
        self.register_buffer("coords", _coords(n_ant, n_sc), persistent=False)
        widths = (4, *cfg.channels)
        self.stages = nn.Sequential(*[_ConvStage(a, b) for a, b in zip(widths[:-1], widths[1:])])
        self.trunk, self.proj = _head(self.stages, 4, (n_ant, n_sc), cfg.pool, cfg.feature_dim, embed_dim,
                                      cfg.dropout)

    def features(self, csi: torch.Tensor) -> torch.Tensor:
        """The representation before the projection [B, feature_dim]."""
        return self.features_of_map(self.transform(csi))

    def features_of_map(self, x: torch.Tensor) -> torch.Tensor:
        """The same from an angle-delay map [B, 2, A, K] (masked for masked angle-delay modelling)."""
        x = torch.cat([x, self.coords.expand(x.shape[0], -1, -1, -1)], dim=1)
        return self.trunk(self.stages(x))

    def forward(self, csi: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(csi))


class ImageEncoder(nn.Module):
    """Image [B, 3, H, W] float in [0, 1] -> projection [B, embed_dim] (not yet normalised), and
    tokens [B, T, embed_dim] (not yet normalised): one per cell of the `token_stage` map, row-major."""

    def __init__(self, image_size: tuple[int, int], cfg: ImageEncoderConfig, embed_dim: int):
        super().__init__()
        self.register_buffer("coords", _coords(*image_size), persistent=False)
        c0 = cfg.channels[0]
        stem = nn.Sequential(nn.Conv2d(5, c0, 3, stride=2, padding=1, bias=False), _gn(c0), nn.GELU())
        self.body = nn.Sequential(stem, *[_ResBlock(a, b) for a, b in zip(cfg.channels[:-1], cfg.channels[1:])])
        self.trunk, self.proj = _head(self.body, 5, image_size, cfg.pool, cfg.feature_dim, embed_dim, cfg.dropout)
        self.token_stage = cfg.token_stage % len(cfg.channels)
        with torch.no_grad():
            grid = self.body[:self.token_stage + 1](torch.zeros(1, 5, *image_size)).shape[2:]
        self.grid = (int(grid[0]), int(grid[1]))
        c = cfg.channels[self.token_stage]
        self.register_buffer("token_coords", _coords(*self.grid), persistent=False)
        self.token_proj = nn.Sequential(nn.Conv2d(c + 2, c, 1), nn.GELU(), nn.Conv2d(c, embed_dim, 1))

    def _stages(self, image: torch.Tensor, last: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(the map after stage ``last`` (default: the last stage), the token map)."""
        x = (image - 0.45) / 0.25
        x = torch.cat([x, self.coords.expand(x.shape[0], -1, -1, -1)], dim=1)
        tok = None
        for i, stage in enumerate(self.body[:None if last is None else last + 1]):
            x = stage(x)
            if i == self.token_stage:
                tok = x
        return x, tok

    def _tokens(self, tok: torch.Tensor) -> torch.Tensor:
        tok = torch.cat([tok, self.token_coords.expand(tok.shape[0], -1, -1, -1)], dim=1)
        return self.token_proj(tok).flatten(2).transpose(1, 2)                 # [B, T, E]

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """The representation before the projection [B, feature_dim]."""
        return self.trunk(self._stages(image)[0])

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One pass: (feature [B, feature_dim], projection [B, E], tokens [B, T, E]), not normalised."""
        x, tok = self._stages(image)
        f = self.trunk(x)
        return f, self.proj(f), self._tokens(tok)

    def tokens(self, image: torch.Tensor) -> torch.Tensor:
        """Tokens only [B, T, E] (not normalised): the stages after the token stage are not run."""
        return self._tokens(self._stages(image, last=self.token_stage)[1])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(image))


def token_cells(grid: tuple[int, int], image_size: tuple[int, int]) -> torch.Tensor:
    """[T, 4] pixel rectangles (u0, v0, u1, v1) of the tokens of a ``grid`` map over an image of
    ``image_size`` (H, W), row-major as ImageEncoder's tokens."""
    (gh, gw), (h, w) = grid, image_size
    r, c = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    r, c = r.flatten().double(), c.flatten().double()
    return torch.stack([c * w / gw, r * h / gh, (c + 1) * w / gw, (r + 1) * h / gh], dim=1)


def build_encoders(cfg: ModelConfig) -> tuple[CSIEncoder, ImageEncoder]:
    return (CSIEncoder(cfg.n_ant, cfg.n_sc, cfg.csi, cfg.embed_dim),
            ImageEncoder(cfg.image_size, cfg.image, cfg.embed_dim))
