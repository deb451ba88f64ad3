"""The Redis sink's per-UE hash with several writers (horizontal scaling, `scaling.round_robin`):
the server-side guard keeps the newest insight whatever order the instances write in."""

import pytest
import redis
from wmfm.xapp.controls import RedisConfig
from wmfm.xapp.metrics import Metrics
from wmfm.xapp.records import Insight
from wmfm.xapp.redis_server import EmbeddedRedis
from wmfm.xapp.sink import RedisSink

T0 = 1_790_000_000_000_000_000          # nanosecond times of 2026: beyond a double's exact range


@pytest.fixture
def server():
    srv = EmbeddedRedis().start()
    yield srv
    srv.stop()


def insight(t_ns: int, x: float) -> Insight:
    return Insight("gnb1", 7, 0, t_ns, 0.9, True, (x, 0.0, 0.0), "fused", "m")


@pytest.mark.parametrize("shared", [True, False])
def test_two_instances_writing_one_ue_keep_the_newest_only_when_shared(server, shared):
    a, b = (RedisSink(redis.Redis.from_url(server.url), RedisConfig(), Metrics(), shared=shared) for _ in range(2))
    a.publish([insight(T0 + 2, 2.0)])        # instance A answers the newer indication first ...
    b.publish([insight(T0 + 1, 1.0)])        # ... B the older one (1 ns older) a moment later
    a.publish([insight(T0 + 1, 9.0)])        # A itself never moves back (its own memory)
    h = redis.Redis.from_url(server.url).hgetall(a.ue_key("gnb1", 7))
    if shared:
        assert h[b"t_ns"] == str(T0 + 2).encode() and h[b"x"] == b"2.0000"
    else:                                    # without the guard B's older insight overwrites A's newer one
        assert h[b"t_ns"] == str(T0 + 1).encode() and h[b"x"] == b"1.0000"
    assert redis.Redis.from_url(server.url).xlen(a.stream) == 3          # the stream has every insight
    b.publish([insight(T0 + 3, 3.0)])        # a newer one from B goes through
    assert redis.Redis.from_url(server.url).hget(a.ue_key("gnb1", 7), "t_ns") == str(T0 + 3).encode()


def test_the_guard_compares_times_as_numbers_not_as_text(server):
    """A newer time with more digits ("1000" after "999", as text "1000" < "999") still wins."""
    a, b, c = (RedisSink(redis.Redis.from_url(server.url), RedisConfig(), Metrics(), shared=True) for _ in range(3))
    a.publish([insight(999, 1.0)])
    b.publish([insight(1000, 2.0)])
    c.publish([insight(998, 3.0)])           # older (and shorter) from a third instance: refused by the server
    h = redis.Redis.from_url(server.url).hgetall(a.ue_key("gnb1", 7))
    assert h[b"t_ns"] == b"1000" and h[b"x"] == b"2.0000"
