"""Where the insights go: `redis.url` resolved once at start, and a client for it.

    auto                 the RIC's database (dbaas) when the pod is told where it is, else embedded:
                           DBAAS_SERVICE_HOST + DBAAS_SERVICE_PORT   (what the O-RAN SC xApp chart sets)
                           + DBAAS_SERVICE_SENTINEL_PORT + DBAAS_MASTER_NAME   (dbaas behind Redis
                             Sentinel, as the platform's dbaas-appconfig sets them): the master it names
                           DBAAS_CLUSTER_ADDR_LIST   (several dbaas groups): the namespace's group
    embedded             a private redis-server the app starts (redis_server.py)
    redis://, rediss://, unix://                        that server
    redis+sentinel://host:port[,host:port]/master[/db]  the master these Sentinels name

These are the variables the RIC's SDL libraries (ricsdl, xapp-frame) read, read the same way, so
with `auto` the xApp writes where the other xApps read its namespace.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from wmfm.config import ConfigError

from .controls import RedisConfig


@dataclass(frozen=True)
class Target:
    """A resolved `redis.url`: the URL the client uses ("embedded" until the server is started) and
    where it came from (logged in the ready line and served at /ric/v1/config)."""
    url: str
    source: str                     # "controls" (a URL), "dbaas" (from DBAAS_*), "embedded"


def _list(env, name: str) -> list[str]:
    return [v.strip() for v in env.get(name, "").split(",")] if env.get(name) else []


def _complete(values: list[str], n: int) -> list[str]:
    """A list of per-group values made as long as the groups, its last value repeated (as the SDL does)."""
    return values + values[-1:] * (n - len(values)) if values else []


def resolve(url: str, env: dict | None = None, namespace: str = "wmfm") -> Target:
    """`redis.url` + the environment -> Target. `auto`: the dbaas the DBAAS_* variables name, read as
    the SDL libraries read them (ricsdl's configuration): the groups DBAAS_CLUSTER_ADDR_LIST (else the
    one DBAAS_SERVICE_HOST), their DBAAS_SERVICE_PORT, and with DBAAS_SERVICE_SENTINEL_PORT their
    Sentinels and DBAAS_MASTER_NAME (each list completed with its last value); of several groups the
    one the SDL picks for `namespace` (crc32(namespace) % groups), so other xApps read where the xApp
    writes. Without DBAAS_* variables: the embedded server."""
    env = os.environ if env is None else env
    if url != "auto":
        return Target(url, "embedded" if url == "embedded" else "controls")
    host = env.get("DBAAS_SERVICE_HOST", "").strip()
    addrs = _list(env, "DBAAS_CLUSTER_ADDR_LIST") or ([host] if host else [])
    if not addrs:
        return Target("embedded", "embedded")
    n = len(addrs)
    i = zlib.crc32(namespace.encode()) % n if n > 1 else 0
    sentinel_ports = _complete(_list(env, "DBAAS_SERVICE_SENTINEL_PORT"), n)
    if sentinel_ports:
        masters = _complete(_list(env, "DBAAS_MASTER_NAME"), n)
        if not masters or not masters[i]:
            raise ConfigError("controls.redis.url: auto: DBAAS_SERVICE_SENTINEL_PORT is set without "
                              "DBAAS_MASTER_NAME (the Sentinel's master to ask for)")
        _port(sentinel_ports[i], "DBAAS_SERVICE_SENTINEL_PORT")
        return Target(f"redis+sentinel://{addrs[i]}:{sentinel_ports[i]}/{masters[i]}/0", "dbaas")
    ports = _complete(_list(env, "DBAAS_SERVICE_PORT"), n)
    port = ports[i] if ports else "6379"
    _port(port, "DBAAS_SERVICE_PORT")
    return Target(f"redis://{addrs[i]}:{port}/0", "dbaas")


def _port(value: str, name: str) -> None:
    if not (value.isdigit() and 1 <= int(value) <= 65535):
        raise ConfigError(f"controls.redis.url: auto: {name}={value!r} is not a port (1-65535)")


def connect(url: str, cfg: RedisConfig) -> redis.Redis:
    """A client for `url` with the configured credentials/TLS and short timeouts (the loop must not hang)."""
    # no retries inside redis-py: the sink's Backoff is the one retry policy, and the loop never waits on it
    # (a connect to a black-holed host costs the loop at most 0.1 s per backoff step)
    kw = {"socket_timeout": 0.5, "socket_connect_timeout": 0.1, "health_check_interval": 0,
          "retry": Retry(NoBackoff(), 0)}
    if cfg.username:
        kw["username"] = cfg.username
    if cfg.password_env:
        if cfg.password_env not in os.environ:
            raise ConfigError(f"controls.redis.password_env: the environment variable {cfg.password_env} is not set")
        kw["password"] = os.environ[cfg.password_env]
    if url.startswith("rediss://"):
        kw.update(ssl_ca_certs=cfg.tls_ca_file or None, ssl_certfile=cfg.tls_cert_file or None,
                  ssl_keyfile=cfg.tls_key_file or None)
    if url.startswith("redis+sentinel://"):
        sentinels, master, db = sentinel_parts(url)
        # the Sentinels' own connections: the same short timeouts; the master's password is not theirs
        sentinel_kw = {k: v for k, v in kw.items() if k not in ("username", "password")}
        return Sentinel(sentinels, sentinel_kwargs=sentinel_kw, **sentinel_kw).master_for(
            master, redis_class=redis.Redis, db=db, **kw)
    return redis.Redis.from_url(url, **kw)


def sentinel_parts(url: str) -> tuple[list[tuple[str, int]], str, int]:
    """redis+sentinel://h1:p1,h2:p2/master/db -> ([(h1, p1), (h2, p2)], master, db)."""
    parts = urlsplit(url)
    hosts = []
    for hp in parts.netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = hp.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"controls.redis.url: {url!r}: expected redis+sentinel://host:port[,host:port]/master[/db]")
        hosts.append((host.strip("[]"), int(port)))
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ConfigError(f"controls.redis.url: {url!r}: expected redis+sentinel://host:port[,host:port]/master[/db]")
    return hosts, path[0], int(path[1]) if len(path) == 2 else 0
