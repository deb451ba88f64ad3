"""Symmetric InfoNCE over CSI-image pairs, with same-frame pairs kept out of the negatives.

Several UEs can share one camera frame: their images are the same picture, so pairing UE a's
CSI against UE b's (identical) image as a "negative" would teach the model to tell apart
things that are not different. Those entries are masked out of both softmaxes.

Under DDP each rank holds a shard of the global batch; `gather` concatenates the shards with
gradients flowing back to their owners (torch.distributed.nn.all_gather), so every rank
computes the loss of the *global* batch and DDP's gradient averaging gives exactly the
single-process gradient.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather(x: torch.Tensor) -> torch.Tensor:
    """[b, ...] on each rank -> [world * b, ...] in rank order (identity outside DDP)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    if x.requires_grad:
        import warnings

        from torch.distributed.nn.functional import all_gather
        with warnings.catch_warnings():     # deprecated in favour of a private API; still the autograd-aware one
            warnings.simplefilter("ignore", FutureWarning)
            return torch.cat(all_gather(x), dim=0)
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def contrastive_loss(z_csi: torch.Tensor, z_img: torch.Tensor, logit_scale: torch.Tensor,
                     frame: torch.Tensor | None = None) -> torch.Tensor:
    """z_csi, z_img [B, D] unit-norm, logit_scale scalar (already exp'd), frame [B] int ids -> scalar loss.

    loss = (CE(csi->image) + CE(image->csi)) / 2, positives on the diagonal.
    """
    logits = logit_scale * z_csi @ z_img.t()                                   # [B, B]
    if frame is not None:
        same = frame[:, None] == frame[None, :]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


@torch.no_grad()
def retrieval(z_csi: torch.Tensor, z_img: torch.Tensor, frame: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    """CSI -> image retrieval over a whole set: top-k accuracy, a hit = an image of the same frame.

    z_csi [N, D] (one per UE), z_img [N, D] (the frame each UE was seen in), frame [N].
    Duplicated frames (several UEs) are scored once: candidates are the distinct frames.
    """
    uniq, first, target = frames_of(frame)
    sims = z_csi @ z_img[first].t()                                            # [N, F]
    order = sims.argsort(dim=1, descending=True)
    rank = (order == target[:, None]).float().argmax(dim=1)
    out = {f"top{k}": float((rank < k).float().mean()) for k in ks}
    out |= {"candidates": int(len(uniq)), "median_rank": float(rank.float().median() + 1)}
    out |= {f"chance_top{k}": min(1.0, k / len(uniq)) for k in ks}
    return out


def frames_of(frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """frame [N] ids -> (distinct frames [F] sorted, first sample of each [F], frame index of each sample [N])."""
    uniq, inverse = torch.unique(frame, sorted=True, return_inverse=True)
    first = torch.full((len(uniq),), len(frame), dtype=torch.long, device=frame.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(frame), device=frame.device), reduce="amin")
    return uniq, first, inverse
