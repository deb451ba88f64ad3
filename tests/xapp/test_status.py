"""The xApp's HTTP surface over a real socket: liveness, readiness (and what makes it fail),
the effective config, the Prometheus metrics, and the human ready line of `wmfm xapp`."""

import json
import urllib.error
import urllib.request

from conftest import wait_for
from wmfm.xapp.cli import ready_line
from wmfm.xapp.redis_server import EmbeddedRedis


def get(app, path: str) -> tuple[int, str, str]:
    url = f"http://127.0.0.1:{app.status.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_health_config_and_metrics_endpoints(run_xapp, tmp_path):
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        app = run_xapp("redis.namespace=cellA", redis=server.url)
        assert get(app, "/ric/v1/health/alive") == (200, "application/json", '{"status": "alive"}')
        code, _, body = get(app, "/ric/v1/health/ready")
        assert code == 200 and json.loads(body) == {"status": "ready", "problems": []}

        code, ctype, body = get(app, "/ric/v1/config")
        cfg = json.loads(body)
        assert code == 200 and ctype == "application/json"
        assert cfg["redis"] == server.url and cfg["namespace"] == "cellA"
        assert cfg["config"]["redis"]["namespace"] == "cellA" and cfg["model"] == app.artifact.version
        assert cfg["endpoints"] == app.endpoints and cfg["backend"]["backend"] == "onnxruntime"

        code, ctype, body = get(app, "/ric/v1/metrics")
        assert code == 200 and ctype.startswith("text/plain")
        assert "# TYPE wmfm_messages_total counter" in body and "wmfm_batch_size_bucket{le=" in body
        assert get(app, "/ric/v1/nothing")[0] == 404

        server.kill()                                   # Redis gone: alive, but not ready, and says why
        code, _, body = get(app, "/ric/v1/health/ready")
        assert code == 503 and json.loads(body) == {"status": "not ready", "problems": ["redis does not answer"]}
        assert get(app, "/ric/v1/health/alive")[0] == 200
        server.start()
        assert wait_for(lambda: get(app, "/ric/v1/health/ready")[0] == 200)
    finally:
        server.close()


def test_the_ready_line_gives_a_replay_command_that_finds_the_xapp(run_xapp):
    app = run_xapp()
    line = ready_line(app)
    metrics = f"http://127.0.0.1:{app.status.port}/ric/v1/metrics"
    assert f"--indications {app.endpoints['indications']} --frames {app.endpoints['frames']} --metrics {metrics}" \
        in line
    assert app.artifact.version in line and "insights to unix://" in line


def test_the_replay_reads_the_xapps_redis_from_its_config(run_xapp):
    from wmfm.sim.replay import find_redis
    app = run_xapp("redis.namespace=other")
    url, ns = find_redis(f"http://127.0.0.1:{app.status.port}/ric/v1/metrics")
    assert (url, ns) == (app.redis_url, "other") and url.startswith("unix://")
