"""The xApp: start-up, the receive -> sync -> micro-batch -> infer -> Redis loop, and drain.

    startup   config (validated) -> artifact (hashes) -> backend (warmed) -> Redis -> sockets -> HTTP
    frames    a worker thread receives, decodes and embeds camera frames (frames.py)
    loop      one thread: poll the indications (and the worker's wake-up), decode, track SNs, pair
              with frames, run micro-batches, write insights (one pipeline per batch)
    drain     SIGTERM/SIGINT: stop reading, settle waiting reports, infer and write everything
              in flight within `drain_s`, close, exit 0

One thread does the CSI work: at these rates a batch is 1-3 ms, messages that arrive meanwhile
wait in the ZeroMQ queue (bounded by RCVHWM) and make the next batch larger, which is the
micro-batching the CPU needs. The frame worker, the HTTP server and the CURVE authenticator
run beside it.
Errors: a bad message is counted by reason and dropped; Redis trouble is buffered and
retried (sink.py); a bad config or artifact stops start-up with one line.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import signal
import sys
import threading
import time
from collections import deque

import zmq

from wmfm.artifact import Artifact
from wmfm.config import to_dict

from . import inference
from .codec import DecodeError, Limits, decode_frame, decode_indication
from .codec import warmup as warm_codec
from .config import XAppConfig
from .frames import FrameWorker
from .infer import Engine
from .metrics import Metrics
from .records import Pairing
from .redis_server import EmbeddedRedis
from .sink import RedisSink, connect
from .status import StatusServer
from .sync import FrameSync, SNTracker
from .transport import Curve, open_socket

DRAIN_PER_POLL = 256           # messages read per socket per loop turn before looking at the other


def redact(url: str) -> str:
    """redis://user:secret@host -> redis://user:***@host (logs and /ric/v1/config)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, as the RIC's mdclog writes: ts (ms), crit, id, mdc, msg."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"ts": int(record.created * 1000), "crit": record.levelname, "id": "wmfm-xapp",
                           "mdc": getattr(record, "mdc", {}), "msg": record.getMessage()})


def logger(level: str = "INFO") -> logging.Logger:
    log = logging.getLogger("wmfm.xapp")
    if not log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(JsonFormatter())
        log.addHandler(h)
        log.propagate = False
    log.setLevel(level)
    return log


class XApp:
    def __init__(self, cfg: XAppConfig, redis_url: str | None = None):
        self.cfg = cfg
        self.redis_url = redis_url or cfg.redis.url
        self.log = logger(cfg.log_level)
        self.metrics = Metrics()
        self.stop_event = threading.Event()
        self.ready = False
        self.ctx = self.curve = self.status = self.embedded = self.backend = self.frames = None
        self.socks: dict[str, zmq.Socket] = {}
        self.endpoints: dict[str, str] = {}

    # --- start-up --------------------------------------------------------------------
    def start(self) -> XApp:
        """Everything the loop needs; raises ConfigError/ArtifactError with one line on a bad config."""
        cfg = self.cfg
        try:
            self.artifact = Artifact.load(cfg.artifact)
            name = inference.resolve(cfg.backend.name)
            opts = {} if name == "torch" else {"precision": cfg.backend.precision}
            if cfg.backend.threads and name != "tensorrt":
                opts["threads"] = cfg.backend.threads
            self.backend = inference.load(name, self.artifact, **opts)
            self.backend.warmup((1, min(cfg.batch.max_batch, self.artifact.max_batch)))
            mc = self.artifact.manifest["model_config"]
            pre = self.artifact.manifest["preprocessing"]["image"]
            cams = {c: ((v.width, v.height) if v.width and v.height else None) for c, v in cfg.cameras.items()}
            src = tuple(pre["source_size"]) if pre.get("source_size") else None
            self.limits_ind, self.limits_frames = (
                Limits(mc["n_ant"], mc["n_sc"], tuple(mc["image_size"]), src, cams, getattr(cfg, s).max_message_bytes)
                for s in ("indications", "frames"))
            warm_codec(self.limits_ind, self.limits_frames)
            self.engine = Engine(self.backend, cfg.los_threshold, self.artifact.version,
                                 reuse_frames=cfg.batch.reuse_frames)
            self.sync = FrameSync(cfg.sync, list(cfg.cameras))
            self.sn = SNTracker()
            self.cells = frozenset(cfg.scaling.cells)
            if self.redis_url == "embedded":
                self.embedded = EmbeddedRedis().start()
                self.redis_url = self.embedded.url
            self.sink = RedisSink(connect(self.redis_url, cfg.redis), cfg.redis, self.metrics,
                                  shared=cfg.scaling.round_robin)
            if not self.sink.ping():
                self.log.warning("Redis does not answer yet: insights are buffered until it does",
                                 extra={"mdc": {"redis": self.redis_url}})
            self.ctx = zmq.Context()
            self.curve = Curve(self.ctx, cfg.curve) if cfg.curve.enabled else None
            for name in ("frames", "indications"):
                self.socks[name], self.endpoints[name] = open_socket(self.ctx, getattr(cfg, name), self.curve, name)
            self.frames = FrameWorker(self.ctx, self.socks["frames"],
                                      lambda buf, now: self._decode("frames", decode_frame, self.limits_frames, buf,
                                                                    now),
                                      self.engine, self.metrics, self.log)
            self.status = StatusServer(cfg.http.host, cfg.http.port, self).start()
        except BaseException:
            self.close()
            raise
        gc.collect()
        gc.freeze()              # the model, sessions and config are long-lived: keep them out of GC passes
        self.ready = True
        self.log.info("ready", extra={"mdc": {"model": self.artifact.version, "backend": self.backend.describe(),
                                              "endpoints": self.endpoints, "http_port": self.status.port,
                                              "redis": redact(self.redis_url)}})
        return self

    def not_ready(self) -> list[str]:
        problems = []
        if not self.ready:
            problems.append("starting or draining")
        if not self.socks:
            problems.append("sockets not bound")
        if getattr(self, "sink", None) is None or not self.sink.ping():
            problems.append("redis does not answer")
        return problems

    def describe(self) -> dict:
        return {"config": to_dict(self.cfg), "model": self.artifact.version,
                "backend": self.backend.describe() if self.backend else None, "endpoints": self.endpoints,
                "redis": redact(self.redis_url), "http_port": self.status.port if self.status else None}

    # --- the loop --------------------------------------------------------------------
    def _decode(self, socket: str, decode, limits: Limits, buf: bytes, now: int):
        """The record, or None after counting the reason (a bad message never stops the loop).
        Called by the loop (indications) and the frame worker (frames)."""
        t0 = time.perf_counter()
        try:
            rec = decode(buf, limits, now)
        except DecodeError as exc:
            self.metrics.decode_errors.labels(socket, exc.reason).inc()
            self.log.debug("message dropped", extra={"mdc": {"socket": socket, "reason": exc.reason,
                                                             "detail": exc.detail}})
            return None
        self.metrics.stage.labels("decode").observe(time.perf_counter() - t0)
        return rec

    def _on_frames(self, ready: deque) -> None:
        """Frames the worker has decoded and embedded: into the rings; they settle waiting reports."""
        now = time.time_ns()
        for frame in self.frames.take():
            for p in self.sync.add_frame(frame):
                self._ready(p, now, ready)

    def _on_indication(self, buf: bytes, now: int, ready: deque) -> None:
        ind = self._decode("indications", decode_indication, self.limits_ind, buf, now)
        if ind is None:
            return
        event, missing = self.sn.observe(ind.stream, ind.sn)
        if event == "gap" and self.cfg.scaling.round_robin:        # the other instances got those
            event = "ok"
        if event != "ok":
            self.metrics.sn.labels(event).inc()
            self.metrics.sn_missing.inc(missing)
            if event == "duplicate":
                return
        if self.cells and ind.cell not in self.cells:               # another instance's cell (sharding)
            self.metrics.skipped.labels("other_cell").inc()
            return
        camera = self.cfg.camera_for(ind.cell)
        self.metrics.reports.inc(len(ind.reports))
        for r in ind.reports:
            p = self.sync.add_report(r, camera, now)
            if p is not None:
                self._ready(p, now, ready)

    def _ready(self, p: Pairing, now: int, ready: deque, cap: bool = True) -> None:
        if cap and len(ready) >= self.cfg.batch.queue:
            self.metrics.dropped.labels("queue_full").inc()
            return
        p.ready_ns = now
        self.metrics.sync.labels("fused" if p.frame is not None else "csi_only").inc()
        self.metrics.stage.labels("sync_wait").observe(max(0, now - p.report.received_ns) / 1e9)
        ready.append(p)

    def _run_batches(self, ready: deque, force: bool) -> None:
        max_batch, max_wait = self.cfg.batch.max_batch, self.cfg.batch.max_wait_us * 1000
        while ready and (force or len(ready) >= max_batch or time.time_ns() - ready[0].ready_ns >= max_wait):
            batch = [ready.popleft() for _ in range(min(max_batch, len(ready)))]
            t0 = time.perf_counter()
            now = time.time_ns()
            for p in batch:
                self.metrics.stage.labels("queue").observe(max(0, now - p.ready_ns) / 1e9)
            insights = self.engine.run(batch)
            self.metrics.stage.labels("infer").observe(time.perf_counter() - t0)
            self.metrics.batch.observe(len(batch))
            for x in insights:
                self.metrics.insights.labels(x.mode).inc()
            self.sink.publish(insights)
        self.metrics.queue.set(len(ready))

    def _poll_timeout_ms(self, ready: deque) -> float:
        now = time.time_ns()
        waits = [100.0]                                              # look at the stop flag 10x a second
        if ready:
            waits.append((ready[0].ready_ns + self.cfg.batch.max_wait_us * 1000 - now) / 1e6)
        dl = self.sync.next_deadline_ns()
        if dl is not None:
            waits.append((dl - now) / 1e6)
        if self.sink.buffer:
            waits.append(max(0.0, (self.sink.retry_at - time.monotonic()) * 1e3))
        return max(0.0, min(waits))

    def _receive(self, sock: zmq.Socket, socket: str, handle, ready: deque, limit: int) -> int:
        """Up to `limit` queued messages from `sock`; a handler failure is counted, never fatal."""
        n = 0
        while n < limit:
            try:
                buf = sock.recv(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            n += 1
            self.metrics.messages.labels(socket).inc()
            try:
                handle(buf, time.time_ns(), ready)
            except Exception:  # noqa: BLE001 - one message must never stop the loop
                self.metrics.dropped.labels("internal_error").inc()
                self.log.exception("message handler failed", extra={"mdc": {"socket": socket}})
        return n

    def _turn(self, ready: deque, force: bool = False) -> None:
        """Settle expired waits, run the batches that are due, retry buffered writes."""
        for p in self.sync.expire(time.time_ns()):
            self._ready(p, time.time_ns(), ready)
        self.metrics.waiting.set(self.sync.pending())
        try:
            self._run_batches(ready, force=force)
        except Exception:  # noqa: BLE001 - a failing batch is dropped and counted, the loop goes on
            self.metrics.dropped.labels("internal_error").inc(len(ready))
            ready.clear()
            self.log.exception("batch failed")
        self.sink.flush()

    def run(self) -> int:
        """The loop, until stop(); then drain. Returns the exit status (0).

        Back-pressure: a turn reads a bounded number of indications, fewer while many UEs are
        ready, so a burst waits in the ZeroMQ queue (and, past RCVHWM, blocks PUSH senders)
        instead of being dropped here."""
        ind = self.socks["indications"]
        poller = zmq.Poller()
        poller.register(ind, zmq.POLLIN)
        poller.register(self.frames.wake_rx, zmq.POLLIN)
        ready: deque[Pairing] = deque()
        self.frames.start()
        self.sync.start_clock(time.time_ns())
        try:
            while not self.stop_event.is_set():
                events = dict(poller.poll(self._poll_timeout_ms(ready)))
                if self.frames.wake_rx in events:                   # frames first: they settle waiting CSI
                    self._on_frames(ready)
                if ind in events:
                    room = (self.cfg.batch.queue - len(ready)) // max(1, self.cfg.batch.max_batch)
                    self._receive(ind, "indications", self._on_indication, ready,
                                  max(1, min(DRAIN_PER_POLL, room)))
                self._turn(ready)
            return self._drain(ready)
        finally:
            self.close()

    def _drain(self, ready: deque) -> int:
        """Stop taking new input; what is already here (in the ZeroMQ queues too) is inferred and
        written within drain_s."""
        self.ready = False
        deadline = time.monotonic() + self.cfg.drain_s
        self.frames.stop(self.cfg.drain_s / 2)
        self._on_frames(ready)
        while time.monotonic() < deadline and self._receive(self.socks["indications"], "indications",
                                                             self._on_indication, ready, DRAIN_PER_POLL):
            self._turn(ready)
        for p in self.sync.flush():
            self._ready(p, time.time_ns(), ready, cap=False)
        self._turn(ready, force=True)
        while self.sink.buffer and time.monotonic() < deadline:
            self.sink.retry_at = min(self.sink.retry_at, time.monotonic())
            if not self.sink.flush():
                time.sleep(0.05)
        self.log.info("drained", extra={"mdc": {"written": self.sink.written, "unwritten": len(self.sink.buffer)}})
        return 0

    # --- lifecycle -------------------------------------------------------------------
    def stop(self, *_args) -> None:
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def close(self) -> None:
        self.ready = False
        if self.status is not None:
            self.status.stop()
            self.status = None
        if self.frames is not None:
            if self.frames.is_alive():
                self.frames.stop(0)
            self.frames.close()
            self.frames = None
        for s in self.socks.values():
            s.close(linger=0)
        self.socks = {}
        if self.curve is not None:
            self.curve.stop()
            self.curve = None
        if self.ctx is not None:
            self.ctx.term()
            self.ctx = None
        if getattr(self, "sink", None) is not None:
            self.sink.close()
            self.sink = None
        if self.backend is not None:
            self.backend.close()
            self.backend = None
        if self.embedded is not None:
            self.embedded.close()
            self.embedded = None
