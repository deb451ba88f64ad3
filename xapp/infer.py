"""Micro-batch inference: CSI of every UE in the batch at once, each camera frame embedded
once (and cached by camera + sequence, so later batches with the same frame reuse it), heads
per mode on the batch.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np

from .inference import Backend
from .records import Insight, Pairing


class Engine:
    def __init__(self, backend: Backend, los_threshold: float, model: str, frame_cache: int = 64,
                 reuse_frames: bool = True):
        self.backend = backend
        self.threshold = los_threshold
        self.model = model
        self.cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self.cache_size = frame_cache
        self.reuse = reuse_frames
        self.frames_embedded = 0
        self.frames_reused = 0

    def _frame_features(self, pairs: list[Pairing]) -> dict[tuple[str, int], np.ndarray]:
        """(camera, seq) -> image feature [Fi], embedding only the frames not cached yet (one call)."""
        keys = {(p.frame.camera_id, p.frame.seq): p.frame for p in pairs if p.frame is not None}
        todo = [k for k in keys if k not in self.cache]
        self.frames_reused += len(keys) - len(todo)
        if todo:
            images = np.stack([keys[k].image for k in todo]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
            feats = self.backend.embed_image(images).feature
            self.frames_embedded += len(todo)
            for k, f in zip(todo, feats):
                self.cache[k] = f
                if len(self.cache) > self.cache_size:
                    self.cache.popitem(last=False)
        return {k: self.cache[k] for k in keys}

    def run(self, pairs: list[Pairing]) -> list[Insight]:
        """Pairings -> insights, in the same order."""
        fc = self.backend.embed_csi(np.stack([p.report.csi for p in pairs])).feature
        fused = [i for i, p in enumerate(pairs) if p.frame is not None]
        alone = [i for i, p in enumerate(pairs) if p.frame is None]
        p_los = np.empty(len(pairs), np.float32)
        pos = np.empty((len(pairs), 3), np.float32)
        if fused:
            if self.reuse:
                frames = self._frame_features(pairs)
                fi = np.stack([frames[(pairs[i].frame.camera_id, pairs[i].frame.seq)] for i in fused])
            else:                                       # the naive way: every UE embeds its frame again
                images = np.stack([pairs[i].frame.image for i in fused]).transpose(0, 3, 1, 2)
                fi = self.backend.embed_image(images.astype(np.float32) / 255.0).feature
                self.frames_embedded += len(fused)
            out = self.backend.heads(fc[fused], fi)
            p_los[fused], pos[fused] = out.p_los, out.position
        if alone:
            out = self.backend.heads(fc[alone])
            p_los[alone], pos[alone] = out.p_los, out.position
        now = time.time_ns()
        res = []
        for i, p in enumerate(pairs):
            r, f = p.report, p.frame
            res.append(Insight(r.ran_name, r.ue_id, r.sn, r.t_ns, float(p_los[i]), bool(p_los[i] > self.threshold),
                               (float(pos[i, 0]), float(pos[i, 1]), float(pos[i, 2])),
                               "fused" if f is not None else "csi_only", self.model,
                               f.camera_id if f else "", f.t_ns if f else 0, r.received_ns, now))
        return res
