"""Small model config and a synthetic aligned CSI-image set shared by the model tests."""

import math

import numpy as np
import torch
from wmfm.model.data import Data
from wmfm.model.hparams import CSIEncoderConfig, ImageEncoderConfig, ModelConfig

SMALL = ModelConfig(image_size=(32, 32), embed_dim=32,
                    csi=CSIEncoderConfig(channels=(8, 16), feature_dim=64, dropout=0.0),
                    image=ImageEncoderConfig(channels=(8, 16, 16), feature_dim=64, dropout=0.0))


def aligned_set(n: int, seed: int, n_ant: int = 32, n_sc: int = 64, size: int = 32) -> Data:
    """CSI and images that share one latent: a single path (angle, delay) and a bright square
    whose column follows the angle and whose row follows the delay. Frames = samples."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-0.9, 0.9, n)              # sin(angle of arrival)
    tau = rng.uniform(2, 40, n)                # delay in delay bins
    a, k = np.arange(n_ant), np.arange(n_sc)
    h = (np.exp(-1j * math.pi * u[:, None, None] * a[None, :, None])
         * np.exp(-2j * math.pi * tau[:, None, None] * k[None, None, :] / n_sc)) * 1e-6
    csi = np.stack([h.real, h.imag], axis=1).astype(np.float32)
    img = np.full((n, size, size, 3), 40, np.uint8)
    col = ((u + 1) / 2 * (size - 6)).astype(int)
    row = ((tau - 2) / 38 * (size - 6)).astype(int)
    for i in range(n):
        img[i, row[i]:row[i] + 6, col[i]:col[i] + 6] = (230, 200, 60)
    split = np.zeros(n, np.int8)
    split[int(0.7 * n):int(0.85 * n)] = 1
    split[int(0.85 * n):] = 2
    return Data(csi=torch.from_numpy(csi), frames=torch.from_numpy(img),
                los=torch.from_numpy((rng.random(n) < 0.7).astype(np.float32)),
                position=torch.from_numpy(np.stack([tau, u * 10, np.ones(n)], 1).astype(np.float32)),
                frame=torch.arange(n), split=torch.from_numpy(split), meta={})


def crowded_set(n_frames: int, ues: int, seed: int, n_ant: int = 32, n_sc: int = 64, size: int = 32) -> Data:
    """Frames with ``ues`` vehicles each (bright squares on a dark street), every vehicle a UE: its
    CSI is one path whose angle follows the square's column and whose delay its row. A frame's
    UEs share its image; only the CSI says which square is whose. Frames are time blocks of
    the splits (70 / 15 / 15 %). Returns the Data and each UE's square as a pixel box [N, 4]
    (u0, v0, u1, v1) in ``meta["boxes"]``."""
    rng = np.random.default_rng(seed)
    n = n_frames * ues
    cells = np.stack([rng.choice(16, ues, replace=False) for _ in range(n_frames)]).reshape(-1)  # 4x4 grid slots
    col, row = (cells % 4) * 8 + rng.integers(0, 3, n), (cells // 4) * 8 + rng.integers(0, 3, n)
    u = (col + 3) / size * 1.8 - 0.9                        # sin(angle of arrival)
    tau = 2 + (row + 3) / size * 38                         # delay bins
    a, k = np.arange(n_ant), np.arange(n_sc)
    h = (np.exp(-1j * math.pi * u[:, None, None] * a[None, :, None])
         * np.exp(-2j * math.pi * tau[:, None, None] * k[None, None, :] / n_sc)) * 1e-6
    csi = np.stack([h.real, h.imag], axis=1).astype(np.float32)
    img = np.full((n_frames, size, size, 3), 40, np.uint8)
    for i in range(n):
        img[i // ues, row[i]:row[i] + 5, col[i]:col[i] + 5] = (230, 200, 60)
    frame = np.repeat(np.arange(n_frames), ues)
    split = np.zeros(n, np.int8)
    split[frame >= int(0.7 * n_frames)] = 1
    split[frame >= int(0.85 * n_frames)] = 2
    boxes = np.stack([col, row, col + 5, row + 5], 1).astype(float)
    return Data(csi=torch.from_numpy(csi), frames=torch.from_numpy(img),
                los=torch.from_numpy((rng.random(n) < 0.7).astype(np.float32)),
                position=torch.from_numpy(np.stack([tau, u * 10, np.ones(n)], 1).astype(np.float32)),
                frame=torch.from_numpy(frame), split=torch.from_numpy(split), meta={"boxes": boxes})
