"""`redis.url: auto`: the RIC's dbaas found through the DBAAS_* variables the xApp chart sets (and
through Redis Sentinel), with real redis-servers; else the embedded server."""

import subprocess
import time

import pytest
import redis
from conftest import Sender, wait_for
from test_app import STREAM, send_pairs
from wmfm.sim.spawn import free_port
from wmfm.xapp.dbaas import Target, resolve, sentinel_parts
from wmfm.xapp.redis_server import EmbeddedRedis, redis_binary

from wmfm.config import ConfigError


@pytest.mark.parametrize("env, want", [
    ({}, Target("embedded", "embedded")),
    ({"DBAAS_SERVICE_HOST": "service-ricplt-dbaas-tcp.ricplt.svc.cluster.local", "DBAAS_SERVICE_PORT": "6379"},
     Target("redis://service-ricplt-dbaas-tcp.ricplt.svc.cluster.local:6379/0", "dbaas")),
    ({"DBAAS_SERVICE_HOST": "dbaas"}, Target("redis://dbaas:6379/0", "dbaas")),
    ({"DBAAS_SERVICE_HOST": "dbaas", "DBAAS_SERVICE_PORT": "6379", "DBAAS_MASTER_NAME": "dbaasmaster",
      "DBAAS_SERVICE_SENTINEL_PORT": "26379"}, Target("redis+sentinel://dbaas:26379/dbaasmaster/0", "dbaas")),
    ({"DBAAS_SERVICE_HOST": "dbaas", "DBAAS_MASTER_NAME": "dbaasmaster"}, Target("redis://dbaas:6379/0", "dbaas")),
    # several groups: namespace wmfm goes to crc32("wmfm") % 3 = 2, ports and names completed with the last
    ({"DBAAS_CLUSTER_ADDR_LIST": "db-a,db-b,db-c", "DBAAS_SERVICE_PORT": "6380"},
     Target("redis://db-c:6380/0", "dbaas")),
    ({"DBAAS_CLUSTER_ADDR_LIST": "db-a,db-b,db-c", "DBAAS_SERVICE_SENTINEL_PORT": "26379,26380",
      "DBAAS_MASTER_NAME": "m-a,m-b,m-c"}, Target("redis+sentinel://db-c:26380/m-c/0", "dbaas")),
    ({"DBAAS_SERVICE_PORT": "6379"}, Target("embedded", "embedded")),          # a port alone names no server
])
def test_auto_follows_the_dbaas_variables(env, want):
    assert resolve("auto", env) == want


def test_the_group_follows_the_namespace():
    import zlib
    assert zlib.crc32(b"wmfm") % 3 == 2 and zlib.crc32(b"other") % 3 == 0
    assert resolve("auto", {"DBAAS_CLUSTER_ADDR_LIST": "db-a,db-b,db-c"}, namespace="other").url == \
        "redis://db-a:6379/0"


def test_a_url_in_the_controls_wins_over_the_environment():
    env = {"DBAAS_SERVICE_HOST": "dbaas", "DBAAS_SERVICE_PORT": "6379"}
    assert resolve("redis://db:6380/2", env) == Target("redis://db:6380/2", "controls")
    assert resolve("embedded", env) == Target("embedded", "embedded")


def test_a_bad_dbaas_variable_stops_start_up_naming_it():
    with pytest.raises(ConfigError, match="controls.redis.url: auto: DBAAS_SERVICE_PORT='redis' is not a port"):
        resolve("auto", {"DBAAS_SERVICE_HOST": "dbaas", "DBAAS_SERVICE_PORT": "redis"})
    with pytest.raises(ConfigError, match="without DBAAS_MASTER_NAME"):
        resolve("auto", {"DBAAS_SERVICE_HOST": "dbaas", "DBAAS_SERVICE_SENTINEL_PORT": "26379"})


def test_sentinel_urls_are_parsed():
    assert sentinel_parts("redis+sentinel://a:26379,b:26380/mymaster/3") == ([("a", 26379), ("b", 26380)],
                                                                              "mymaster", 3)
    with pytest.raises(ConfigError, match="expected redis\\+sentinel://host:port"):
        sentinel_parts("redis+sentinel://a/mymaster")


def _insights_reach(app, server_url: str, samples) -> None:
    tx = Sender(app)
    send_pairs(tx, samples, 0, 5, time.time_ns() + 50_000_000)
    r = redis.Redis.from_url(server_url)
    assert wait_for(lambda: r.xlen(STREAM) == 10), r.xlen(STREAM)
    tx.close()


def test_with_only_the_dbaas_variables_the_xapp_writes_to_that_redis(run_xapp, samples, tmp_path, monkeypatch):
    port = free_port()
    with EmbeddedRedis(tmp_path / "dbaas", port=port) as server:
        monkeypatch.setenv("DBAAS_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("DBAAS_SERVICE_PORT", str(port))
        app = run_xapp()                                   # redis.url: auto (the default)
        assert app.redis == Target(f"redis://127.0.0.1:{port}/0", "dbaas") and app.embedded is None
        assert app.describe()["redis_source"] == "dbaas"
        _insights_reach(app, server.url, samples)


def test_with_the_sentinel_variables_the_xapp_writes_to_the_master_they_name(run_xapp, samples, tmp_path,
                                                                            monkeypatch):
    port, sentinel_port = free_port(), free_port()
    (tmp_path / "sentinel").mkdir()
    conf = tmp_path / "sentinel" / "sentinel.conf"
    conf.write_text(f"port {sentinel_port}\nbind 127.0.0.1\nsentinel monitor dbaasmaster 127.0.0.1 {port} 1\n")
    with EmbeddedRedis(tmp_path / "dbaas", port=port) as server:
        sentinel = subprocess.Popen([redis_binary(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        try:
            s = redis.Redis(port=sentinel_port)
            assert wait_for(lambda: _answers(s)), "the sentinel did not start"
            monkeypatch.setenv("DBAAS_SERVICE_HOST", "127.0.0.1")
            monkeypatch.setenv("DBAAS_SERVICE_PORT", str(port))
            monkeypatch.setenv("DBAAS_MASTER_NAME", "dbaasmaster")
            monkeypatch.setenv("DBAAS_SERVICE_SENTINEL_PORT", str(sentinel_port))
            app = run_xapp()
            assert app.redis == Target(f"redis+sentinel://127.0.0.1:{sentinel_port}/dbaasmaster/0", "dbaas")
            _insights_reach(app, server.url, samples)
        finally:
            sentinel.terminate()
            sentinel.wait(timeout=10)


def _answers(r: redis.Redis) -> bool:
    try:
        return bool(r.ping())
    except redis.ConnectionError:
        return False
