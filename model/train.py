"""The three trainings: WMFM pretraining (contrastive, no labels), heads on frozen embeddings,
and the E2E baseline. One code path for one process and for torchrun/DDP.

Pretraining batches: `global_clip` draws `batch_size` samples; `mil` draws
`frames_per_batch` whole frames with every train UE of each (the frame's other UEs are the
hard negatives), so each frame is encoded once per step.

Under `torchrun` (WORLD_SIZE > 1) `pretrain` splits every global batch across the ranks
(samples, or frames for `mil`), gathers the embeddings for the loss (loss.py) and lets DDP
average the gradients; every rank draws the same global permutation from the seed. Without
augmentation the cross-modal result equals the single-process one up to floating-point order
(tested for global_clip); with it, each rank draws its own noise and dropout masks, so runs
with different world sizes differ statistically, not systematically. The masked angle-delay
term is a per-rank mean.
"""

from __future__ import annotations

import copy
import math
import os
import time
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from wmfm.scoring import evaluate

from .data import Data, augment_csi, augment_image, csi_view
from .heads import E2E, FusedHeads, Heads, features
from .hparams import ModelConfig, PretrainConfig, SupervisedConfig
from .loss import (
    contrastive_loss,
    frames_of,
    gather,
    gather_varlen,
    info_nce,
    masked_map_loss,
    mil_loss,
    near_frames,
    patch_mask,
    retrieval,
)
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
    """global_clip loss of one global batch; this rank encodes its contiguous shard (augmented when g is given)."""
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
    """global_clip: mean loss over fixed batches of `idx` (permuted once, seed 0: time-neighbours
    are not all together)."""
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


class FrameBatches:
    """The `mil` objective's batches: whole frames with every sample of ``idx`` in each.

    ``frames`` [F] the distinct frame rows of ``idx``; ``samples[start[k]:start[k + 1]]`` the
    samples of frames[k]."""

    def __init__(self, data: Data, idx: torch.Tensor):
        idx = idx.cpu()
        fr = data.frame.cpu()[idx]
        order = torch.argsort(fr, stable=True)
        self.samples = idx[order]
        self.frames, counts = torch.unique_consecutive(fr[order], return_counts=True)
        self.start = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])

    def __len__(self) -> int:
        return len(self.frames)

    def batch(self, ks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame positions ks [F'] -> (sample indices [B], frame of each in 0..F'-1 [B])."""
        parts = [self.samples[self.start[k]:self.start[k + 1]] for k in ks.tolist()]
        local = torch.repeat_interleave(torch.arange(len(parts)), torch.tensor([len(p) for p in parts]))
        return torch.cat(parts), local


def mil_step_loss(model: nn.Module, data: Data, frames: FrameBatches, ks: torch.Tensor, cfg: PretrainConfig,
                  g: torch.Generator, augment: bool = True, device: str = "cpu") -> tuple[torch.Tensor, dict]:
    """The `mil` objective (+ CSI self-supervision) on the global batch of frames ``ks``; this rank
    encodes its contiguous share of the frames; ``augment`` off: the fixed validation views."""
    rank, world = rank_world()
    if len(ks) % world:
        raise ValueError(f"pretrain.frames_per_batch: {len(ks)} is not divisible by {world} ranks")
    f_local = len(ks) // world
    mine = ks[rank * f_local:(rank + 1) * f_local]
    idx, local = frames.batch(mine)
    csi, img = data.csi[idx], data.frames[frames.frames[mine].to(data.frames.device)]
    img = img.permute(0, 3, 1, 2).float().div_(255.0)
    if augment:
        csi, img = augment_csi(csi, cfg.augment, g), augment_image(img, cfg.augment, g)
    csi, img = csi.to(device), img.to(device)
    keep = view = None
    if cfg.mask_weight > 0:
        keep = patch_mask(len(idx), tuple(csi.shape[2:]), tuple(cfg.mask_patch), cfg.mask_ratio, g, device)
    if cfg.csi_contrast_weight > 0:
        view = csi_view(data.csi[idx], cfg.augment, g).to(device)
    out = model(csi, img, mil=True, keep=keep, view=view)
    near = near_frames(frames.frames[ks].to(device), cfg.near_frames)
    frame_of = gather_varlen(local.to(device) + rank * f_local)
    loss, parts = mil_loss(gather_varlen(out["z_csi"]), gather(out["tokens"]), frame_of, near, out["scale"],
                           cfg.pointer_beta, cfg.region_weight)
    if keep is not None:
        l_mask = masked_map_loss(out["masked_map"], out["log_map"], keep)
        loss, parts["mask"] = loss + cfg.mask_weight * l_mask, float(l_mask.detach())
    if view is not None:
        l_cc = info_nce(gather_varlen(out["ssl"][0]), gather_varlen(out["ssl"][1]))
        loss, parts["csi_contrast"] = loss + cfg.csi_contrast_weight * l_cc, float(l_cc.detach())
    return loss, parts


@torch.no_grad()
def mil_eval(model: WMFM, data: Data, frames: FrameBatches, cfg: PretrainConfig, device: str = "cpu") -> float:
    """Mean objective over fixed batches of every frame of ``frames`` (permuted once, seed 0;
    clean inputs; masks drawn from a fixed seed)."""
    was = model.training
    model.eval()
    perm = torch.randperm(len(frames), generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    losses, weights = [], []
    world = rank_world()[1]
    for s in range(0, len(perm), cfg.frames_per_batch):
        ks = perm[s:s + cfg.frames_per_batch]
        ks = ks[:len(ks) - len(ks) % world]                  # every rank the same number of frames
        if len(ks) < 2:
            continue
        loss, _ = mil_step_loss(model, data, frames, ks, cfg, g, augment=False, device=device)
        losses.append(float(loss))
        weights.append(len(ks))
    model.train(was)
    return float(np.average(losses, weights=weights))


def _val_frames(data: Data, val_idx: torch.Tensor, cfg: PretrainConfig) -> FrameBatches:
    """Whole val frames (seeded order) up to cfg.val_samples samples: the `mil` validation set."""
    every = FrameBatches(data, val_idx)
    order = torch.randperm(len(every), generator=torch.Generator().manual_seed(cfg.seed))
    sizes = (every.start[1:] - every.start[:-1])[order]
    take = order[:max(2, int((sizes.cumsum(0) <= cfg.val_samples).sum()))]
    return FrameBatches(data, torch.cat([every.samples[every.start[k]:every.start[k + 1]] for k in take.tolist()]))


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
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device != "cpu" else None,
                                                  find_unused_parameters=True)   # each objective uses a part
    train_idx = data.index("train") if train_idx is None else train_idx
    val_idx = data.index("val") if val_idx is None else val_idx
    mil = cfg.objective == "mil"
    if mil:
        frames, val_frames = FrameBatches(data, train_idx), _val_frames(data, val_idx, cfg)
        val_idx = val_frames.samples
        bs = min(cfg.frames_per_batch - cfg.frames_per_batch % world, len(frames) - len(frames) % world)
        units = torch.arange(len(frames))
    else:
        if len(val_idx) > cfg.val_samples:
            pick = torch.randperm(len(val_idx), generator=torch.Generator().manual_seed(cfg.seed))[:cfg.val_samples]
            val_idx = val_idx[pick.sort().values.to(val_idx.device)]
        bs = min(cfg.batch_size - cfg.batch_size % world, len(train_idx) - len(train_idx) % world)
        units = train_idx
    steps_per_epoch = max(1, len(units) // bs)
    total = steps_per_epoch * cfg.max_epochs
    total = min(total, cfg.max_steps) if cfg.max_steps else total
    every = cfg.eval_every or min(steps_per_epoch, 200)
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _warmup_cosine(s, cfg.warmup_steps, total))
    g_perm = torch.Generator().manual_seed(cfg.seed)                 # same on every rank
    g_aug = torch.Generator().manual_seed(cfg.seed * 1000 + 1 + rank)
    history, best, best_state, bad, run, n_run, parts = [], math.inf, None, 0, 0.0, 0, {}
    t0 = time.perf_counter()
    perm, p = units[torch.randperm(len(units), generator=g_perm).to(units.device)], 0
    ddp.train()
    bar = tqdm(range(total), desc=desc, unit="step", disable=not progress or rank != 0)
    for step in bar:
        if p + bs > len(perm):
            perm, p = units[torch.randperm(len(units), generator=g_perm).to(units.device)], 0
        if mil:
            loss, terms = mil_step_loss(ddp, data, frames, perm[p:p + bs], cfg, g_aug, device=device)
            parts = {k: parts.get(k, 0.0) + v for k, v in terms.items()}
        else:
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
        val = mil_eval(model, data, val_frames, cfg, device) if mil else contrastive_eval(model, data, val_idx, bs,
                                                                                            device)
        ddp.train()
        history.append({"step": step + 1, "epoch": round((step + 1) / steps_per_epoch, 3), "train_loss": run / n_run,
                        "val_loss": val, "logit_scale": float(model.logit_scale.detach().exp()),
                        "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
                       | {f"train_{k}": v / n_run for k, v in parts.items()})
        run, n_run, parts = 0.0, 0, {}
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
    model.objective = cfg.objective                 # what aligned its embeddings (for the retrieval's scoring)
    top = min(history, key=lambda h: h["val_loss"])
    result = {"history": history, "best_step": top["step"], "best_epoch": top["epoch"], "best_val_loss": best,
              "epochs": round(history[-1]["step"] / steps_per_epoch, 3), "steps": history[-1]["step"],
              "planned_steps": total, "global_batch": bs, "batch_unit": "frames" if mil else "samples",
              "objective": cfg.objective, "world_size": world,
              "seconds": time.perf_counter() - t0, "train_samples": len(train_idx), "val_samples": len(val_idx)}
    return model, result


class Embedded(NamedTuple):
    """The one-off embedding pass of a data set (frozen encoders): what every head reads."""
    csi: torch.Tensor              # [N, Fc] what the csi / fused heads read (features, or the embeddings)
    image: torch.Tensor            # [N, Fi] what the image heads read (per sample: its frame's)
    csi_embedding: torch.Tensor    # [N, E] unit norm
    image_embedding: torch.Tensor  # [N, E] unit norm, per sample
    tokens: torch.Tensor           # [F, T, E] unit norm, one per distinct frame
    frame: torch.Tensor            # [N] row of each sample's frame in `tokens`
    grid: tuple[int, int]          # the tokens' (rows, columns)

    def to(self, device) -> Embedded:
        return Embedded(*[x.to(device) for x in self[:6]], self.grid)

    def retrieval(self, idx: torch.Tensor, frame_ids: torch.Tensor, objective: str, beta: float) -> dict:
        """CSI-to-image retrieval of the samples ``idx`` (``frame_ids``: their frames' ids), a frame
        scored as ``objective`` aligned it: by its best-matching token (`mil`) or its global
        embedding (`global_clip`)."""
        idx = idx.cpu()
        tokens = self.tokens.cpu()[self.frame.cpu()[idx]] if objective == "mil" else None
        return retrieval(self.csi_embedding.cpu()[idx], self.image_embedding.cpu()[idx], frame_ids.cpu()[idx],
                         tokens=tokens, beta=beta)


@torch.no_grad()
def embed(model: WMFM, data: Data, batch_size: int = 512, device: str = "cpu", kind: str = "feature") -> Embedded:
    """The one-off embedding pass; each camera frame is encoded once.

    kind "feature": the heads read the representations before the projections; "embedding":
    the unit-norm joint-space vectors.
    """
    model.eval()
    f_c, e_c = [], []
    for s in range(0, len(data), batch_size):
        f = model.csi_encoder.features(data.csi[s:s + batch_size].to(device))
        f_c.append(f.cpu())
        e_c.append(F.normalize(model.csi_encoder.proj(f), dim=-1).cpu())
    _, first, inverse = frames_of(data.frame.cpu())
    f_i, e_i, tok = [], [], []
    for s in range(0, len(first), batch_size):
        f, e, t = model.encode_image_all(data.image_batch(first[s:s + batch_size].to(data.frame.device)).to(device))
        f_i.append(f.cpu())
        e_i.append(e.cpu())
        tok.append(t.cpu())
    f_c, e_c, f_i, e_i = torch.cat(f_c), torch.cat(e_c), torch.cat(f_i)[inverse], torch.cat(e_i)[inverse]
    if kind == "embedding":
        f_c, f_i = e_c, e_i
    return Embedded(f_c, f_i, e_c, e_i, torch.cat(tok), inverse, model.image_encoder.grid)


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
    std = net.heads.pos_std if isinstance(net, E2E) else net.pos_std
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


def _test_metrics(net: nn.Module, forward, fit: dict, data: Data, test_idx: torch.Tensor, pos_map=None,
                  val_idx: torch.Tensor | None = None) -> dict:
    """Test metrics of the two best states (LoS, position); ``pos_map`` takes the predicted positions
    [n, 3] into ``data``'s frame (another world: through the serving BS's frame). With ``val_idx``
    the same metrics on it go under "val" (what a choice between runs may read)."""
    idx = test_idx if val_idx is None else torch.cat([test_idx, val_idx])
    net.load_state_dict(fit["state_los"])
    logit, _ = predict(net, forward, idx)
    net.load_state_dict(fit["state_pos"])
    _, pos = predict(net, forward, idx)
    pos = pos.numpy() if pos_map is None else pos_map(pos.numpy())
    los, truth = data.los[idx].cpu().numpy(), data.position[idx].cpu().numpy()
    n = len(test_idx)
    out = evaluate(logit[:n].numpy(), pos[:n], los[:n], truth[:n]) | {
        "_los_prob": torch.sigmoid(logit[:n]).numpy(), "_pos": pos[:n]}
    if val_idx is not None:
        out["val"] = evaluate(logit[n:].numpy(), pos[n:], los[n:], truth[n:])
    return out


def _others(net, fit, others, forward_of) -> dict:
    """{name: metrics on that data set's test split} for each (name, data, inputs, pos_map) in ``others``."""
    return {name: {k: v for k, v in _test_metrics(net, forward_of(inputs), fit, d, d.index("test"), pos_map).items()
                   if not k.startswith("_")} for name, d, inputs, pos_map in others}


def head_forward(net: nn.Module, emb: Embedded, modality: str):
    """forward(idx, train) of heads ``net`` on the embedded samples idx."""
    if modality == "fused":
        return lambda idx, train: net(emb.csi[idx], emb.csi_embedding[idx], emb.tokens[emb.frame[idx]])
    feats = features(emb.csi, emb.image, modality)
    return lambda idx, train: net(feats[idx])


def train_heads(emb: Embedded, data: Data, modality: str, train_idx: torch.Tensor, cfg: SupervisedConfig, seed: int,
                others=(), beta: float = 10.0) -> tuple[nn.Module, dict]:
    """Heads on frozen embeddings (FusedHeads for `fused`, over the frame's tokens); returns the
    merged best heads and {test metrics, "val": the same on val (for choices), curves, time}.

    ``others``: (name, data set, its Embedded, pos_map) applied as trained (another world): their
    test metrics go under result["others"][name]."""
    seed_all(seed)
    mean, std = _pos_stats(data, train_idx)
    unlabelled = emb.csi if modality == "fused" else features(emb.csi, emb.image, modality)
    unlabelled = unlabelled[data.index("train")]   # input statistics need no labels: the whole train split
    stats = (unlabelled.mean(0), unlabelled.std(0).clamp_min(1e-6))
    if modality == "fused":
        net = FusedHeads(emb.csi.shape[1], emb.tokens.shape[2], emb.grid, cfg.hidden, cfg.dropout, beta,
                         pos_mean=mean, pos_std=std, in_mean=stats[0], in_std=stats[1])
    else:
        net = Heads(unlabelled.shape[1], cfg.hidden, cfg.dropout, mean, std, *stats)
    net = net.to(emb.csi.device)
    fwd = head_forward(net, emb, modality)
    fit = fit_supervised(net, fwd, data, train_idx, data.index("val"), cfg, seed)
    metrics = _test_metrics(net, fwd, fit, data, data.index("test"), val_idx=data.index("val"))
    metrics["others"] = _others(net, fit, others, lambda e: head_forward(net, e, modality))
    net.load_state_dict(fit["state_pos"])
    net.los.load_state_dict({k[4:]: v for k, v in fit["state_los"].items() if k.startswith("los.")})
    net.eval()
    return net, metrics | {k: fit[k] for k in FIT_KEYS}


def train_e2e(data: Data, model_cfg: ModelConfig, modality: str, train_idx: torch.Tensor, cfg: SupervisedConfig,
              aug_cfg, seed: int, progress: bool = False, others=(), beta: float = 10.0) -> dict:
    """E2E baseline from scratch on the labels (same encoders, heads, early stopping, augmentations);
    test metrics, and under "val" the same on val (for choices).

    ``others``: (name, data set, None, pos_map) evaluated with the trained network, as in train_heads."""
    seed_all(seed)
    mean, std = _pos_stats(data, train_idx)
    net = E2E(model_cfg, modality, cfg.hidden, cfg.dropout, mean, std, beta).to(data.csi.device)
    g = torch.Generator().manual_seed(seed * 1000 + 7)

    def fwd(idx, train):
        csi, img = data.csi[idx], data.image_batch(idx)
        if train and cfg.augment:
            csi, img = augment_csi(csi, aug_cfg, g), augment_image(img, aug_cfg, g)
        return net(csi, img)

    fit = fit_supervised(net, fwd, data, train_idx, data.index("val"), cfg, seed, desc="e2e", progress=progress)
    metrics = _test_metrics(net, fwd, fit, data, data.index("test"), val_idx=data.index("val"))
    metrics["others"] = _others(net, fit, [(n, d, d, m) for n, d, _, m in others],
                                lambda d: (lambda idx, train: net(d.csi[idx], d.image_batch(idx))))
    return metrics | {k: fit[k] for k in FIT_KEYS}
