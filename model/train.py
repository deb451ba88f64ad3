"""The three trainings: WMFM pretraining (contrastive, no labels), heads on frozen embeddings,
and the E2E baseline. One code path for one process and for torchrun/DDP.

Under `torchrun` (WORLD_SIZE > 1) `pretrain` splits every global batch across the ranks,
gathers the embeddings for the loss (loss.py) and lets DDP average the gradients; every rank
draws the same global permutation from the seed. Without augmentation the result equals the
single-process one up to floating-point order (tested); with it, each rank draws its own
noise and dropout masks, so runs with different world sizes differ statistically, not
systematically.
"""

from __future__ import annotations

import copy
import math
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from wmfm.scoring import evaluate

from .data import Data, augment_csi, augment_image
from .heads import E2E, Heads, features
from .hparams import ModelConfig, PretrainConfig, SupervisedConfig
from .loss import contrastive_loss, frames_of, gather
from .wmfm import WMFM


def seed_all(seed: int) -> None:
    """Every random draw of the trainings comes from torch (global seed or explicit generators)."""
    torch.manual_seed(seed)


def set_threads(threads: int | None = None) -> int:
    """torch's CPU threads: `threads`, else half the cores this process may run on (its CPU
    affinity, which a container or `taskset` narrows), at least 1; one inter-op thread. Returns
    the count (report.json records it).

    torch's default, one thread per core, makes every small operation a barrier across all cores:
    when another job takes one of them, each barrier waits for a descheduled thread. Measured on
    the 2-core machine, `wmfm experiment --preset tiny` (docs/design-decisions.md): 2 threads 57 s
    idle but 433 s beside a busy loop on one core (7.6x); 1 thread 71 s idle and 67 s beside it.
    Pass `threads` (--threads) to use every core of a machine known to be idle."""
    if not threads:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, cores // 2)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:                 # already set, or parallel work already started: keep it
        pass
    return threads


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: str = "cpu") -> tuple[bool, str]:
    """Join the process group torchrun describes: gloo for `cpu`, nccl for `cuda` with one GPU per
    local rank. Returns (distributed?, the device this rank uses)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized(), device
    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return True, device


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, norms and the temperature (as open_clip)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "logit_scale" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _warmup_cosine(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


# ----------------------------------------------------------------------------- pretraining

def contrastive_step_loss(model: nn.Module, data: Data, global_idx: torch.Tensor, cfg: PretrainConfig,
                          g: torch.Generator | None, device: str = "cpu") -> torch.Tensor:
    """Loss of one global batch; this rank encodes its contiguous shard (augmented when g is given)."""
    rank, world = rank_world()
    if len(global_idx) % world:
        raise ValueError(f"pretrain.batch_size: {len(global_idx)} is not divisible by {world} ranks")
    b = len(global_idx) // world
    local = global_idx[rank * b:(rank + 1) * b]
    csi, img = data.csi[local], data.image_batch(local)
    if g is not None:
        csi, img = augment_csi(csi, cfg.augment, g), augment_image(img, cfg.augment, g)
    z_c, z_i, scale = model(csi.to(device), img.to(device))
    return contrastive_loss(gather(z_c), gather(z_i), scale, data.frame[global_idx].to(device))


@torch.no_grad()
def contrastive_eval(model: WMFM, data: Data, idx: torch.Tensor, batch_size: int, device: str = "cpu") -> float:
    """Mean loss over fixed batches of `idx` (permuted once, seed 0: time-neighbours are not all together)."""
    was = model.training
    model.eval()
    perm = idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(0))]
    losses, weights = [], []
    for s in range(0, len(perm), batch_size):
        part = perm[s:s + batch_size]
        if len(part) < 2:
            continue
        z_c, z_i, scale = model(data.csi[part].to(device), data.image_batch(part).to(device))
        losses.append(float(contrastive_loss(z_c, z_i, scale, data.frame[part].to(device))))
        weights.append(len(part))
    model.train(was)
    return float(np.average(losses, weights=weights))


def pretrain(data: Data, model_cfg: ModelConfig, cfg: PretrainConfig, device: str = "cpu", progress: bool = True,
             train_idx: torch.Tensor | None = None, val_idx: torch.Tensor | None = None,
             desc: str = "pretrain") -> tuple[WMFM, dict]:
    """Contrastive pretraining (no labels are read) on ``train_idx`` (default: the train split),
    early stopping on the loss of ``val_idx`` (default: the val split; at most cfg.val_samples of
    it, a fixed seeded subset).

    Steps: min(max_epochs x steps per epoch, max_steps when set), a warm-up + cosine schedule
    over them; validation every ``eval_every`` steps (default once per epoch, at most every 200
    steps); stop after ``patience`` validations without a better loss; the best weights are kept."""
    rank, world = rank_world()
    seed_all(cfg.seed)
    model = WMFM(model_cfg).to(device)
    ddp = model
    if world > 1:
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device != "cpu" else None)
    train_idx = data.index("train") if train_idx is None else train_idx
    val_idx = data.index("val") if val_idx is None else val_idx
    if len(val_idx) > cfg.val_samples:
        pick = torch.randperm(len(val_idx), generator=torch.Generator().manual_seed(cfg.seed))[:cfg.val_samples]
        val_idx = val_idx[pick.sort().values.to(val_idx.device)]
    bs = min(cfg.batch_size - cfg.batch_size % world, len(train_idx) - len(train_idx) % world)
    steps_per_epoch = max(1, len(train_idx) // bs)
    total = steps_per_epoch * cfg.max_epochs
    total = min(total, cfg.max_steps) if cfg.max_steps else total
    every = cfg.eval_every or min(steps_per_epoch, 200)
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _warmup_cosine(s, cfg.warmup_steps, total))
    g_perm = torch.Generator().manual_seed(cfg.seed)                 # same on every rank
    g_aug = torch.Generator().manual_seed(cfg.seed * 1000 + 1 + rank)
    history, best, best_state, bad, run, n_run = [], math.inf, None, 0, 0.0, 0
    t0 = time.perf_counter()
    perm, p = train_idx[torch.randperm(len(train_idx), generator=g_perm)], 0
    ddp.train()
    bar = tqdm(range(total), desc=desc, unit="step", disable=not progress or rank != 0)
    for step in bar:
        if p + bs > len(perm):
            perm, p = train_idx[torch.randperm(len(train_idx), generator=g_perm)], 0
        loss = contrastive_step_loss(ddp, data, perm[p:p + bs], cfg, g_aug, device)
        p += bs
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        model.clamp_()
        run, n_run = run + float(loss.detach()), n_run + 1
        if (step + 1) % every and step + 1 != total:
            continue
        val = contrastive_eval(model, data, val_idx, bs, device)
        ddp.train()
        history.append({"step": step + 1, "epoch": round((step + 1) / steps_per_epoch, 3), "train_loss": run / n_run,
                        "val_loss": val, "logit_scale": float(model.logit_scale.detach().exp()),
                        "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0})
        run, n_run = 0.0, 0
        if val < best - 1e-4:
            best, best_state, bad = val, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
        bar.set_postfix(train=f"{history[-1]['train_loss']:.3f}", val=f"{val:.3f}", best=f"{best:.3f}",
                        T=f"{1 / history[-1]['logit_scale']:.3f}")
        if bad >= cfg.patience:
            break
    bar.close()
    if best_state is None:
        raise FloatingPointError("pretrain: the validation loss was never finite (lower pretrain.lr?)")
    model.load_state_dict(best_state)
    model.eval()
    top = min(history, key=lambda h: h["val_loss"])
    result = {"history": history, "best_step": top["step"], "best_epoch": top["epoch"], "best_val_loss": best,
              "epochs": round(history[-1]["step"] / steps_per_epoch, 3), "steps": history[-1]["step"],
              "planned_steps": total, "global_batch": bs, "world_size": world,
              "seconds": time.perf_counter() - t0, "train_samples": len(train_idx), "val_samples": len(val_idx)}
    return model, result


@torch.no_grad()
def embed(model: WMFM, data: Data, batch_size: int = 512, device: str = "cpu",
          kind: str = "embedding") -> tuple[torch.Tensor, torch.Tensor]:
    """The one-off embedding pass: z_csi [N, D], z_img [N, D]; each camera frame is encoded once.

    kind "embedding": the unit-norm joint-space vectors; "feature": the representations
    before the projections.
    """
    model.eval()
    enc_c, enc_i = ((model.encode_csi, model.encode_image) if kind == "embedding"
                    else (model.features_csi, model.features_image))
    z_c = torch.cat([enc_c(data.csi[s:s + batch_size].to(device)).cpu()
                     for s in range(0, len(data), batch_size)])
    _, first, inverse = frames_of(data.frame.cpu())
    z_f = torch.cat([enc_i(data.image_batch(first[s:s + batch_size]).to(device)).cpu()
                     for s in range(0, len(first), batch_size)])
    z_i = z_f[inverse]
    return z_c, z_i


# ----------------------------------------------------------------------------- supervised

def _class_weights(y: torch.Tensor) -> torch.Tensor:
    """Per-sample weights that give both classes the same total weight (balanced loss)."""
    n1 = float(y.sum())
    n0 = len(y) - n1
    w1 = len(y) / (2 * n1) if n1 else 0.0
    w0 = len(y) / (2 * n0) if n0 else 0.0
    return torch.where(y > 0.5, w1, w0)


def _balanced_bce(logit: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    w = _class_weights(y)
    return (F.binary_cross_entropy_with_logits(logit, y, reduction="none") * w).sum() / w.sum().clamp_min(1e-9)


@torch.no_grad()
def predict(net: nn.Module, forward, idx: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    was = net.training
    net.eval()
    outs = [forward(idx[s:s + batch_size], False) for s in range(0, len(idx), batch_size)]
    net.train(was)
    return torch.cat([o[0] for o in outs]).cpu(), torch.cat([o[1] for o in outs]).cpu()


def fit_supervised(net: nn.Module, forward, data: Data, train_idx: torch.Tensor, val_idx: torch.Tensor,
                   cfg: SupervisedConfig, seed: int, desc: str = "fit", progress: bool = False) -> dict:
    """Train `net` (anything whose `forward(idx, train)` gives (LoS logit, position m)) on labelled `train_idx`.

    Loss = class-balanced BCE + smooth-L1 on standardised positions (the net's pos_std).
    Validation every `eval_every` steps: LoS keeps the weights of its lowest balanced val
    BCE, position those of its lowest val mean error; stop after `patience` evaluations
    in which neither improved. Returns the two best state dicts and the curves.
    """
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(_param_groups(net, cfg.weight_decay), lr=cfg.lr)
    n = len(train_idx)
    bs = min(cfg.batch_size, n)
    steps = int(np.clip(cfg.epochs * math.ceil(n / bs), cfg.min_steps, cfg.max_steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _warmup_cosine(s, min(100, steps // 10), steps))
    y_los, y_pos = data.los[train_idx], data.position[train_idx]
    w_los = _class_weights(y_los)
    std = net.heads.pos_std if hasattr(net, "heads") else net.pos_std
    v_los, v_pos = data.los[val_idx].cpu(), data.position[val_idx].cpu()
    best = {"los": (math.inf, None, 0), "pos": (math.inf, None, 0)}
    history, bad, t0 = [], 0, time.perf_counter()
    perm, p = torch.randperm(n, generator=g), 0
    net.train()
    for step in tqdm(range(steps), desc=desc, unit="step", leave=False, disable=not progress):
        if p + bs > n:
            perm, p = torch.randperm(n, generator=g), 0
        b = perm[p:p + bs]
        p += bs
        logit, pos = forward(train_idx[b], True)
        l_los = (F.binary_cross_entropy_with_logits(logit, y_los[b], reduction="none") * w_los[b]).mean()
        l_pos = F.smooth_l1_loss((pos - y_pos[b]) / std, torch.zeros_like(pos))
        loss = l_los + l_pos
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % cfg.eval_every == 0 or step + 1 == steps:
            vl, vp = predict(net, forward, val_idx)
            val_los = float(_balanced_bce(vl, v_los))
            val_err = float((vp - v_pos).norm(dim=1).mean())
            history.append({"step": step + 1, "train_loss": float(loss.detach()), "val_los_bce": val_los,
                            "val_loc_error_m": val_err})
            improved = False
            for key, v in (("los", val_los), ("pos", val_err)):
                if v < best[key][0] - 1e-6:
                    best[key] = (v, copy.deepcopy(net.state_dict()), step + 1)
                    improved = True
            bad = 0 if improved else bad + 1
            if bad >= cfg.patience:
                break
    return {"state_los": best["los"][1], "state_pos": best["pos"][1], "history": history,
            "steps": history[-1]["step"], "best_step_los": best["los"][2], "best_step_pos": best["pos"][2],
            "planned_steps": steps, "train_time_s": time.perf_counter() - t0, "labelled": n}


FIT_KEYS = ("history", "steps", "planned_steps", "best_step_los", "best_step_pos", "train_time_s", "labelled")


def _pos_stats(data: Data, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pos = data.position[idx]
    return pos.mean(0), pos.std(0, unbiased=False).clamp_min(1.0) if len(idx) > 1 else torch.ones(3)


def _test_metrics(net: nn.Module, forward, fit: dict, data: Data, test_idx: torch.Tensor, pos_map=None) -> dict:
    """Test metrics of the two best states (LoS, position); ``pos_map`` takes the predicted positions
    [n, 3] into ``data``'s frame (another world: through the serving BS's frame)."""
    net.load_state_dict(fit["state_los"])
    logit, _ = predict(net, forward, test_idx)
    net.load_state_dict(fit["state_pos"])
    _, pos = predict(net, forward, test_idx)
    pos = pos.numpy() if pos_map is None else pos_map(pos.numpy())
    return evaluate(logit.numpy(), pos, data.los[test_idx].cpu().numpy(),
                    data.position[test_idx].cpu().numpy()) | {
        "_los_prob": torch.sigmoid(logit).numpy(), "_pos": pos}


def _others(net, fit, others, forward_of) -> dict:
    """{name: metrics on that data set's test split} for each (name, data, inputs, pos_map) in ``others``."""
    return {name: {k: v for k, v in _test_metrics(net, forward_of(inputs), fit, d, d.index("test"), pos_map).items()
                   if not k.startswith("_")} for name, d, inputs, pos_map in others}


def train_heads(z_csi: torch.Tensor, z_img: torch.Tensor, data: Data, modality: str, train_idx: torch.Tensor,
                cfg: SupervisedConfig, seed: int, others=()) -> tuple[Heads, dict]:
    """Heads on frozen embeddings; returns the merged best heads and {test metrics, curves, time}.

    ``others``: (name, data set, (z_csi, z_img) of its samples, pos_map) applied as trained
    (another world): their test metrics go under result["others"][name]."""
    seed_all(seed)
    feats = features(z_csi, z_img, modality)
    mean, std = _pos_stats(data, train_idx)
    unlabelled = feats[data.index("train")]        # input statistics need no labels: the whole train split
    net = Heads(feats.shape[1], cfg.hidden, cfg.dropout, mean, std, unlabelled.mean(0),
                unlabelled.std(0).clamp_min(1e-6)).to(feats.device)
    fwd = lambda idx, train: net(feats[idx])  # noqa: E731
    fit = fit_supervised(net, fwd, data, train_idx, data.index("val"), cfg, seed)
    metrics = _test_metrics(net, fwd, fit, data, data.index("test"))

    def forward_of(z):
        f = features(z[0], z[1], modality)
        return lambda idx, train: net(f[idx])
    metrics["others"] = _others(net, fit, others, forward_of)
    net.load_state_dict(fit["state_pos"])
    net.los.load_state_dict({k[4:]: v for k, v in fit["state_los"].items() if k.startswith("los.")})
    net.eval()
    return net, metrics | {k: fit[k] for k in FIT_KEYS}


def train_e2e(data: Data, model_cfg: ModelConfig, modality: str, train_idx: torch.Tensor, cfg: SupervisedConfig,
              aug_cfg, seed: int, progress: bool = False, others=()) -> dict:
    """E2E baseline from scratch on the labels (same encoders, heads, early stopping, augmentations).

    ``others``: (name, data set, None, pos_map) evaluated with the trained network, as in train_heads."""
    seed_all(seed)
    mean, std = _pos_stats(data, train_idx)
    net = E2E(model_cfg, modality, cfg.hidden, cfg.dropout, mean, std).to(data.csi.device)
    g = torch.Generator().manual_seed(seed * 1000 + 7)

    def fwd(idx, train):
        csi, img = data.csi[idx], data.image_batch(idx)
        if train and cfg.augment:
            csi, img = augment_csi(csi, aug_cfg, g), augment_image(img, aug_cfg, g)
        return net(csi, img)

    fit = fit_supervised(net, fwd, data, train_idx, data.index("val"), cfg, seed, desc="e2e", progress=progress)
    metrics = _test_metrics(net, fwd, fit, data, data.index("test"))
    metrics["others"] = _others(net, fit, [(n, d, d, m) for n, d, _, m in others],
                                lambda d: (lambda idx, train: net(d.csi[idx], d.image_batch(idx))))
    return metrics | {k: fit[k] for k in FIT_KEYS}
