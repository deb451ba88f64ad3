"""Micro-batch inference: CSI of every UE in the batch at once, each camera frame embedded
once into its tokens (kept on the Frame: every later batch with the same frame reuses them),
heads per mode on the batch (the fused heads attend over the UE's frame's tokens).

Frames are embedded when they arrive (`prefetch`, on the frame worker), off the CSI path: a CSI
report then pays only for its own encoder and the heads. A batch whose frame is still being
embedded waits for it rather than embedding it twice; one that finds a frame not embedded at all
embeds it itself (which the CSI path pays for).
Counts the `infer` stage (per batch), `wmfm_insights_total` by mode and
`wmfm_frame_embeds_total` by path (worker, batch).
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ..records import Frame, Insight, Pairing
from .base import Backend, Encoded

WAIT_S = 1.0                    # a batch waits at most this for a frame the worker is embedding


class Engine:
    def __init__(self, backend: Backend, los_threshold: float, model: str, reuse_frames: bool = True,
                 metrics=None):
        self.backend = backend
        self.metrics = metrics
        self.threshold = los_threshold
        self.model = model
        self.reuse = reuse_frames
        self.lock = threading.Lock()                # the frame worker embeds, the loop reads
        self.inflight: dict[int, threading.Event] = {}   # id(frame) -> set when the worker has embedded it
        self.frames_embedded = 0

    def _embed(self, frames: list[Frame], path: str) -> None:
        """Embed the frames (one call) and keep the tokens on them."""
        images = np.stack([f.image for f in frames]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        tokens = self.backend.embed_image(images).tokens
        for f, t in zip(frames, tokens):
            f.tokens = t
        with self.lock:
            self.frames_embedded += len(frames)
        if self.metrics is not None:
            self.metrics.frame_embeds.labels(path).inc(len(frames))

    def _frame_tokens(self, pairs: list[Pairing]) -> None:
        """Every paired frame's tokens, embedding the frames nobody has (one call)."""
        frames = list({id(p.frame): p.frame for p in pairs if p.frame is not None}.values())
        with self.lock:
            waits = [self.inflight[id(f)] for f in frames if f.tokens is None and id(f) in self.inflight]
        for ev in waits:                                  # being embedded by the worker: cheaper to wait
            ev.wait(timeout=WAIT_S)
        todo = [f for f in frames if f.tokens is None]
        if todo:
            self._embed(todo, "batch")

    def claim(self, frame: Frame) -> threading.Event | None:
        """Mark a frame as being embedded (by the caller, next, with `prefetch`)."""
        if not self.reuse:
            return None
        with self.lock:
            return self.inflight.setdefault(id(frame), threading.Event())

    def prefetch(self, frame: Frame, claimed: threading.Event | None = None) -> None:
        """Embed a frame now (it will be used by the CSI reports paired with it)."""
        if not self.reuse:
            return
        try:
            if frame.tokens is None:
                self._embed([frame], "worker")
        finally:
            if claimed is not None:
                with self.lock:
                    if self.inflight.get(id(frame)) is claimed:
                        del self.inflight[id(frame)]
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
                self._frame_tokens([pairs[i] for i in fused])
                tok = np.stack([pairs[i].frame.tokens for i in fused])
            else:                                       # the naive way: every UE embeds its frame again
                images = np.stack([pairs[i].frame.image for i in fused]).transpose(0, 3, 1, 2)
                tok = self.backend.embed_image(images.astype(np.float32) / 255.0).tokens
                self.frames_embedded += len(fused)
                if self.metrics is not None:
                    self.metrics.frame_embeds.labels("batch").inc(len(fused))
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
