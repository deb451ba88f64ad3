"""Typed configs of the model and of its three trainings (frozen; saved inside every checkpoint).

Shapes: CSI [B, 2, n_ant, n_sc] (real/imag, as the cache stores it), images [B, 3, H, W]
float in [0, 1]. Embeddings [B, embed_dim], L2-normalised. Positions in metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from wmfm.config import check


def _check_encoder(cfg, where: str, min_stages: int) -> None:
    check(len(cfg.channels) >= min_stages and min(cfg.channels) > 0, f"{where}.channels",
          f"need >= {min_stages} positive widths")
    check(cfg.feature_dim > 0, f"{where}.feature_dim", "must be > 0")
    check(0 <= cfg.dropout < 1, f"{where}.dropout", "must be in [0, 1)")
    check(cfg.pool in ("flatten", "avg"), f"{where}.pool", "must be 'flatten' or 'avg'")


@dataclass(frozen=True)
class CSIEncoderConfig:
    channels: tuple[int, ...] = (16, 32, 64)   # conv stages over the angle x delay map, each halves both axes
    feature_dim: int = 256                     # width before the projection
    dropout: float = 0.1
    pool: str = "flatten"                      # "flatten" (keeps where peaks sit) or "avg" (+ coordinate channels)

    def validate(self, where: str) -> None:
        _check_encoder(self, where, min_stages=1)


@dataclass(frozen=True)
class ImageEncoderConfig:
    channels: tuple[int, ...] = (16, 32, 64, 96)   # stem, then one residual block per stage (stride 2 each)
    feature_dim: int = 256
    dropout: float = 0.1
    pool: str = "flatten"
    token_stage: int = -2        # the stage whose map gives the tokens (-1: the last; -2: the one before, 8x8 at 64 px)

    def validate(self, where: str) -> None:
        _check_encoder(self, where, min_stages=2)
        check(-len(self.channels) <= self.token_stage < len(self.channels), f"{where}.token_stage",
              f"must name a stage: 0..{len(self.channels) - 1} (or -1..-{len(self.channels)} from the last)")


@dataclass(frozen=True)
class ModelConfig:
    n_ant: int = 32                         # ue_ant * bs_ant rows of the CSI
    n_sc: int = 64                          # subcarriers
    image_size: tuple[int, int] = (64, 64)  # (H, W) the image encoder takes
    embed_dim: int = 128
    csi: CSIEncoderConfig = field(default_factory=CSIEncoderConfig)
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    init_logit_scale: float = math.log(1 / 0.07)
    max_logit_scale: float = math.log(100.0)

    def validate(self, where: str) -> None:
        check(self.n_ant >= 2 and self.n_sc >= 2, f"{where}.n_ant", "CSI needs >= 2 antennas and subcarriers")
        check(min(self.image_size) >= 16, f"{where}.image_size", "must be >= 16 pixels")
        check(self.embed_dim > 0, f"{where}.embed_dim", "must be > 0")
        check(0 < self.init_logit_scale <= self.max_logit_scale, f"{where}.init_logit_scale",
              "must be in (0, max_logit_scale]")
        self.csi.validate(f"{where}.csi")
        self.image.validate(f"{where}.image")


@dataclass(frozen=True)
class AugmentConfig:
    """Physically meaningful changes only: no flips or crops (they would break the CSI-image geometry)."""
    snr_db: tuple[float, float] = (5.0, 30.0)   # receiver noise added to the CSI at a random SNR
    random_phase: bool = True                   # unknown common phase (LO offset) of each report
    dropout: float = 0.1                        # CSI-to-CSI contrast views: share of subcarriers and of antennas zeroed
    brightness: float = 0.2                     # image gain x U(1-b, 1+b)
    contrast: float = 0.15
    pixel_noise: float = 0.02                   # sensor noise std (image in [0, 1])

    def validate(self, where: str) -> None:
        check(self.snr_db[0] <= self.snr_db[1], f"{where}.snr_db", "must be (low, high)")
        check(0 <= self.brightness < 1 and 0 <= self.contrast < 1, f"{where}.brightness", "must be in [0, 1)")


OBJECTIVES = ("global_clip", "mil")


@dataclass(frozen=True)
class PretrainConfig:
    # "mil": object-centric, multiple-instance alignment (loss.mil_loss): batches of whole frames,
    # each CSI aligned with the best-matching image token of its own frame, the frame's other UEs'
    # regions as hard negatives. "global_clip": one CSI vector against one whole-frame vector.
    objective: str = "mil"
    region_weight: float = 1.0   # mil: the within-frame term (which vehicle is which)
    mask_weight: float = 0.0     # CSI self-supervision: masked angle-delay modelling (off: not kept on val)
    csi_contrast_weight: float = 0.0   # CSI self-supervision: CSI-to-CSI contrast of two augmented views
    frames_per_batch: int = 48   # mil: frames per batch, every train UE of each (global_clip: batch_size samples)
    pointer_beta: float = 10.0   # mil: sharpness of the soft max over tokens (cosine similarities x beta)
    near_frames: int = 2         # mil: frames this close in time (rows) are near-duplicates, never negatives
    mask_ratio: float = 0.4      # share of angle-delay patches masked (patch = mask_patch)
    mask_patch: tuple[int, int] = (4, 8)
    batch_size: int = 256        # global batch (split across ranks under DDP)
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    max_epochs: int = 60
    max_steps: int = 0           # step budget (0: max_epochs alone); pretrainings on pools of different sizes
                                 # compare at the same budget
    eval_every: int = 0          # steps between validations (0: once per epoch, at most every 200 steps)
    patience: int = 8            # validations without a better validation loss
    val_samples: int = 4096      # validation subset (fixed, seeded) of a large pool
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0

    def validate(self, where: str) -> None:
        check(self.objective in OBJECTIVES, f"{where}.objective", f"must be one of {list(OBJECTIVES)}")
        for name in ("region_weight", "mask_weight", "csi_contrast_weight"):
            check(getattr(self, name) >= 0, f"{where}.{name}", "must be >= 0")
        check(self.frames_per_batch >= 2, f"{where}.frames_per_batch", "must be >= 2 (the loss needs negatives)")
        check(self.pointer_beta > 0 and self.near_frames >= 0, f"{where}.pointer_beta", "must be > 0")
        check(0 < self.mask_ratio < 1 and min(self.mask_patch) >= 1, f"{where}.mask_ratio", "must be in (0, 1)")
        check(self.batch_size >= 2, f"{where}.batch_size", "must be >= 2 (the loss needs negatives)")
        check(self.lr > 0, f"{where}.lr", "must be > 0")
        check(self.max_epochs >= 1 and self.patience >= 1, f"{where}.max_epochs", "must be >= 1")
        check(self.max_steps >= 0 and self.eval_every >= 0, f"{where}.max_steps", "must be >= 0")
        check(self.val_samples >= 2, f"{where}.val_samples", "must be >= 2")
        self.augment.validate(f"{where}.augment")


@dataclass(frozen=True)
class SupervisedConfig:
    """One rule for the heads and for the E2E baseline (same early stopping, stated budget).

    Steps = clamp(epochs x batches per epoch of the labelled subset, min_steps, max_steps);
    validation every `eval_every` steps; stop after `patience` evaluations without progress;
    each task keeps the weights of its own best validation point.
    """
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 200
    min_steps: int = 300
    max_steps: int = 4000
    eval_every: int = 50
    patience: int = 10
    hidden: int = 256            # head MLP width
    dropout: float = 0.1
    augment: bool = True         # E2E only (heads see cached, clean embeddings)

    def validate(self, where: str) -> None:
        check(self.batch_size >= 1 and self.lr > 0, f"{where}.batch_size", "must be >= 1 (and lr > 0)")
        check(1 <= self.min_steps <= self.max_steps, f"{where}.min_steps", "must be in 1..max_steps")
        check(self.eval_every >= 1 and self.patience >= 1, f"{where}.eval_every", "must be >= 1")
        check(self.hidden >= 1 and 0 <= self.dropout < 1, f"{where}.hidden", "must be >= 1 (dropout in [0, 1))")
