"""Horizontal scaling on one machine: two xApp instances (real ZeroMQ sockets, one shared real
redis-server) behind one replay. Every insight is published exactly once, by round-robin
fan-out or by cell sharding; an instance skips (and counts) the cells it does not serve."""

import numpy as np
import pytest
import redis
from wmfm.sim.player import Player, ReplayConfig
from wmfm.sim.replay import replay
from wmfm.sim.scorer import RAN_NAME
from wmfm.sim.spawn import free_port
from wmfm.xapp.redis_server import EmbeddedRedis

from wmfm.config import ConfigError

CELLS = ("00101:1", "00101:2")
STRICT = ("sync.max_skew_ms=10", "sync.deadline_ms=40")      # as tests/sim/test_replay.py (speed 10)


@pytest.fixture
def shared_redis():
    srv = EmbeddedRedis().start()
    yield srv.url
    srv.stop()


def _replay(apps, rec, redis_url, **kw):
    cfg = ReplayConfig(**{"speed": 10.0, "settle_s": 3.0, **kw})
    metrics = ",".join(f"http://127.0.0.1:{a.status.port}/ric/v1/metrics" for a in apps)
    return replay(rec, [a.endpoints["indications"] for a in apps], [a.endpoints["frames"] for a in apps],
                         redis_url, cfg, metrics_url=metrics, progress=False)


def _exactly_once(s, n: int, redis_url: str) -> None:
    assert s["sent"]["indications"] == n and s["received"] == n
    assert s["lost"] == 0 and s["unexpected"] == 0                   # none missing, none twice
    assert redis.Redis.from_url(redis_url).xlen("{wmfm},insights") == n
    assert sum(sum(i["insights"].values()) for i in s["instances"]) == n


@pytest.mark.slow
def test_round_robin_fan_out_splits_the_indications_and_publishes_each_insight_once(
        run_xapp, cameras, recording, shared_redis):
    apps = [run_xapp(cameras, *STRICT, "scaling.round_robin=true", redis=shared_redis) for _ in range(2)]
    s = _replay(apps, recording, shared_redis)
    n = recording.n_reports
    _exactly_once(s, n, shared_redis)
    a, b = s["instances"]
    assert abs(a["indications"] - b["indications"]) <= 1           # ZeroMQ deals them out in turn
    for inst in s["instances"]:
        assert inst["frames"] == s["sent"]["frames"]                  # every frame reaches both
        assert inst["sn_events"] == {}                                # no gaps counted: the others got them
        assert sum(inst["sync"].values()) == inst["indications"] and inst["sync"].get("fused", 0) > 0
    # the per-UE hash holds each UE's newest insight although two instances wrote it
    r = redis.Redis.from_url(shared_redis)
    newest = {}
    for row in s["_rows"]:
        newest[row["ue"]] = max(newest.get(row["ue"], 0), row["sn"])
    for ue, sn in newest.items():
        assert int(r.hget(f"{{wmfm}},ue:{RAN_NAME}:{ue}", "sn")) == sn


@pytest.mark.slow
def test_cell_sharding_routes_each_cell_to_its_instance(run_xapp, cameras, recording, shared_redis):
    apps = [run_xapp(cameras, *STRICT, f'scaling.cells=["{c}"]', redis=shared_redis) for c in CELLS]
    s = _replay(apps, recording, shared_redis, cells=CELLS, route="cell")
    _exactly_once(s, recording.n_reports, shared_redis)
    ues = np.concatenate([sc.ue_id for sc in recording.scenes])
    for k, inst in enumerate(s["instances"]):                     # UE id mod 2 picks the cell
        assert sum(inst["insights"].values()) == int(np.sum(ues % 2 == k)) > 0
        assert inst["skipped"] == {} and inst["sn_events"] == {}    # its own subscription, no gaps


@pytest.mark.slow
def test_an_instance_skips_and_counts_the_cells_it_does_not_serve(run_xapp, cameras, recording, shared_redis):
    app = run_xapp(cameras, *STRICT, f'scaling.cells=["{CELLS[0]}"]', redis=shared_redis)
    s = _replay([app], recording, shared_redis, cells=CELLS)
    ues = np.concatenate([sc.ue_id for sc in recording.scenes])
    mine = int(np.sum(ues % 2 == 0))
    assert s["received"] == mine and s["unexpected"] == 0
    assert s["xapp"]["skipped"] == {"other_cell": len(ues) - mine}
    assert s["xapp"]["decode_errors"] == {} and s["xapp"]["dropped"] == {}


def test_bad_routes_are_refused_with_one_line(recording):
    with pytest.raises(ConfigError, match="--route cell: needs one indication endpoint per cell"):
        Player(recording, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2",
                      ReplayConfig(cells=CELLS, route="cell"))
    with pytest.raises(ConfigError, match="expected ZeroMQ endpoints"):
        Player(recording, "tcp://127.0.0.1:1,nowhere", "tcp://127.0.0.1:2", ReplayConfig())
    with pytest.raises(ConfigError, match="--cell: one or more distinct cells"):
        ReplayConfig(cells=(CELLS[0], CELLS[0])).validate()
    with pytest.raises(ConfigError, match="--peers: --bind --route cell: one xApp per cell"):
        ReplayConfig(cells=CELLS, route="cell", bind=True, peers=1).validate()


@pytest.mark.timeout(30)
def test_an_endpoint_that_fails_closes_every_socket_and_says_which(recording):
    with pytest.raises(ConfigError, match="cannot connect tcp://bad host:1"):    # the frames, after the indications
        Player(recording, "tcp://127.0.0.1:1", "tcp://bad host:1", ReplayConfig())
    import zmq
    port = free_port()
    ctx = zmq.Context()
    taken = ctx.socket(zmq.PULL)
    taken.bind(f"tcp://127.0.0.1:{port}")
    try:                                     # the second cell's port is taken: nothing hangs, one line
        with pytest.raises(ConfigError, match=f"cannot bind tcp://127.0.0.1:{port}"):
            Player(recording, f"tcp://127.0.0.1:{free_port()},tcp://127.0.0.1:{port}",
                          f"tcp://127.0.0.1:{free_port()}",
                          ReplayConfig(cells=CELLS, route="cell", bind=True, peers=2))
    finally:
        taken.close(0)
        ctx.term()


@pytest.mark.slow
def test_xapps_that_connect_to_a_bound_replay_share_its_indications_and_each_get_every_frame(
        run_xapp, cameras, recording, shared_redis):
    ind, frm = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    connect = [f"indications.endpoint={ind}", "indications.mode=connect", f"frames.endpoint={frm}",
               "frames.mode=connect", "frames.pattern=sub", "scaling.round_robin=true"]
    apps = [run_xapp(cameras, *STRICT, *connect, redis=shared_redis) for _ in range(2)]
    cfg = ReplayConfig(speed=10.0, settle_s=3.0, bind=True, peers=2, connect_timeout_s=20)
    metrics = ",".join(f"http://127.0.0.1:{a.status.port}/ric/v1/metrics" for a in apps)
    s = replay(recording, ind, frm, shared_redis, cfg, metrics_url=metrics, progress=False)
    _exactly_once(s, recording.n_reports, shared_redis)
    a, b = s["instances"]
    assert abs(a["indications"] - b["indications"]) <= 1
    assert a["frames"] == b["frames"] == s["sent"]["frames"]
    # a third xApp that never comes: the replay says so instead of sending everything to the others
    with pytest.raises(ConfigError, match="--peers 3: after 1 s, 2 xApp"):
        Player(recording, ind, frm, ReplayConfig(bind=True, peers=3, connect_timeout_s=1))
