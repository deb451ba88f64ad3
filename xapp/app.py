"""The xApp: start-up, the receive -> sync -> micro-batch -> infer -> Redis loop, and drain.

    startup   controls (validated) -> HTTP (alive, not ready) -> artifact (hashes) -> backend (warmed) -> Redis
              -> sockets -> ready
    frames    a worker thread receives camera frames, drops the superseded ones, decodes and embeds the
              rest (frames.py)
    loop      one thread: poll the indications (and the worker's wake-up), decode, track SNs, pair
              with frames, run micro-batches, write insights (one pipeline per batch)
    drain     SIGTERM/SIGINT: stop reading, settle waiting reports, infer and write everything
              in flight within `drain_s`, close, exit 0; insights Redis did not take by then are
              lost: a CRITICAL line with their number, exit 3

The online path goes one way, each stage counting its own metrics:

    transport.Inbox -> sync.SNTracker -> sync.FrameSync -> batch.Batcher -> inference.Engine -> sink.RedisSink

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
from collections import OrderedDict

import zmq

from wmfm.artifact import Artifact
from wmfm.config import to_dict

from . import inference
from .batch import DRAIN_PER_POLL, Batcher
from .codec import Limits, decode_indication, parse_frame
from .codec import warmup as warm_codec
from .controls import XAppConfig
from .dbaas import connect, resolve
from .e2ap import decode_e2ap_indication
from .e2ap import warmup as warm_e2ap
from .frames import FrameWorker
from .inference.engine import Engine
from .metrics import Metrics
from .policy import Effective, Policies
from .records import Indication
from .redis_server import EmbeddedRedis
from .sink import RedisSink
from .status import StatusServer
from .sync import FrameSync, SNTracker
from .transport import Curve, Inbox, open_socket, preflight

EXIT_LOST = 3           # the exit status when insights were lost at shutdown (Redis unreachable while draining)


def redact(url: str) -> str:
    """redis://user:secret@host -> redis://user:***@host (logs and /ric/v1/config)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, as the RIC's mdclog writes: ts (ms), crit, id, mdc, msg (+ exc,
    the traceback, when the record carries an exception)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": int(record.created * 1000), "crit": record.levelname, "id": "wmfm-xapp",
               "mdc": getattr(record, "mdc", {}), "msg": record.getMessage()}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


class _Stderr(logging.StreamHandler):
    """A handler writing to sys.stderr as it is when a line is logged, not as it was when the
    handler was made (a program embedding the xApp, or a test, may replace it meanwhile)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def logger(level: str = "INFO") -> logging.Logger:
    log = logging.getLogger("wmfm.xapp")
    if not log.handlers:
        h = _Stderr()
        h.setFormatter(JsonFormatter())
        log.addHandler(h)
        log.propagate = False
    log.setLevel(level)
    return log


class XApp:
    def __init__(self, cfg: XAppConfig, redis_url: str | None = None):
        self.cfg = cfg
        self.redis = resolve(redis_url or cfg.redis.url, namespace=cfg.redis.namespace)
        self.redis_url = self.redis.url
        self.log = logger(cfg.log_level)
        self.metrics = Metrics()
        self.stop_event = threading.Event()
        self.ready = False
        self.cells = frozenset(cfg.scaling.cells)
        self.ctx = self.curve = self.status = self.embedded = self.backend = self.frames = None
        self.artifact = self.engine = self.sink = self.sync = self.sn = self.pending = self.indications = None
        self.policies: Policies | None = None
        self.policy_version = 0                 # the version of the policies the loop applies
        self.enabled: frozenset[str] = frozenset()   # the A1 policy's cells; empty: every cell
        self.started_ns = time.time_ns()        # this process's start: the E2 bridge asks A1 again after a restart
        self.subscription_results: OrderedDict[str, str] = OrderedDict()   # subscription id -> ok | failed
        self.notice_lock = threading.Lock()     # the notices and /ric/v1/config come on HTTP threads
        self.socks: dict[str, zmq.Socket] = {}
        self.endpoints: dict[str, str] = {}

    # --- start-up --------------------------------------------------------------------
    def start(self) -> XApp:
        """Everything the loop needs; raises ConfigError/ArtifactError with one line on a bad config."""
        cfg, m = self.cfg, self.metrics
        try:
            # first, so an address that cannot be used stops start-up before the model loads; alive (not
            # ready) while it loads
            self.status = StatusServer(cfg.http, self, notice=self.subscription_notice).start()
            for name in ("indications", "frames"):
                preflight(getattr(cfg, name), name, self.log)
            self.artifact = Artifact.load(cfg.artifact)
            self.backend = inference.from_controls(cfg.backend, self.artifact)
            self.backend.warmup((1, min(cfg.batch.max_batch, self.artifact.max_batch)))
            limits_ind, limits_frames = self._limits()
            warm_codec(limits_ind, limits_frames)
            if cfg.indications.encoding == "e2ap":
                warm_e2ap(limits_ind)
            self.engine = Engine(self.backend, cfg.los_threshold, self.artifact.version,
                                 reuse_frames=cfg.batch.reuse_frames, metrics=m)
            self.sync = FrameSync(cfg.sync, list(cfg.cameras), metrics=m)
            self.sn = SNTracker(metrics=m, expect_gaps=cfg.scaling.round_robin)
            self.pending = Batcher(cfg.batch, m)
            self.policies = Policies(Effective(cfg.los_threshold, cfg.sync.max_skew_ms, (), "all"), m)
            if self.redis_url == "embedded":
                self.embedded = EmbeddedRedis().start()
                self.redis_url = self.embedded.url
            self.sink = RedisSink(connect(self.redis_url, cfg.redis), cfg.redis, m, shared=cfg.scaling.round_robin)
            if not self.sink.ping():
                self.log.warning("Redis does not answer yet: insights are buffered until it does",
                                 extra={"mdc": {"redis": self.redis_url}})
            self.ctx = zmq.Context()
            self.curve = Curve(self.ctx, cfg.curve) if cfg.curve.enabled else None
            for name in ("frames", "indications"):
                self.socks[name], self.endpoints[name] = open_socket(self.ctx, getattr(cfg, name), self.curve, name)
            decode = decode_e2ap_indication if cfg.indications.encoding == "e2ap" else decode_indication
            self.indications = Inbox("indications", self.socks["indications"], decode, limits_ind, m, self.log)
            frames = Inbox("frames", self.socks["frames"], parse_frame, limits_frames, m, self.log)
            self.frames = FrameWorker(self.ctx, frames, self.engine, m, self.log, self.sync.needs,
                                      cfg.frame_worker.conflate, cfg.frame_worker.nice)
        except BaseException:
            self.close()
            raise
        gc.collect()
        gc.freeze()              # the model, sessions and config are long-lived: keep them out of GC passes
        self.ready = True
        self.log.info("ready", extra={"mdc": {"model": self.artifact.version, "backend": self.backend.describe(),
                                              "endpoints": self.endpoints, "http_port": self.status.port,
                                              "redis": redact(self.redis_url), "redis_source": self.redis.source,
                                              "namespace": cfg.redis.namespace, "queues": self.queues()}})
        return self

    def _limits(self) -> tuple[Limits, Limits]:
        """What the codec accepts on each socket: the model's CSI and image shapes, the cameras."""
        cfg = self.cfg
        mc = self.artifact.manifest["model_config"]
        pre = self.artifact.manifest["preprocessing"]["image"]
        cams = {c: v.limit for c, v in cfg.cameras.items()}
        src = tuple(pre["source_size"]) if pre.get("source_size") else None
        return tuple(Limits(mc["n_ant"], mc["n_sc"], tuple(mc["image_size"]), src, cams,
                            getattr(cfg, s).max_message_bytes) for s in ("indications", "frames"))

    def not_ready(self) -> list[str]:
        problems = []
        if not self.ready:
            problems.append("starting or draining")
        if not self.socks:
            problems.append("sockets not bound")
        if self.sink is None or not self.sink.ping():
            problems.append("redis does not answer")
        return problems

    def describe(self) -> dict:
        return {"config": to_dict(self.cfg), "model": self.artifact.version if self.artifact else None,
                "backend": self.backend.describe() if self.backend else None, "endpoints": self.endpoints,
                "redis": redact(self.redis_url), "redis_source": self.redis.source,
                "namespace": self.cfg.redis.namespace,
                "http_port": self.status.port if self.status else None, "queues": self.queues(),
                "policy": self.policies.effective.to_json() if self.policies else None,
                "started_ns": self.started_ns, "subscriptions": self.subscriptions()}

    def subscriptions(self) -> dict:
        with self.notice_lock:
            return dict(self.subscription_results)

    def queues(self) -> dict:
        """Per receive socket: the messages it queues per sender and the memory that can take."""
        return {name: {"rcvhwm": s.hwm, "max_bytes_per_sender": s.queue_bound}
                for name, s in (("indications", self.cfg.indications), ("frames", self.cfg.frames))}

    # --- the loop --------------------------------------------------------------------
    def _on_frames(self) -> None:
        """Frames the worker has decoded (and is embedding): into the rings; they settle waiting reports.
        Called whenever the worker has handed some over, also between messages and between batches: at
        overload a turn reads hundreds of indications and runs many batches, and a report must meet
        the frames decoded meanwhile."""
        now = time.time_ns()
        for frame in self.frames.take():
            for p in self.sync.add_frame(frame, now):
                self.pending.add(p, now)

    def _on_indication(self, ind: Indication) -> None:
        if not self.sn.accept(ind.stream, ind.sn):                   # a duplicate (counted)
            return
        self.metrics.indications.labels(self.cfg.indications.encoding, ind.sm).inc()
        if self.cells and ind.cell not in self.cells:               # another instance's cell (sharding)
            self.metrics.skipped.labels("other_cell").inc()
            return
        if self.enabled and ind.cell not in self.enabled:           # a cell the A1 policy leaves out
            self.metrics.skipped.labels("policy_cell").inc()
            return
        camera = self.cfg.camera_for(ind.cell)
        self.metrics.reports.inc(len(ind.reports))
        for r in ind.reports:
            for p in self.sync.add_report(r, camera, ind.received_ns):
                self.pending.add(p, time.time_ns())

    def _read_indications(self, limit: int) -> int:
        """Up to `limit` queued indications into the pipeline; returns how many messages were read.
        A failure in handling one is counted and logged, never fatal."""
        n = 0
        for ind in self.indications.receive(limit):
            n += 1
            if self.frames.frames:                  # a frame the worker decoded meanwhile pairs this report
                self._on_frames()
            if ind is None:
                continue
            self._follow_policy()                   # a policy changed meanwhile: from this message on
            try:
                self._on_indication(ind)
            except Exception:  # noqa: BLE001 - one message must never stop the loop
                self.metrics.dropped.labels("internal_error").inc(max(1, len(ind.reports)))
                self.log.exception("indication handler failed")
        return n

    def _run_batches(self, force: bool = False) -> None:
        for batch in self.pending.take(force):
            try:
                insights = self.engine.run(batch)
            except Exception as exc:  # noqa: BLE001 - a failing batch is dropped and counted, the loop goes on
                self.metrics.dropped.labels("inference_error").inc(len(batch))
                self.metrics.batch_failures.labels(type(exc).__name__).inc()
                self.log.error("batch failed: its UE reports are dropped", exc_info=True,
                               extra={"mdc": {"batch": len(batch), "error": f"{type(exc).__name__}: {exc}"[:500],
                                              "ues": [f"{p.report.ran_name}:{p.report.ue_id}" for p in batch[:8]]}})
                continue
            self.sink.publish(insights)
            if self.frames.frames:                  # frames decoded during the batch: into the rings now,
                self._on_frames()                   # not after every due batch has run

    def _turn(self, force: bool = False) -> None:
        """Settle expired waits, run the batches that are due, retry buffered writes."""
        now = time.time_ns()
        for p in self.sync.expire(now):
            self.pending.add(p, now)
        self._run_batches(force)
        self.sink.flush()

    def _follow_policy(self) -> None:
        """The effective A1 policy into the stages when it changed (on the loop's thread, before the next
        message is handled): reports received or inferred from now on follow it."""
        if self.policies.version == self.policy_version:
            return
        self.policy_version = self.policies.version         # read first: a change meanwhile is applied next time
        p = self.policies.effective
        self.engine.threshold = p.los_threshold
        self.sync.skew_ns = int(p.max_skew_ms * 1e6)
        self.enabled = frozenset(p.cells)
        self.sink.publish_mode = p.publish
        self.log.info("policy applied", extra={"mdc": {"policy": p.to_json(), "version": self.policy_version}})

    def policy_request(self, operation: str, instance: str, result: str, reason: str = "") -> None:
        """An A1 policy request handled (HTTP threads): counted, and logged with its reason."""
        self.metrics.policy_requests.labels(operation, result).inc()
        log = self.log.warning if result == "refused" else self.log.info
        log(f"policy {operation} {instance}: {result}", extra={"mdc": {"instance": instance, "reason": reason}})

    def subscription_notice(self, doc) -> None:
        """The RIC's subscription manager's notice (HTTP threads): each instance counted, ok when the E2
        node took it (an E2EventInstanceId), logged with the cause when not."""
        instances = doc.get("SubscriptionInstances") if isinstance(doc, dict) else None
        sid = str(doc.get("SubscriptionId", ""))[:100] if isinstance(doc, dict) else ""
        for inst in instances if isinstance(instances, list) else [{}]:
            ok = isinstance(inst, dict) and inst.get("E2EventInstanceId") not in (None, 0) \
                and not inst.get("ErrorCause")
            self.metrics.subscriptions.labels("ok" if ok else "failed").inc()
            if sid:                 # the bridge reads these back (/ric/v1/config) and makes a failed one again
                with self.notice_lock:
                    failed = not ok or self.subscription_results.get(sid) == "failed"   # one instance failed
                    self.subscription_results[sid] = "failed" if failed else "ok"
                    self.subscription_results.move_to_end(sid)
                    while len(self.subscription_results) > 1024:
                        self.subscription_results.popitem(last=False)
            (self.log.info if ok else self.log.warning)(
                f"subscription {'in force' if ok else 'failed'}",
                extra={"mdc": {"subscription": sid, "instance": inst if isinstance(inst, dict) else str(inst)[:200]}})

    def _poll_timeout_ms(self) -> float:
        now = time.time_ns()
        waits = [100.0]                                              # look at the stop flag 10x a second
        due = self.pending.due_ms(now)
        if due is not None:
            waits.append(due)
        dl = self.sync.next_deadline_ns()
        if dl is not None:
            waits.append((dl - now) / 1e6)
        if self.sink.buffer:
            waits.append(max(0.0, (self.sink.retry_at - time.monotonic()) * 1e3))
        return max(0.0, min(waits))

    def run(self) -> int:
        """The loop, until stop(); then drain. Returns the exit status (0, or EXIT_LOST).

        Back-pressure: a turn reads a bounded number of indications, fewer while many UEs wait
        (Batcher.room), so a burst waits in the ZeroMQ queue (and, past RCVHWM, blocks PUSH
        senders) instead of being dropped here."""
        ind = self.socks["indications"]
        poller = zmq.Poller()
        poller.register(ind, zmq.POLLIN)
        poller.register(self.frames.wake_rx, zmq.POLLIN)
        self.frames.start()
        self.sync.start_clock(time.time_ns())
        try:
            while not self.stop_event.is_set():
                events = dict(poller.poll(self._poll_timeout_ms()))
                self._follow_policy()                               # before anything received after the change
                if self.frames.wake_rx in events:                   # frames first: they settle waiting CSI
                    self._on_frames()
                if ind in events:
                    self._read_indications(self.pending.room())
                self._turn()
            return self._drain()
        finally:
            self.close()

    def _drain(self) -> int:
        """Stop taking new input; what is already here (in the ZeroMQ queues too) is inferred and
        written within drain_s."""
        self.ready = False
        deadline = time.monotonic() + self.cfg.drain_s
        self.frames.stop(self.cfg.drain_s / 2)
        self._on_frames()
        while time.monotonic() < deadline and self._read_indications(DRAIN_PER_POLL):
            self._turn()
        for p in self.sync.flush():
            self.pending.add(p, time.time_ns(), cap=False)
        self._turn(force=True)
        while self.sink.buffer and time.monotonic() < deadline:
            self.sink.retry_at = min(self.sink.retry_at, time.monotonic())
            if not self.sink.flush():
                time.sleep(0.05)
        lost = len(self.sink.buffer)
        self.log.info("drained", extra={"mdc": {"written": self.sink.written, "unwritten": lost}})
        if lost:
            self.log.critical(f"{lost} insights lost at shutdown: Redis did not take them within drain_s",
                              extra={"mdc": {"lost": lost, "redis": redact(self.redis_url),
                                             "drain_s": self.cfg.drain_s}})
            return EXIT_LOST
        return 0

    # --- lifecycle -------------------------------------------------------------------
    def stop(self, *_args) -> None:
        self.stop_event.set()

    def install_signal_handlers(self) -> dict:
        """SIGTERM and SIGINT start the drain; returns the previous handlers (to restore)."""
        return {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}

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
        if self.sink is not None:
            self.sink.close()
            self.sink = None
        if self.backend is not None:
            self.backend.close()
            self.backend = None
        if self.embedded is not None:
            self.embedded.close()
            self.embedded = None

