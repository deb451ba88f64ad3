"""Camera frames on their own thread: receive, decode, embed, hand over.

JPEG decoding (PIL) and ONNX Runtime both release the GIL, so on a 2-core host a frame
(~0.5 ms decode + ~0.7 ms image encoder for the cpu model) is processed beside the CSI path
instead of in front of it: a CSI report that arrives just after a frame does not wait ~1.2 ms.
The worker owns the frame socket (ZeroMQ sockets are single-threaded). A decoded frame goes to
the loop at once (a deque, plus one byte on an inproc PAIR socket to wake the loop's poller),
so CSI can pair with it while the worker is still embedding it; a batch that needs the
embedding before it is done waits for it instead of computing it twice (Engine.prefetch).
"""

from __future__ import annotations

import threading
import time
from collections import deque

import zmq

from .records import Frame

_ids = iter(range(1 << 30))


class FrameWorker(threading.Thread):
    def __init__(self, ctx: zmq.Context, inbox, engine, metrics, log):
        """inbox: the frames' transport.Inbox (this thread owns its socket from start() on)."""
        super().__init__(name="wmfm-frames", daemon=True)
        self.inbox, self.engine, self.m, self.log = inbox, engine, metrics, log
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
            self.engine.backend.warmup(graphs=("image_encoder",))   # this thread's first call is slow
            while True:
                if self.stopping.is_set() and time.monotonic() >= self.drain_until:
                    break
                if not poller.poll(20 if self.stopping.is_set() else 100):
                    if self.stopping.is_set():
                        break                               # drained: nothing more queued
                    continue
                for frame in self.inbox.receive(64):
                    if frame is not None:
                        self._one(frame)
        finally:
            self._wake_tx.close(linger=0)

    def _one(self, frame: Frame) -> None:
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
