"""The pretraining losses: symmetric InfoNCE over CSI-image pairs (global_clip), the object-centric
multiple-instance alignment of a CSI with the tokens of its own frame (mil), and the CSI
self-supervision terms (masked angle-delay modelling, CSI-to-CSI contrast).

global_clip: same-frame pairs kept out of the negatives.

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


def gather_varlen(x: torch.Tensor) -> torch.Tensor:
    """gather() for shards of different lengths (whole-frame batches): padded to the longest, then cut."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    n = torch.tensor([len(x)], device=x.device)
    sizes = [int(v) for v in gather(n)]
    pad = torch.cat([x, x.new_zeros((max(sizes) - len(x), *x.shape[1:]))])
    parts = gather(pad).split(max(sizes))
    return torch.cat([p[:k] for p, k in zip(parts, sizes)])


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


def pointer_scores(z_csi: torch.Tensor, tokens: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """z_csi [B, E], tokens [F, T, E] (unit norm) -> (cosine [B, F, T], frame score [B, F]).

    A CSI's score against a frame is the soft maximum over the frame's tokens,
    logsumexp(beta * cos) / beta: the best-matching region decides, not the whole picture."""
    cos = torch.einsum("be,fte->bft", z_csi, tokens)
    return cos, torch.logsumexp(beta * cos, dim=2) / beta


def mil_loss(z_csi: torch.Tensor, tokens: torch.Tensor, frame: torch.Tensor, near: torch.Tensor,
             logit_scale: torch.Tensor, beta: float, region_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    """Object-centric, multiple-instance alignment of a batch of whole frames.

    z_csi [B, E] unit-norm CSI embeddings; tokens [F, T, E] unit-norm image tokens of the batch's
    F frames; frame [B] in 0..F-1, the frame of each CSI; near [F, F] bool, frames that are
    near-duplicates of each other in time (the diagonal included): never negatives.

    Frame level (multiple instance): logits = scale * soft-max-over-tokens similarity [B, F].
    CSI -> frame: cross-entropy over the batch's frames, positive its own, near-duplicates of it
    masked. Frame -> CSI: each UE of the frame is a positive, scored against the CSIs of frames
    that are not near-duplicates: the UEs of one frame share their positive image and are never
    each other's negatives.

    Region level (hard negatives inside the frame): UE i's region is its attention-pooled token
    r_i = normalize(sum_t softmax_t(beta * cos_it) tok_t); among the UEs of the same frame, r_i
    must be nearest z_i (and z_i nearest r_i): the other vehicles' regions are the negatives that
    teach which vehicle is which. Frames with one UE in the batch add nothing to it.
    Returns (loss, {"frame": .., "region": ..}). (Repeated rows are taken with index_select:
    the backward of advanced indexing with repeats is not deterministic on CPU.)
    """
    cos, score = pointer_scores(z_csi, tokens, beta)
    logits = logit_scale * score                                               # [B, F]
    own = frame[:, None] == torch.arange(tokens.shape[0], device=frame.device)[None, :]
    dup = near[frame] & ~own                                                   # near-duplicates of its frame
    l_c2f = F.cross_entropy(logits.masked_fill(dup, float("-inf")), frame)
    neg = ~near[frame]                                                         # [B, F]: CSI b a negative of frame f
    lse_neg = torch.logsumexp(logits.masked_fill(~neg, float("-inf")), dim=0)  # [F]
    pos = logits.gather(1, frame[:, None]).squeeze(1)                          # [B]
    l_f2c = (torch.logaddexp(pos, lse_neg.index_select(0, frame)) - pos).mean()
    l_frame = (l_c2f + l_f2c) / 2
    # region level
    a = torch.softmax(beta * cos.gather(1, frame[:, None, None].expand(-1, 1, cos.shape[2])).squeeze(1), dim=1)
    region = F.normalize(torch.einsum("bt,bte->be", a, tokens.index_select(0, frame)), dim=-1)   # [B, E]
    same = frame[:, None] == frame[None, :]
    rl = (logit_scale * region @ z_csi.t()).masked_fill(~same, float("-inf"))   # [B (region), B (csi)]
    crowded = same.sum(1) > 1
    if crowded.any():
        idx = torch.nonzero(crowded).flatten()
        l_region = (F.cross_entropy(rl[idx], idx) + F.cross_entropy(rl.t()[idx], idx)) / 2
    else:
        l_region = logits.new_zeros(())
    return l_frame + region_weight * l_region, {"frame": float(l_frame.detach()), "region": float(l_region.detach())}


def near_frames(rows: torch.Tensor, within: int) -> torch.Tensor:
    """rows [F] frame rows of the data set (consecutive rows = consecutive frames of a world) ->
    [F, F] bool, |row difference| <= within (near-duplicate frames, the diagonal included)."""
    return (rows[:, None] - rows[None, :]).abs() <= within


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE of two views [B, E] (normalised here), positives on the diagonal."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.t() / temperature
    target = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


def patch_mask(b: int, shape: tuple[int, int], patch: tuple[int, int], ratio: float, g: torch.Generator,
               device) -> torch.Tensor:
    """[B, 1, A, K] float keep-mask: round(ratio x patches) random (pa x pk) patches of each map are 0."""
    (a, k), (pa, pk) = shape, patch
    na, nk = -(-a // pa), -(-k // pk)
    n_mask = max(1, round(ratio * na * nk))
    order = torch.rand(b, na * nk, generator=g).argsort(dim=1)
    keep = torch.ones(b, na * nk)
    keep.scatter_(1, order[:, :n_mask], 0.0)
    keep = keep.view(b, 1, na, nk).repeat_interleave(pa, 2).repeat_interleave(pk, 3)[:, :, :a, :k]
    return keep.to(device)


def masked_map_loss(pred: torch.Tensor, target: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Masked angle-delay modelling: MSE on the masked cells of the per-sample standardised log
    map. pred, target [B, A, K]; keep [B, 1, A, K] (0 = masked)."""
    t = (target - target.mean(dim=(1, 2), keepdim=True)) / target.std(dim=(1, 2), keepdim=True).clamp_min(1e-3)
    m = 1 - keep[:, 0]
    return ((pred - t) ** 2 * m).sum() / m.sum().clamp_min(1.0)


@torch.no_grad()
def retrieval(z_csi: torch.Tensor, z_img: torch.Tensor, frame: torch.Tensor, ks=(1, 5),
              tokens: torch.Tensor | None = None, beta: float = 10.0) -> dict[str, float]:
    """CSI -> image retrieval over a whole set: top-k accuracy, a hit = an image of the same frame.

    z_csi [N, D] (one per UE), z_img [N, D] (the frame each UE was seen in), frame [N].
    Duplicated frames (several UEs) are scored once: candidates are the distinct frames. With
    ``tokens`` [N, T, D] (the tokens of each UE's frame) a frame is scored by its best-matching
    token (pointer_scores), as the `mil` objective aligns them.
    """
    uniq, first, target = frames_of(frame)
    sims = z_csi @ z_img[first].t() if tokens is None else pointer_scores(z_csi, tokens[first], beta)[1]
    order = sims.argsort(dim=1, descending=True)
    rank = (order == target[:, None]).float().argmax(dim=1)
    out = {f"top{k}": float((rank < k).float().mean()) for k in ks}
    out |= {"candidates": int(len(uniq)), "median_rank": float(rank.float().median() + 1)}
    out |= {f"chance_top{k}": min(1.0, k / len(uniq)) for k in ks}
    out["scored_by"] = "global image embedding" if tokens is None else "best-matching token"
    return out


def frames_of(frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """frame [N] ids -> (distinct frames [F] sorted, first sample of each [F], frame index of each sample [N])."""
    uniq, inverse = torch.unique(frame, sorted=True, return_inverse=True)
    first = torch.full((len(uniq),), len(frame), dtype=torch.long, device=frame.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(frame), device=frame.device), reduce="amin")
    return uniq, first, inverse
