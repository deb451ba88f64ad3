"""Where the insights go: `redis.url` resolved once at start, and a client for it.

    auto                 the RIC's database (dbaas) when the pod is told where it is, else embedded:
                           DBAAS_SERVICE_HOST + DBAAS_SERVICE_PORT   (what the O-RAN SC xApp chart sets)
                           + DBAAS_MASTER_NAME + DBAAS_SERVICE_SENTINEL_PORT   (dbaas behind Redis
                             Sentinel, as the platform's dbaas-appconfig sets them): the master it names
    embedded             a private redis-server the app starts (redis_server.py)
    redis://, rediss://, unix://                        that server
    redis+sentinel://host:port[,host:port]/master[/db]  the master these Sentinels name

These are the variables the RIC's SDL libraries (ricsdl, xapp-frame) read, so with `auto` the xApp
writes where the other xApps read. Where several dbaas groups are listed (comma-separated), the
first is used: the SDL spreads namespaces over the groups, the xApp writes one namespace to one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from wmfm.config import ConfigError

from .controls import RedisConfig

SCHEMES = ("redis", "rediss", "unix", "redis+sentinel")


@dataclass(frozen=True)
class Target:
    """A resolved `redis.url`: the URL the client uses ("embedded" until the server is started) and
    where it came from (logged in the ready line and served at /ric/v1/config)."""
    url: str
    source: str                     # "controls" (a URL), "dbaas" (from DBAAS_*), "embedded"


def _first(value: str) -> str:
    return value.split(",")[0].strip()


def resolve(url: str, env: dict | None = None) -> Target:
    """`redis.url` + the environment -> Target. `auto`: the dbaas the DBAAS_* variables name, else the
    embedded server."""
    env = os.environ if env is None else env
    if url != "auto":
        return Target(url, "embedded" if url == "embedded" else "controls")
    host = _first(env.get("DBAAS_SERVICE_HOST", ""))
    if not host:
        return Target("embedded", "embedded")
    master, sentinel_port = _first(env.get("DBAAS_MASTER_NAME", "")), _first(env.get("DBAAS_SERVICE_SENTINEL_PORT", ""))
    if master and sentinel_port:
        _port(sentinel_port, "DBAAS_SERVICE_SENTINEL_PORT")
        return Target(f"redis+sentinel://{host}:{sentinel_port}/{master}/0", "dbaas")
    port = _first(env.get("DBAAS_SERVICE_PORT", "")) or "6379"
    _port(port, "DBAAS_SERVICE_PORT")
    return Target(f"redis://{host}:{port}/0", "dbaas")


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
