"""Other xApps read the insights through the RIC's SDL library: the real `ricsdl` (O-RAN SC's
Python SDL, configured by the same DBAAS_* variables) against a real redis-server that the xApp
found through them."""

import json
import time

import pytest
import redis
from conftest import Sender, wait_for
from test_app import send_pairs
from wmfm.sim.spawn import free_port
from wmfm.xapp.redis_server import EmbeddedRedis

ricsdl = pytest.importorskip("ricsdl.syncstorage", reason="make setup installs ricsdl (pip --no-deps)")


@pytest.fixture
def dbaas(tmp_path, monkeypatch):
    """A redis-server on a TCP port, named by DBAAS_SERVICE_HOST/PORT (for the xApp and for ricsdl)."""
    port = free_port()
    with EmbeddedRedis(tmp_path / "dbaas", port=port) as server:
        monkeypatch.setenv("DBAAS_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("DBAAS_SERVICE_PORT", str(port))
        yield server


def test_an_sdl_reader_gets_the_insights_the_set_of_ues_and_the_events(run_xapp, samples, dbaas):
    sdl = ricsdl.SyncStorage()
    seen = []
    sdl.subscribe_channel("wmfm", lambda channel, events: seen.append((channel, events)), "updates")
    app = run_xapp()
    tx = Sender(app)
    send_pairs(tx, samples, 0, 4, time.time_ns() + 50_000_000)          # 4 indications of UEs 10 and 11
    r = redis.Redis.from_url(dbaas.url)
    assert wait_for(lambda: r.xlen("{wmfm},insights") == 8)

    assert sdl.get_members("wmfm", "ues") == {b"gnb1:10", b"gnb1:11"}
    got = sdl.get("wmfm", {"insight:gnb1:10", "insight:gnb1:11", "insight:gnb1:99"})
    assert set(got) == {"insight:gnb1:10", "insight:gnb1:11"}               # an unknown UE: absent
    for ue in (10, 11):
        doc = json.loads(got[f"insight:gnb1:{ue}"].decode("utf-8"))
        h = {k.decode(): v.decode() for k, v in r.hgetall(f"{{wmfm}},ue:gnb1:{ue}").items()}
        assert doc["ran"] == "gnb1" and doc["ue"] == ue and doc["sn"] == 3 == int(h["sn"])   # the newest
        assert doc["t_ns"] == int(h["t_ns"]) and doc["los"] == bool(int(h["los"])) and doc["mode"] == h["mode"]
        assert doc["p_los"] == pytest.approx(float(h["p_los"]), abs=1e-6)
        assert (doc["x"], doc["y"], doc["z"]) == pytest.approx((float(h["x"]), float(h["y"]), float(h["z"])),
                                                             abs=1e-4)
    assert 0 < r.pttl("{wmfm},insight:gnb1:10") <= 60_000

    def events():
        sdl.handle_events()
        return [e for _, evs in seen for e in evs]
    assert wait_for(lambda: len(events()) >= 8)
    assert {c for c, _ in seen} == {"updates"}                              # the channel, as the SDL names it
    assert sorted(events()) == sorted([f"insight:gnb1:{u}" for u in (10, 11)] * 4)
    assert all(len(evs) == len(set(evs)) for _, evs in seen)             # one event per UE per batch
    sdl.close()
    tx.close()


@pytest.mark.parametrize("env", [
    {"DBAAS_SERVICE_HOST": "dbaas-1", "DBAAS_SERVICE_PORT": "6380"},
    {"DBAAS_CLUSTER_ADDR_LIST": "db-a,db-b,db-c", "DBAAS_SERVICE_PORT": "6380,6381"},
    {"DBAAS_CLUSTER_ADDR_LIST": "db-a,db-b", "DBAAS_SERVICE_PORT": "6379", "DBAAS_SERVICE_SENTINEL_PORT": "26379",
     "DBAAS_MASTER_NAME": "m-a,m-b"}])
@pytest.mark.parametrize("namespace", ["wmfm", "other"])
def test_auto_picks_the_redis_ricsdl_reads_the_namespace_from(env, namespace, monkeypatch):
    """ricsdl's own configuration, given the same variables, talks to the same server for the namespace."""
    from wmfm.xapp.dbaas import resolve, sentinel_parts
    for k in ("DBAAS_SERVICE_HOST", "DBAAS_SERVICE_PORT", "DBAAS_SERVICE_SENTINEL_PORT", "DBAAS_MASTER_NAME",
              "DBAAS_CLUSTER_ADDR_LIST"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    sdl = ricsdl.SyncStorage()
    client = sdl._SyncStorage__dbbackend._RedisBackend__getClient(namespace)      # the SDL's pick (no I/O)
    target = resolve("auto", env, namespace)
    if target.url.startswith("redis+sentinel://"):
        sentinels, master, _ = sentinel_parts(target.url)
        pool = client.connection_pool
        assert pool.service_name == master
        kw = pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
        assert (kw["host"], int(kw["port"])) == sentinels[0]
    else:
        kw = client.connection_pool.connection_kwargs
        assert target.url == f"redis://{kw['host']}:{kw['port']}/0"


def test_a_ue_leaves_the_set_when_its_insight_expires(run_xapp, samples, dbaas):
    app = run_xapp("redis.sdl_ttl_s=1")
    tx = Sender(app)
    send_pairs(tx, samples, 0, 2, time.time_ns() + 50_000_000)
    sdl = ricsdl.SyncStorage()
    assert wait_for(lambda: sdl.get_members("wmfm", "ues") == {b"gnb1:10", b"gnb1:11"})
    # nothing more is sent: the keys expire after 1 s, and the xApp takes the UEs out of the set
    assert wait_for(lambda: sdl.get_members("wmfm", "ues") == set(), timeout=5)
    assert sdl.get("wmfm", {"insight:gnb1:10"}) == {}
    send_pairs(tx, samples, 2, 1, time.time_ns() + 50_000_000)            # back
    assert wait_for(lambda: sdl.get_members("wmfm", "ues") == {b"gnb1:10", b"gnb1:11"})
    sdl.close()
    tx.close()


def test_the_mirror_can_be_turned_off(run_xapp, samples, dbaas):
    app = run_xapp("redis.sdl_mirror=false")
    tx = Sender(app)
    send_pairs(tx, samples, 0, 2, time.time_ns() + 50_000_000)
    r = redis.Redis.from_url(dbaas.url)
    assert wait_for(lambda: r.xlen("{wmfm},insights") == 4)
    assert sorted(k.decode() for k in r.keys("*")) == ["{wmfm},insights", "{wmfm},ue:gnb1:10", "{wmfm},ue:gnb1:11"]
    tx.close()
