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
