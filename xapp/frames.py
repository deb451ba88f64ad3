"""Camera frames on their own thread: receive, conflate, decode, embed, hand over.

    receive    every queued frame message, parsed but not decoded (codec.parse_frame)
    conflate   per camera, a frame that a newer queued frame of the same camera supersedes is
               dropped unread (`wmfm_frames_total{result="superseded"}`), unless a report may still
               pair with it: one waiting for that camera nearer in time to it than to the newer frame,
               or one still to come (FrameSync.needs); a worker that fell behind decodes only frames
               that can still pair, not seconds-old ones
    decode     the training cache's preprocessing (wmfm.image: reduced DCT decode + area resize)
    embed      the image encoder, once per frame (Engine.prefetch); the tokens stay on the frame

The worker owns the frame socket (ZeroMQ sockets are single-threaded). A decoded frame goes to
the loop at once (a deque, plus one byte on an inproc PAIR socket to wake the loop's poller),
so CSI can pair with it while the worker is still embedding it; a batch that needs the
embedding before it is done waits for it instead of computing it twice (Engine.prefetch).
OpenCV and ONNX Runtime release the GIL, so the frame work runs beside the CSI path on another
core; `frame_worker.nice` can lower the thread's CPU priority (the kernel then runs CSI work
first when every core is busy). Its CPU time is counted (`wmfm_frame_worker_cpu_seconds_total`).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable

import zmq

from .codec import decode_image
from .records import Frame, FrameMessage

_ids = iter(range(1 << 30))
RECEIVE = 64                    # frame messages read (then conflated) per round at most


class FrameWorker(threading.Thread):
    def __init__(self, ctx: zmq.Context, inbox, engine, metrics, log, needs: Callable[[str, int, int], bool],
                 conflate: bool = True, nice: int = 0):
        """inbox: the frames' transport.Inbox (this thread owns its socket from start() on);
        needs(camera, t_ns, newer_t_ns): whether a report may still pair with the older frame (FrameSync.needs)."""
        super().__init__(name="wmfm-frames", daemon=True)
        self.inbox, self.engine, self.m, self.log = inbox, engine, metrics, log
        self.needs, self.conflate, self.nice = needs, conflate, nice
        self.frames: deque[Frame] = deque()
        addr = f"inproc://wmfm-frames-{next(_ids)}"
        self.wake_rx = ctx.socket(zmq.PAIR)                 # the loop polls this one
        self.wake_rx.bind(addr)
        self._wake_tx = ctx.socket(zmq.PAIR)
        self._wake_tx.connect(addr)
        self.stopping = threading.Event()
        self.drain_until = 0.0

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.inbox.sock, zmq.POLLIN)
        try:
            if self.nice:
                try:                                        # this thread only (a Linux task of its own)
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
                except (OSError, AttributeError) as exc:
                    self.log.warning("frame worker priority unchanged", extra={"mdc": {"error": str(exc)}})
            self.engine.backend.warmup(graphs=("image_encoder",))   # this thread's first call is slow
            cpu = time.thread_time()
            while True:
                if self.stopping.is_set() and time.monotonic() >= self.drain_until:
                    break
                if not poller.poll(20 if self.stopping.is_set() else 100):
                    if self.stopping.is_set():
                        break                               # drained: nothing more queued
                    continue
                for msg in self.select([m for m in self.inbox.receive(RECEIVE) if m is not None]):
                    self._one(msg)
                now = time.thread_time()
                self.m.frame_cpu.inc(now - cpu)
                cpu = now
        finally:
            self._wake_tx.close(linger=0)

    def select(self, msgs: list[FrameMessage]) -> list[FrameMessage]:
        """The messages worth decoding, in arrival order: per camera the newest, and an older one only
        when a report may still pair with it rather than with the next newer frame (the rest: superseded)."""
        if not self.conflate or len(msgs) < 2:
            return msgs
        by_camera: dict[str, list[int]] = {}
        for i, m in enumerate(msgs):
            by_camera.setdefault(m.camera_id, []).append(i)
        keep = []
        for camera, idx in by_camera.items():
            idx.sort(key=lambda i: msgs[i].t_ns)
            for old, new in zip(idx, idx[1:]):
                if self.needs(camera, msgs[old].t_ns, msgs[new].t_ns):
                    keep.append(old)
                else:
                    self.m.frames.labels(camera, "superseded").inc()
            keep.append(idx[-1])
        return [msgs[i] for i in sorted(keep)]

    def _one(self, msg: FrameMessage) -> None:
        frame = self.inbox.apply("frame_decode", decode_image, msg, self.inbox.limits)
        if frame is None:                                   # counted by reason
            return
        self.m.frames.labels(frame.camera_id, "decoded").inc()
        t1 = time.perf_counter()
        done = self.engine.claim(frame)                     # before the hand-over: a batch waits for it
        self.frames.append(frame)
        self._wake_tx.send(b"f", zmq.NOBLOCK)
        try:
            self.engine.prefetch(frame, done)
        except Exception:  # noqa: BLE001 - the batch embeds it itself if needed; the worker goes on
            self.m.dropped.labels("internal_error").inc()
            self.log.exception("frame embedding failed")
        self.m.stage.labels("frame_embed").observe(time.perf_counter() - t1)

    def take(self) -> list[Frame]:
        """Frames ready for the sync stage (called by the loop when wake_rx is readable)."""
        while True:
            try:
                self.wake_rx.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        out = []
        while self.frames:
            out.append(self.frames.popleft())
        return out

    def stop(self, drain_s: float) -> None:
        """Finish what is queued on the socket (at most drain_s), then end."""
        self.drain_until = time.monotonic() + drain_s
        self.stopping.set()
        self.join(timeout=drain_s + 5)

    def close(self) -> None:
        self.wake_rx.close(linger=0)
        if not self._wake_tx.closed:                        # never started: its run() did not close it
            self._wake_tx.close(linger=0)
