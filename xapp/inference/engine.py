"""Micro-batch inference: CSI of every UE in the batch at once, each camera frame embedded
once into its tokens (cached by camera + sequence + time, so later batches with the same frame
reuse them), heads per mode on the batch (the fused heads attend over the UE's frame's tokens).

Frames are embedded when they arrive (`prefetch`), off the CSI path: a CSI report then pays
only for its own encoder and the heads (cameras send ~10 frames/s, CSI comes far more often).
Counts the `infer` stage (per batch), `wmfm_insights_total` by mode and
`wmfm_frame_embeds_total` by path (worker; batch: a batch embedded a frame itself, which the
CSI path pays for).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import numpy as np

from ..records import Insight, Pairing
from .base import Backend, Encoded


class Engine:
    def __init__(self, backend: Backend, los_threshold: float, model: str, frame_cache: int = 64,
                 reuse_frames: bool = True, metrics=None):
        self.backend = backend
        self.metrics = metrics
        self.threshold = los_threshold
        self.model = model
        self.cache: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()   # (camera, seq, t_ns)
        self.cache_size = frame_cache
        self.reuse = reuse_frames
        self.lock = threading.Lock()                # the frame worker fills the cache, the loop reads it
        self.inflight: dict[tuple, threading.Event] = {}   # frames the worker is embedding right now
        self.frames_embedded = 0
        self.frames_reused = 0

    @staticmethod
    def _key(frame) -> tuple[str, int, int]:
        return (frame.camera_id, frame.seq, frame.t_ns)     # t_ns too: a restarted camera counts from 0 again

    def _frame_tokens(self, pairs: list[Pairing], wait: bool = True,
                      path: str = "batch") -> dict[tuple[str, int, int], np.ndarray]:
        """frame key -> image tokens [T, E], embedding only the frames not cached yet (one call);
        `path`: who embeds (the frame worker, or a batch that found its frame's tokens missing)."""
        keys = {self._key(p.frame): p.frame for p in pairs if p.frame is not None}
        out = {}
        with self.lock:
            waits = [self.inflight[k] for k in keys if wait and k in self.inflight and k not in self.cache]
        for ev in waits:                                  # being embedded by the worker: cheaper to wait
            ev.wait(timeout=1.0)
        with self.lock:
            for k in keys:
                if k in self.cache:
                    self.cache.move_to_end(k)             # recently used: evicted last
                    out[k] = self.cache[k]
            self.frames_reused += len(out)
        todo = [k for k in keys if k not in out]
        if todo:                                          # (outside the lock: the encoder call is the long part)
            images = np.stack([keys[k].image for k in todo]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
            tokens = self.backend.embed_image(images).tokens
            if self.metrics is not None:
                self.metrics.frame_embeds.labels(path).inc(len(todo))
            with self.lock:
                self.frames_embedded += len(todo)
                for k, f in zip(todo, tokens):
                    out[k] = self.cache[k] = f
                while len(self.cache) > self.cache_size:
                    self.cache.popitem(last=False)
        return out

    def claim(self, frame) -> threading.Event | None:
        """Mark a frame as being embedded (by the caller, next, with `prefetch`)."""
        if not self.reuse:
            return None
        with self.lock:
            return self.inflight.setdefault(self._key(frame), threading.Event())

    def prefetch(self, frame, claimed: threading.Event | None = None) -> None:
        """Embed a frame now (it will be used by the CSI reports paired with it)."""
        if not self.reuse:
            return
        try:
            self._frame_tokens([Pairing(None, frame)], wait=False, path="worker")
        finally:
            if claimed is not None:
                with self.lock:
                    if self.inflight.get(self._key(frame)) is claimed:
                        del self.inflight[self._key(frame)]
                claimed.set()

    def run(self, pairs: list[Pairing]) -> list[Insight]:
        """Pairings -> insights, in the same order."""
        t0 = time.perf_counter()
        res = self._infer(pairs)
        if self.metrics is not None:
            self.metrics.stage.labels("infer").observe(time.perf_counter() - t0)
            for x in res:
                self.metrics.insights.labels(x.mode).inc()
        return res

    def _infer(self, pairs: list[Pairing]) -> list[Insight]:
        z = self.backend.embed_csi(np.stack([p.report.csi for p in pairs]))
        fused = [i for i, p in enumerate(pairs) if p.frame is not None]
        alone = [i for i, p in enumerate(pairs) if p.frame is None]
        p_los = np.empty(len(pairs), np.float32)
        pos = np.empty((len(pairs), 3), np.float32)
        if fused:
            if self.reuse:
                frames = self._frame_tokens(pairs)
                tok = np.stack([frames[self._key(pairs[i].frame)] for i in fused])
            else:                                       # the naive way: every UE embeds its frame again
                images = np.stack([pairs[i].frame.image for i in fused]).transpose(0, 3, 1, 2)
                tok = self.backend.embed_image(images.astype(np.float32) / 255.0).tokens
                self.frames_embedded += len(fused)
            out = self.backend.heads(Encoded(z.feature[fused], z.embedding[fused]), tok)
            p_los[fused], pos[fused] = out.p_los, out.position
        if alone:
            out = self.backend.heads(Encoded(z.feature[alone], z.embedding[alone]))
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
