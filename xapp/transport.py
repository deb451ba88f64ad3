"""ZeroMQ receive sockets: PULL or SUB, bind or connect, with the limits set on purpose, and
the Inbox that turns what arrives on one into typed records.

- MAXMSGSIZE: twice the codec's limit, so a merely oversized message reaches the codec and is
  counted ("oversize"), while a grossly oversized one is cut at the socket (peer disconnected).
- RCVHWM: messages queued per sender before it blocks (PUSH) or drops (PUB): `rcvhwm`, lowered
  so that they fit `queue_bytes` at the largest size MAXMSGSIZE lets in. The memory a socket can
  hold is then at most senders x (RCVHWM + 1) x MAXMSGSIZE (the +1: the message being received).
- Multipart messages are refused: each message is one part; a multipart one is counted
  ("multipart") and all its parts dropped, so no part is ever taken for a message of its own.
- LINGER 0: closing never waits for undelivered messages (we only receive).
- CURVE (optional, bind mode): the xApp is the CURVE server with its secret key; a ZAP
  handler admits only clients whose public key is in the allow-list folder: a sender not on
  the list completes no handshake and delivers nothing.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from wmfm.config import ConfigError

from .codec import DecodeError, Limits
from .controls import CurveConfig, SocketConfig


class Curve:
    """Server keys + the ZAP allow-list for one zmq.Context."""

    def __init__(self, ctx: zmq.Context, cfg: CurveConfig):
        key_file = Path(cfg.server_secret_key_file)
        allowed = Path(cfg.allowed_clients_dir)
        if not key_file.is_file():
            raise ConfigError(f"controls.curve.server_secret_key_file: {key_file} not found")
        if not allowed.is_dir():
            raise ConfigError(f"controls.curve.allowed_clients_dir: {allowed} is not a folder")
        try:
            self.public, self.secret = zmq.auth.load_certificate(key_file)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"controls.curve.server_secret_key_file: {exc}") from None
        if self.secret is None:
            raise ConfigError(f"controls.curve.server_secret_key_file: {key_file} holds no secret key")
        self.auth = ThreadAuthenticator(ctx)
        self.auth.start()
        self.auth.configure_curve(domain="*", location=str(allowed))

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def stop(self) -> None:
        self.auth.stop()


def preflight(cfg: SocketConfig, where: str, log) -> None:
    """Before the model loads: a tcp host that does not resolve stops start-up in bind mode (one line
    naming the field); in connect mode it is a warning (ZeroMQ keeps retrying, and the name may
    appear later, as a Kubernetes Service's does)."""
    if not cfg.endpoint.startswith("tcp://"):
        return
    host = cfg.endpoint[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    if host == "*":
        return
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError) as exc:
        if cfg.mode == "bind":
            raise ConfigError(f"controls.{where}.endpoint: cannot bind {cfg.endpoint}: {host!r} does not resolve "
                              f"({exc})") from None
        log.warning("endpoint host does not resolve yet: ZeroMQ keeps trying",
                    extra={"mdc": {"socket": where, "endpoint": cfg.endpoint, "error": str(exc)}})


def open_socket(ctx: zmq.Context, cfg: SocketConfig, curve: Curve | None, where: str) -> tuple[zmq.Socket, str]:
    """(socket, the endpoint it really uses: a bound "tcp://host:*" resolves to the chosen port)."""
    sock = ctx.socket(zmq.PULL if cfg.pattern == "pull" else zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, cfg.hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, 2 * cfg.max_message_bytes)
    sock.setsockopt(zmq.LINGER, 0)
    if cfg.pattern == "sub":
        sock.setsockopt(zmq.SUBSCRIBE, b"")
    if curve is not None:
        curve.apply(sock)
    try:
        if cfg.mode == "bind":
            sock.bind(cfg.endpoint)
            endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        else:
            sock.connect(cfg.endpoint)
            endpoint = cfg.endpoint
    except zmq.ZMQError as exc:
        sock.close()
        raise ConfigError(f"controls.{where}.endpoint: cannot {cfg.mode} {cfg.endpoint} ({exc})") from None
    return sock, endpoint


class Inbox:
    """One receive socket and its decoder. Every message is counted (`wmfm_messages_total`),
    decoded into a record (the `decode` stage), or counted by reason and dropped
    (`wmfm_decode_errors_total`): a bad message never stops the caller's loop.

    Used by the loop (indications) and the frame worker (frames); a ZeroMQ socket belongs to one
    thread, so each inbox is used by one."""

    def __init__(self, name: str, sock: zmq.Socket, decode: Callable, limits: Limits, metrics, log):
        self.name, self.sock, self.decode, self.limits = name, sock, decode, limits
        self.metrics, self.log = metrics, log

    def receive(self, limit: int) -> Iterator:
        """Up to `limit` queued messages, without waiting: yields one item per message, its record,
        or None when it was dropped (already counted)."""
        for _ in range(limit):
            try:
                buf = self.sock.recv(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return
            self.metrics.messages.labels(self.name).inc()
            if self.sock.rcvmore:
                self._drop_multipart()
                yield None
                continue
            yield self.parse(buf, time.time_ns())

    def _drop_multipart(self) -> None:
        """Drop the rest of a multipart message (its parts arrive together: ZeroMQ delivers all or
        none) and count it once."""
        parts = 1
        while self.sock.rcvmore:
            self.sock.recv(copy=True)
            parts += 1
        self.metrics.decode_errors.labels(self.name, "multipart").inc()
        self.log.debug("message dropped", extra={"mdc": {"socket": self.name, "reason": "multipart",
                                                         "detail": f"{parts} parts"}})

    def parse(self, buf: bytes, now_ns: int):
        return self.apply("decode", self.decode, buf, self.limits, now_ns)

    def apply(self, stage: str, fn: Callable, *args):
        """fn(*args) timed as `stage`; None when it raises (a DecodeError counted by reason on this
        socket, anything else counted as an internal error and logged)."""
        t0 = time.perf_counter()
        try:
            rec = fn(*args)
        except DecodeError as exc:
            self.metrics.decode_errors.labels(self.name, exc.reason).inc()
            self.log.debug("message dropped", extra={"mdc": {"socket": self.name, "reason": exc.reason,
                                                             "detail": exc.detail}})
            return None
        except Exception:  # noqa: BLE001 - a decoder bug must not stop the loop: counted, logged
            self.metrics.dropped.labels("internal_error").inc()
            self.log.exception("decoder failed", extra={"mdc": {"socket": self.name}})
            return None
        self.metrics.stage.labels(stage).observe(time.perf_counter() - t0)
        return rec
