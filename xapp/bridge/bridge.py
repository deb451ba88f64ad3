"""The E2 bridge's process: start-up, the RMR loop, and SIGTERM.

    start   HTTP (health, metrics) -> the push socket to the xApp's indications -> RMR (waits for a
            route table) -> register with appmgr -> ask A1 for the policies of type 28001 -> subscribe
    loop    RIC_INDICATION: the E2AP PDU forwarded unchanged to the xApp (ZeroMQ PUSH; the xApp runs
            with indications.encoding e2ap); A1_POLICY_REQ: applied through the xApp's REST endpoint,
            answered
    beside  a thread calls the RIC's REST services every `retry_s`: subscribe where there is no
            subscription yet (new E2 nodes too), register if not; a slow or absent platform service
            never holds up the indications
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

from wmfm.config import ConfigError

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
        self.rmr.send(A1_POLICY_QUERY, a1.query())    # the instances in force come back as CREATEs
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
        return {"bridge": {k: v for k, v in vars(self.b).items()}, "subscriptions": dict(self.subscriptions),
                "registered": self.registered}

    # --- the RIC's REST services ------------------------------------------------------
    def _ric_loop(self) -> None:
        while not self.stop_event.wait(self.b.retry_s):
            self._retry()

    def _retry(self) -> None:
        """Register and subscribe where that has not happened yet (at start, then every retry_s)."""
        if self.b.appmgr_url and not self.registered:
            self._ric("register", self._register)
        try:
            nodes = list(self.b.e2_nodes) or ric.nodes(self.b.e2mgr_url)
        except ric.RicError as exc:
            self._failed("nodes", exc)
            return
        for node in nodes:
            if node not in self.subscriptions and not self.stop_event.is_set():
                self._ric("subscribe", lambda node=node: self._subscribe(node))
        self.metrics.subscriptions.set(len(self.subscriptions))

    def _ric(self, what: str, fn) -> None:
        try:
            fn()
        except ric.RicError as exc:
            self._failed(what, exc)

    def _failed(self, what: str, exc: Exception) -> None:
        self.metrics.ric_errors.labels(what).inc()
        self.log.warning(f"{what} failed, retried in {self.b.retry_s:g} s", extra={"mdc": {"error": str(exc)}})

    def _register(self) -> None:
        host = self.env.get("HOSTNAME") or socket.gethostname()
        ip = self.env.get("POD_IP") or socket.gethostbyname(socket.gethostname())
        ric.register(self.b.appmgr_url, host, self.descriptor.get("version", ""), self.name,
                     f"{ip}:{self.cfg.http.port}", f"{ip}:{self.b.rmr_port}", self.descriptor)
        self.registered = True
        self.log.info("registered with appmgr", extra={"mdc": {"app": host, "instance": self.name}})

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
            self.subscriptions[node] = sid
        self.log.info("subscribed", extra={"mdc": {"node": node, "ran_function_id": params["RANFunctionID"],
                                                   "subscription": self.subscriptions[node]}})

    # --- the loop ---------------------------------------------------------------------
    def run(self) -> int:
        try:
            while not self.stop_event.is_set():
                msg = self.rmr.receive(100)
                if msg is not None:
                    self._on_message(msg)
            return 0
        finally:
            self.close()

    def _on_message(self, msg) -> None:
        self.metrics.messages.labels(NAMES.get(msg.mtype, str(msg.mtype))).inc()
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
            self.ric_thread.join(timeout=30)            # a subscribe in flight ends (and is deleted below)
            self.ric_thread = None
        with self.lock:
            subscriptions, self.subscriptions = dict(self.subscriptions), {}
        for sid in subscriptions.values():
            self._ric("unsubscribe", lambda sid=sid: ric.unsubscribe(self.b.submgr_url, sid))
        self.metrics.subscriptions.set(0)
        if self.registered:
            self._ric("deregister", lambda: ric.deregister(self.b.appmgr_url, self.env.get("HOSTNAME")
                                                           or socket.gethostname(), self.name))
            self.registered = False
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
