"""ZeroMQ receive sockets: PULL or SUB, bind or connect, with the limits set on purpose.

- RCVHWM: messages queued per socket before the sender blocks (PUSH) or drops (PUB).
- MAXMSGSIZE: twice the codec's limit, so a merely oversized message reaches the codec and is
  counted ("oversize"), while a grossly oversized one is cut at the socket (peer disconnected).
- LINGER 0: closing never waits for undelivered messages (we only receive).
- CURVE (optional, bind mode): the xApp is the CURVE server with its secret key; a ZAP
  handler admits only clients whose public key is in the allow-list folder: a sender not on
  the list completes no handshake and delivers nothing.
"""

from __future__ import annotations

from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from wmfm.config import ConfigError

from .config import CurveConfig, SocketConfig


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


def open_socket(ctx: zmq.Context, cfg: SocketConfig, curve: Curve | None, where: str) -> tuple[zmq.Socket, str]:
    """(socket, the endpoint it really uses: a bound "tcp://host:*" resolves to the chosen port)."""
    sock = ctx.socket(zmq.PULL if cfg.pattern == "pull" else zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, cfg.rcvhwm)
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
