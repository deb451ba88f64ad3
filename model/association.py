"""CSI-to-vehicle association: does the image region a UE's CSI points at hold that UE's vehicle?

The model picks, for each UE, the token of its frame most similar to its CSI embedding (the
pointer the `mil` objective trains; tokens are cells of the image, `encoders.token_cells`).
The twin knows every UE vehicle's 3-D box and the camera pose; their projection into the
input image (`wmfm.sim.pixels.box_rects`, done by the caller) scores the pick. The boxes are
read for this evaluation only, never by any training.

    hit_rate              the picked cell overlaps the UE's own box
    association_accuracy  among the visible UEs of the frame, the UE's own box is the one
                          nearest the picked cell's centre (distance to the rectangle, 0 inside;
                          ties: distance to the box centre): the pick names the right vehicle
    chance_*              the same for a cell drawn uniformly at random (exact expectation)
    *_crowded             the same over UEs whose frame shows >= 2 visible UEs (where the
                          association is not trivially right)
Only visible UEs (box in front of the camera and inside the frame) are scored.
"""

from __future__ import annotations

import numpy as np
import torch


def _dist(points: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """points [P, 2] (u, v), rects [R, 4] -> [P, R] distance from each point to each rectangle (0 inside)."""
    du = np.maximum(np.maximum(rects[None, :, 0] - points[:, None, 0], points[:, None, 0] - rects[None, :, 2]), 0)
    dv = np.maximum(np.maximum(rects[None, :, 1] - points[:, None, 1], points[:, None, 1] - rects[None, :, 3]), 0)
    return np.hypot(du, dv)


def _nearest(points: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """[P] index of the rectangle nearest each point (distance to the rectangle, then to its centre)."""
    centre = np.stack([(rects[:, 0] + rects[:, 2]) / 2, (rects[:, 1] + rects[:, 3]) / 2], axis=1)
    to_centre = np.hypot(points[:, None, 0] - centre[None, :, 0], points[:, None, 1] - centre[None, :, 1])
    key = _dist(points, rects) * 1e6 + to_centre      # lexicographic: rectangle distance first
    return key.argmin(axis=1)


def _overlaps(cells: np.ndarray, rect: np.ndarray) -> np.ndarray:
    """cells [C, 4], rect [4] -> [C] the cell and the rectangle share an area."""
    return (cells[:, 0] < rect[2]) & (cells[:, 2] > rect[0]) & (cells[:, 1] < rect[3]) & (cells[:, 3] > rect[1])


def association(pick: np.ndarray, frame: np.ndarray, rects: np.ndarray, visible: np.ndarray,
                cells: np.ndarray) -> dict:
    """pick [N] token index each UE's CSI points at; frame [N] frame id; rects [N, 4] the UE's
    box (u0, v0, u1, v1) in input pixels; visible [N] bool; cells [T, 4] the tokens' pixel
    rectangles. Returns the metrics of the module docstring."""
    pick, frame, visible = np.asarray(pick), np.asarray(frame), np.asarray(visible, bool)
    rects, cells = np.asarray(rects, float), np.asarray(cells, float)
    centres = np.stack([(cells[:, 0] + cells[:, 2]) / 2, (cells[:, 1] + cells[:, 3]) / 2], axis=1)
    hit, right, c_hit, c_right, crowded = [], [], [], [], []
    for f in np.unique(frame[visible]):
        members = np.flatnonzero((frame == f) & visible)
        near_all = _nearest(centres, rects[members])             # [T] the visible UE each cell names
        for j, i in enumerate(members):
            over = _overlaps(cells, rects[i])
            hit.append(bool(over[pick[i]]))
            right.append(bool(near_all[pick[i]] == j))
            c_hit.append(float(over.mean()))
            c_right.append(float((near_all == j).mean()))
            crowded.append(len(members) >= 2)
    hit, right, c_hit, c_right, crowded = (np.array(x) for x in (hit, right, c_hit, c_right, crowded))
    if not len(hit):
        return {"ues": int(len(pick)), "visible": 0, "unavailable": "no UE box is visible in its frame"}

    def mean(x, m=None):
        x = x if m is None else x[m]
        return float(x.mean()) if len(x) else None
    return {"ues": int(len(pick)), "visible": int(len(hit)), "crowded": int(crowded.sum()),
            "visible_ues_per_frame": round(len(hit) / len(np.unique(frame[visible])), 2),
            "hit_rate": mean(hit), "chance_hit_rate": mean(c_hit),
            "association_accuracy": mean(right), "chance_association": mean(c_right),
            "association_accuracy_crowded": mean(right, crowded), "chance_association_crowded": mean(c_right, crowded)}


@torch.no_grad()
def pointer(csi_embedding: torch.Tensor, tokens: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    """[N] the token of its frame each UE's CSI embedding is most similar to (csi_embedding [N, E],
    tokens [F, T, E], frame [N] rows into tokens)."""
    return torch.einsum("ne,nte->nt", csi_embedding, tokens[frame]).argmax(dim=1)
