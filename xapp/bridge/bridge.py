"""The E2 bridge's process: start-up, the RMR loop, and SIGTERM.

    start   HTTP (health, metrics) -> the push socket to the xApp's indications -> RMR (waits for a
            route table) -> register with appmgr -> subscribe
    loop    RIC_INDICATION: the E2AP PDU forwarded unchanged to the xApp (ZeroMQ PUSH; the xApp runs
            with indications.encoding e2ap); A1_POLICY_REQ: applied through the xApp's REST endpoint,
            answered
    beside  a thread calls the RIC's REST services every `retry_s`: register if not; once the xApp is
            ready after a start, ask A1 for the policies of type 28001 in force; make again the
            subscriptions that failed or whose node went away; subscribe at new E2 nodes. A slow or
            absent platform service never holds up the indications
    stop    SIGTERM/SIGINT: delete the subscriptions, deregister, close

Nothing the RIC sends stops the loop: an unknown message type is counted, a message the xApp cannot
take at once (its queue full) is dropped and counted, a REST call that fails is retried.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading

import zmq
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from wmfm.config import ConfigError, to_dict

from ..controls import HttpConfig, XAppConfig
from ..e2ap import OID, encode_sm
from ..status import StatusServer
from . import a1, ric
from .rmr import A1_POLICY_QUERY, A1_POLICY_REQ, A1_POLICY_RESP, NAMES, RIC_INDICATION, Rmr


class BridgeMetrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.messages = Counter("wmfm_bridge_messages", "RMR messages received, by type", ["type"], registry=r)
        self.forwarded = Counter("wmfm_bridge_forwarded", "RIC indications handed to the xApp", registry=r)
        self.dropped = Counter("wmfm_bridge_dropped", "RIC indications dropped, by reason: xapp_busy (its socket "
                               "queue full)", ["reason"], registry=r)
        self.policies = Counter("wmfm_bridge_policy_requests", "A1 policy requests by result: ok, deleted, refused, "
                                "bad_request, other_type, xapp_down", ["result"], registry=r)
        self.ric_errors = Counter("wmfm_bridge_ric_errors", "failed calls to the RIC's REST services, by call",
                                  ["call"], registry=r)
        self.subscriptions = Gauge("wmfm_bridge_subscriptions", "E2 subscriptions in force", registry=r)
        self.http = Counter("wmfm_bridge_http_connections", "HTTP connections by result", ["result"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def client_host(cfg: XAppConfig, env, name: str = "wmfm-xapp") -> str:
    """The Host the RIC calls back at (the xApp's HTTP Service): configured; else RMR_SRC_ID (which the
    xApp chart sets to service-<ns>-<name>-rmr.<ns>) with `-rmr.` made `-http.`, the subscription
    manager deriving the RMR endpoint the other way; else service-<ns>-<name>-http.<ns> with the pod's
    namespace (POD_NAMESPACE, the service account's, or ricxapp)."""
    if cfg.bridge.client_host:
        return cfg.bridge.client_host
    src = env.get("RMR_SRC_ID", "")
    if "-rmr." in src:
        return src.replace("-rmr.", "-http.")
    ns = env.get("POD_NAMESPACE", "")
    if not ns and os.path.isfile(NAMESPACE_FILE):
        with open(NAMESPACE_FILE) as f:
            ns = f.read().strip()
    ns = ns or "ricxapp"
    return f"service-{ns}-{name}-http.{ns}"


class Bridge:
    def __init__(self, cfg: XAppConfig, descriptor: dict | None = None, rmr=Rmr, env=None,
                 log: logging.Logger | None = None):
        from ..app import logger
        self.cfg, self.b = cfg, cfg.bridge
        self.descriptor = descriptor or {}
        self.name = self.descriptor.get("name", "wmfm-xapp")
        self.env = os.environ if env is None else env
        self.log = log or logger(cfg.log_level)
        self.metrics = BridgeMetrics()
        self.open_rmr = rmr
        self.stop_event = threading.Event()
        self.status = self.rmr = self.ctx = self.push = None
        self.policies = None                      # (the HTTP surface serves no policies here)
        self.registered = False
        self.subscriptions: dict[str, str] = {}   # E2 node -> subscription id
        self.lock = threading.Lock()               # the subscriptions: the REST thread writes, close() reads
        self.ric_thread: threading.Thread | None = None
        self.closing = False
        self.xapp_started = None                   # the xApp start (its started_ns) A1 was last asked for
        self.ready = False

    # --- start-up ---------------------------------------------------------------------
    def start(self) -> Bridge:
        b = self.b
        try:
            self.status = StatusServer(HttpConfig(port=b.http_port), self).start()
            self.ctx = zmq.Context()
            self.push = self.ctx.socket(zmq.PUSH)
            self.push.setsockopt(zmq.LINGER, 1000)
            self.push.setsockopt(zmq.SNDHWM, 1000)   # ~1 s of indications at 1000/s; more: dropped, counted
            self.push.connect(b.forward)
            try:
                self.rmr = self.open_rmr(b.rmr_port)
            except (OSError, TimeoutError) as exc:      # no library, port taken, no route table
                raise ConfigError(f"controls.bridge.rmr_port {b.rmr_port}: {exc}") from None
        except BaseException:
            self.close()
            raise
        self.ready = True                             # RMR is up: indications flow from here on
        self._retry()                                 # once in line: the log line says how it went
        self.ric_thread = threading.Thread(target=self._ric_loop, name="wmfm-bridge-ric", daemon=True)
        self.ric_thread.start()
        self.log.info("bridge ready", extra={"mdc": {"rmr_port": b.rmr_port, "forward": b.forward,
                                                     "subscriptions": dict(self.subscriptions),
                                                     "registered": self.registered, "http_port": self.status.port}})
        return self

    def not_ready(self) -> list[str]:
        return [] if self.ready else ["starting or stopping"]

    def describe(self) -> dict:
        return {"bridge": to_dict(self.b), "subscriptions": dict(self.subscriptions),
                "registered": self.registered}

    # --- the RIC's REST services ------------------------------------------------------
    def _ric_loop(self) -> None:
        while not self.stop_event.wait(self.b.retry_s):
            self._retry()

    def _retry(self) -> None:
        """What is not done yet (at start, then every retry_s): register; ask A1 for the policies when
        the xApp has (re)started; drop the subscriptions that failed or whose node went away; subscribe
        where there is none. A call that fails is logged, counted and tried again next time."""
        if self.b.appmgr_url and not self.registered:
            self._ric("register", self._register)
        self._ric("xapp", self._follow_xapp)
        self._ric("nodes", self._subscribe_nodes)
        self.metrics.subscriptions.set(len(self.subscriptions))

    def _ric(self, what: str, fn) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - the platform answering anything must not stop the retries
            self.metrics.ric_errors.labels(what).inc()
            self.log.warning(f"{what} failed, tried again in {self.b.retry_s:g} s",
                             extra={"mdc": {"error": f"{type(exc).__name__}: {exc}"[:300]}})

    def _host(self) -> str:
        return self.env.get("HOSTNAME") or socket.gethostname()

    def _register(self) -> None:
        ip = self.env.get("POD_IP") or socket.gethostbyname(socket.gethostname())
        ric.register(self.b.appmgr_url, self._host(), self.descriptor.get("version", ""), self.name,
                     f"{ip}:{self.cfg.http.port}", f"{ip}:{self.b.rmr_port}", self.descriptor)
        with self.lock:
            self.registered = True
            undo = self.closing                       # close() ran meanwhile: take it back
        if undo:
            ric.deregister(self.b.appmgr_url, self._host(), self.name)
            return
        self.log.info("registered with appmgr", extra={"mdc": {"app": self._host(), "instance": self.name}})

    def _follow_xapp(self) -> None:
        """The xApp's policies live in its memory: each time it is ready after a (re)start, ask the A1
        mediator for the instances in force (they come back as CREATE requests). The subscription
        manager's notices reach the xApp: a subscription it says failed is deleted and made again."""
        ric.call("GET", f"{self.b.xapp_url}/ric/v1/health/ready", timeout_s=2, what="xApp ready")
        _, doc = ric.call("GET", f"{self.b.xapp_url}/ric/v1/config", timeout_s=2, what="xApp config")
        started = doc.get("started_ns")
        if started != self.xapp_started and self.rmr.send(A1_POLICY_QUERY, a1.query()):
            self.xapp_started = started
            self.log.info("asked A1 for the policies in force", extra={"mdc": {"xapp_started_ns": started}})
        results = doc.get("subscriptions") or {}
        with self.lock:
            failed = {node: sid for node, sid in self.subscriptions.items() if results.get(sid) == "failed"}
        for node, sid in failed.items():
            self._drop(node, sid, "the subscription manager reported it failed")

    def _subscribe_nodes(self) -> None:
        if self.b.e2_nodes:
            nodes = list(self.b.e2_nodes)
        else:
            nodes = ric.nodes(self.b.e2mgr_url)
            with self.lock:
                gone = {n: sid for n, sid in self.subscriptions.items() if n not in nodes}
            for node, sid in gone.items():              # a node that comes back has lost its subscriptions
                self._drop(node, sid, "the E2 node is not connected")
        for node in nodes:
            if node not in self.subscriptions and not self.stop_event.is_set():
                self._ric("subscribe", lambda node=node: self._subscribe(node))

    def _drop(self, node: str, sid: str, why: str) -> None:
        with self.lock:
            self.subscriptions.pop(node, None)
        self.log.warning(f"subscription at {node} dropped: {why}", extra={"mdc": {"subscription": sid}})
        self._ric("unsubscribe", lambda: ric.unsubscribe(self.b.submgr_url, sid))

    def _subscribe(self, node: str) -> None:
        fid = self.b.ran_function_id
        try:
            found = ric.ran_function_id(self.b.e2mgr_url, node, OID)
        except ric.RicError:
            if not fid:
                raise
            found = None
        if found is None and not fid:
            return                                           # the node does not offer WMFM-CSI
        trigger = encode_sm("E2SM-WMFM-CSI-EventTriggerDefinition", {"reportingPeriodMs": self.b.reporting_period_ms})
        action = encode_sm("E2SM-WMFM-CSI-ActionDefinition", {"dtype": self.b.dtype,
                                                              "maxUEsPerReport": self.b.max_ues_per_report})
        params = ric.subscription_request(client_host(self.cfg, self.env, self.name), self.cfg.http.port,
                                          self.b.rmr_port, node, found if found is not None else fid, trigger, action)
        sid = ric.subscribe(self.b.submgr_url, params)
        with self.lock:
            undo = self.closing                       # close() ran meanwhile: take it back
            if not undo:
                self.subscriptions[node] = sid
        if undo:
            ric.unsubscribe(self.b.submgr_url, sid)
            return
        self.log.info("subscribed", extra={"mdc": {"node": node, "ran_function_id": params["RANFunctionID"],
                                                   "subscription": self.subscriptions[node]}})

    # --- the loop ---------------------------------------------------------------------
    def run(self) -> int:
        try:
            while not self.stop_event.is_set():
                msg = self.rmr.receive(100)
                if msg is None:
                    continue
                try:
                    self._on_message(msg)
                except Exception:  # noqa: BLE001 - one message must never stop the loop
                    self.metrics.messages.labels("failed").inc()
                    self.log.exception("message handler failed", extra={"mdc": {"mtype": msg.mtype}})
            return 0
        finally:
            self.close()

    def _on_message(self, msg) -> None:
        self.metrics.messages.labels(NAMES.get(msg.mtype, "other")).inc()
        if msg.mtype == RIC_INDICATION:
            try:
                self.push.send(msg.payload, zmq.NOBLOCK)
                self.metrics.forwarded.inc()
            except zmq.Again:
                self.metrics.dropped.labels("xapp_busy").inc()
        elif msg.mtype == A1_POLICY_REQ:
            resp, result = a1.handle(self.b.xapp_url, msg.payload, self.name)
            self.metrics.policies.labels(result).inc()
            log = self.log.info if result in ("ok", "deleted") else self.log.warning
            log(f"A1 policy request: {result}", extra={"mdc": {"request": msg.payload[:300].decode(errors="replace")}})
            if resp is not None:
                self.rmr.reply(A1_POLICY_RESP, json.dumps(resp).encode())

    # --- stop -------------------------------------------------------------------------
    def stop(self, *_args) -> None:
        self.stop_event.set()

    def install_signal_handlers(self) -> dict:
        return {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def close(self) -> None:
        """Delete the subscriptions and deregister (best effort: the RIC may be going down too), then close."""
        self.ready = False
        self.stop_event.set()
        if self.ric_thread is not None:
            self.ric_thread.join(timeout=5)             # well inside the pod's grace period
            self.ric_thread = None
        with self.lock:                                 # a subscribe or register still in flight undoes itself
            self.closing = True
            subscriptions, self.subscriptions = dict(self.subscriptions), {}
            registered, self.registered = self.registered, False
        for sid in subscriptions.values():
            self._ric("unsubscribe", lambda sid=sid: ric.unsubscribe(self.b.submgr_url, sid))
        self.metrics.subscriptions.set(0)
        if registered:
            self._ric("deregister", lambda: ric.deregister(self.b.appmgr_url, self._host(), self.name))
        if self.rmr is not None:
            self.rmr.close()
            self.rmr = None
        if self.push is not None:
            self.push.close()
            self.push = None
        if self.ctx is not None:
            self.ctx.term()
            self.ctx = None
        if self.status is not None:
            self.status.stop()
            self.status = None
