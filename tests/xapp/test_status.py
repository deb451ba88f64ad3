"""The xApp's HTTP surface over a real socket: liveness, readiness (and what makes it fail),
the effective config, the Prometheus metrics, and the human ready line of `wmfm xapp`."""

import json
import urllib.error
import urllib.request

import pytest
from conftest import wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wmfm.xapp.cli import ready_line
from wmfm.xapp.redis_server import EmbeddedRedis


def get(app, path: str) -> tuple[int, str, str]:
    """GET from a running xApp's (or a bare StatusServer's) HTTP surface."""
    port = app.status.port if hasattr(app, "status") else app.port
    url = f"http://127.0.0.1:{port}{path}"
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


class _App:
    """What the HTTP surface reads from the app: its metrics, readiness and description."""

    def __init__(self):
        from wmfm.xapp.metrics import Metrics
        self.metrics = Metrics()

    def not_ready(self):
        return []

    def describe(self):
        return {"ok": True}


def serve(**kw):
    from wmfm.xapp.controls import HttpConfig
    from wmfm.xapp.status import StatusServer
    app = _App()
    return StatusServer(HttpConfig(host="127.0.0.1", port=0, **kw), app).start(), app


def connections(app, result: str) -> float:
    return app.metrics.http.labels(result)._value.get()


def test_idle_connections_are_closed_and_at_most_max_connections_are_served_at_once():
    """200 idle connections once held 200 threads for ever: now an idle connection is closed after
    http.timeout_s, and past http.max_connections new ones are closed unanswered (counted)."""
    import socket
    import threading
    srv, app = serve(timeout_s=0.5, max_connections=4, backlog=64)
    try:
        assert srv.httpd.request_queue_size == 64
        threads = threading.active_count()
        idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(10)]
        assert wait_for(lambda: connections(app, "refused") == 6, timeout=5)
        for s in idle:                                     # every one closed by the server: refused or timed out
            s.settimeout(5)
            assert s.recv(1) == b""
            s.close()
        assert wait_for(lambda: connections(app, "error") == 4, timeout=5)   # the 4 served ones timed out
        assert wait_for(lambda: threading.active_count() <= threads, timeout=5)
        assert get(srv, "/ric/v1/health/alive")[0] == 200
    finally:
        srv.stop()


def test_clients_that_go_away_mid_request_are_counted_never_a_traceback(capfd):
    import socket
    import struct
    srv, app = serve(timeout_s=1.0)
    try:
        for k in range(30):
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(b"GET /ric/v1/metrics HTTP/1.1\r\n" + (b"Host: x\r\n\r\n" if k % 2 else b"Host"))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # close with a reset
            s.close()
        assert get(srv, "/ric/v1/health/alive")[0] == 200
        assert wait_for(lambda: connections(app, "error") >= 1, timeout=5)
        err = capfd.readouterr().err
        assert "Traceback" not in err and err == "", err[-2000:]
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def fuzz_server():
    srv, _ = serve(timeout_s=1.0)
    yield srv
    srv.stop()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=600), method=st.sampled_from([b"GET", b"POST", b"HEAD", b"\x00\xff", b""]))
def test_any_bytes_sent_to_the_http_surface_leave_it_answering(fuzz_server, body, method):
    import socket
    with socket.create_connection(("127.0.0.1", fuzz_server.port)) as s:
        s.settimeout(5)
        s.sendall(method + b" " + body + b"\r\n\r\n")
        try:
            s.recv(65536)                                   # an answer, or the server closing it
        except (ConnectionResetError, TimeoutError):
            pass
    assert get(fuzz_server, "/ric/v1/health/alive")[0] == 200
