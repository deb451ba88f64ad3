"""The xApp end to end, with real ZeroMQ sockets, a real redis-server and ONNX Runtime."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import redis
import zmq
import zmq.auth
from conftest import Sender, wait_for
from wmfm.xapp import codec, inference
from wmfm.xapp.redis_server import EmbeddedRedis

from wmfm.cli import main

MS = 1_000_000
STREAM, PREFIX = "{wmfm},insights", "{wmfm},ue:"


def entries(r: redis.Redis) -> list[dict]:
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in r.xrange(STREAM)]


def counter(app, name, **labels) -> float:
    return app.metrics.registry.get_sample_value(name, labels) or 0.0


PERIOD_MS = 20


def send_pairs(tx: Sender, samples, start: int, n: int, t0: int, ues: int = 2, cam: str = "cam0"):
    """Frame k captured at t0 + k*PERIOD_MS, then an indication (SN k) with `ues` UEs measured 2 ms
    later, each sent when this host's clock reaches its source time (as a live RAN and camera would)."""
    for k in range(start, start + n):
        t = t0 + k * PERIOD_MS * MS
        time.sleep(max(0.0, (t - time.time_ns()) / 1e9))
        tx.frame(cam, k, t, samples["images"][k % len(samples["images"])])
        time.sleep(max(0.0, (t + 2 * MS - time.time_ns()) / 1e9))
        tx.indication(k, t + 2 * MS, [(10 + u, samples["csi"][(k * ues + u) % len(samples["csi"])])
                                      for u in range(ues)])


def test_insights_in_redis_equal_a_direct_call_of_the_model(run_xapp, samples, artifact):
    app = run_xapp("batch.max_wait_us=2000", "sync.deadline_ms=20")   # about pairing and values, not latency
    tx, r = Sender(app), redis.Redis.from_url(app.redis_url)
    t0 = time.time_ns()
    send_pairs(tx, samples, 0, 12, t0)
    assert wait_for(lambda: r.xlen(STREAM) >= 24)
    got = entries(r)
    assert len(got) == 24 and {e["mode"] for e in got} == {"fused"}
    ref = inference.load("onnxruntime", artifact)
    for e in got:
        k, u = int(e["sn"]), int(e["ue"]) - 10
        assert int(e["frame_t_ns"]) == t0 + k * PERIOD_MS * MS and e["camera"] == "cam0"
        img = samples["images"][k][None].transpose(0, 3, 1, 2).astype(np.float32) / 255
        out = ref.fused(samples["csi"][(k * 2 + u)][None], img)
        assert float(e["p_los"]) == pytest.approx(float(out.p_los[0]), abs=1e-5)
        np.testing.assert_allclose([float(e["x"]), float(e["y"]), float(e["z"])], out.position[0], atol=1e-3)
        assert e["los"] == str(int(out.p_los[0] > 0.5)) and e["model"] == app.artifact.version
    h = {k.decode(): v.decode() for k, v in r.hgetall(f"{PREFIX}gnb1:11").items()}
    assert h["sn"] == "11" and h["mode"] == "fused"                     # the per-UE hash holds the latest
    # each frame was embedded once, though two UEs used it
    assert app.engine.frames_embedded == 12
    tx.close()


def test_bad_input_is_counted_by_reason_while_good_messages_get_through(run_xapp, samples):
    app = run_xapp("cameras.cam0.width=64", "cameras.cam0.height=64", "indications.max_message_bytes=100000")
    tx, r = Sender(app), redis.Redis.from_url(app.redis_url)
    t0 = time.time_ns()
    send_pairs(tx, samples, 0, 3, t0)
    csi = samples["csi"][0]
    nan = csi.copy()
    nan[0, 0, 0] = np.nan
    good = codec.encode_indication("gnb1", 50, t0, [(1, csi)])
    bad_ind = [os.urandom(200), good[: len(good) // 2], codec.encode_indication("gnb1", 51, t0, [(1, csi[:, :8])]),
               codec.encode_indication("gnb1", 52, t0, [(1, nan)]), b"\x00" * 150_000]
    from wmfm.proto import csi_sm_pb2, ric_indication_pb2
    m = ric_indication_pb2.RICIndication.FromString(good)
    m.ric_indication_header = csi_sm_pb2.CSIIndicationHeader(collection_time_ns=t0, sm_name="WMFM-CSI",
                                                             sm_version="9.9").SerializeToString()
    bad_ind.append(m.SerializeToString())
    jpg = codec.encode_image(samples["images"][0], "jpeg")
    bad_frames = [jpg[:40], codec.encode_frame("cam0", 90, t0, codec.encode_image(np.zeros((48, 48, 3), np.uint8),
                                                                                 "png"), 48, 48, "png"),
                  codec.encode_frame("cam9", 91, t0, jpg, 64, 64, "jpeg"),
                  codec.encode_frame("cam0", 92, t0, jpg[:60], 64, 64, "jpeg")]
    for b in bad_ind:
        tx.ind.send(b)
    for b in bad_frames:
        tx.frames.send(b)
    tx.indication(2, t0 + 42 * MS, [(10, csi)])                 # SN 2 again: duplicate
    tx.indication(1, t0 + 22 * MS, [(10, csi)])                 # after 2: out of order... and seen: duplicate
    send_pairs(tx, samples, 5, 3, t0)                           # SNs 3, 4 missing: a gap of 2
    tx.indication(4, t0 + 82 * MS, [(10, csi)])                 # a missing one, late: out of order, still served
    assert wait_for(lambda: r.xlen(STREAM) >= 13)
    want = {("indications", "parse"): 2, ("indications", "shape"): 1, ("indications", "nonfinite"): 1,
            ("indications", "oversize"): 1, ("indications", "sm_version"): 1, ("frames", "parse"): 1,
            ("frames", "image_size"): 1, ("frames", "camera"): 1, ("frames", "image"): 1}
    assert wait_for(lambda: all(counter(app, "wmfm_decode_errors_total", socket=s, reason=k) == n
                                for (s, k), n in want.items()))
    assert counter(app, "wmfm_sn_events_total", event="duplicate") == 2
    assert counter(app, "wmfm_sn_events_total", event="gap") == 1 and counter(app, "wmfm_sn_missing_total") == 2
    assert counter(app, "wmfm_sn_events_total", event="out_of_order") == 1
    assert sorted({int(e["sn"]) for e in entries(r)}) == [0, 1, 2, 4, 5, 6, 7]
    tx.close()


def test_redis_killed_and_restarted_loses_nothing_while_the_buffer_has_room(run_xapp, samples, tmp_path):
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        app = run_xapp("redis.retry_backoff_ms=[20, 200]", redis=server.url)
        tx = Sender(app)
        t0 = time.time_ns()
        send_pairs(tx, samples, 0, 5, t0)
        r = redis.Redis.from_url(server.url)
        assert wait_for(lambda: r.xlen(STREAM) >= 10)
        server.kill()
        send_pairs(tx, samples, 5, 20, t0)                     # 40 insights while Redis is down
        assert wait_for(lambda: counter(app, "wmfm_redis_buffer_depth") == 40)
        assert counter(app, "wmfm_redis_errors_total") >= 1
        server.start()                                          # same socket, empty data (no persistence)
        assert wait_for(lambda: redis.Redis.from_url(server.url).xlen(STREAM) >= 40, timeout=15)
        got = entries(redis.Redis.from_url(server.url))
        sns = [int(e["sn"]) for e in got]
        assert sorted(set(sns)) == list(range(5, 25)) and sns == sorted(sns)   # all of them, in order
        assert counter(app, "wmfm_redis_dropped_total") == 0
        tx.close()
    finally:
        server.close()


def test_a_full_buffer_drops_the_oldest_and_counts_them(run_xapp, samples, tmp_path):
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        app = run_xapp("redis.buffer=6", "redis.retry_backoff_ms=[20, 100]", redis=server.url)
        tx = Sender(app)
        t0 = time.time_ns()
        server.kill()
        send_pairs(tx, samples, 0, 5, t0)                      # 10 insights, room for 6
        assert wait_for(lambda: counter(app, "wmfm_redis_dropped_total") == 4)
        server.start()
        assert wait_for(lambda: redis.Redis.from_url(server.url).xlen(STREAM) == 6)
        assert [int(e["sn"]) for e in entries(redis.Redis.from_url(server.url))] == [2, 2, 3, 3, 4, 4]
        tx.close()
    finally:
        server.close()


def test_a_camera_that_stops_gives_csi_only_insights(run_xapp, samples):
    app = run_xapp("sync.deadline_ms=10", "sync.max_skew_ms=60")
    tx, r = Sender(app), redis.Redis.from_url(app.redis_url)
    t0 = time.time_ns()
    for k in range(6):                                          # frames and CSI in real time, 50 ms apart
        t = time.time_ns()
        tx.frame("cam0", k, t, samples["images"][k])
        tx.indication(k, t + MS, [(1, samples["csi"][k])])
        time.sleep(0.05)
    for k in range(6, 16):                                      # the camera stops
        tx.indication(k, time.time_ns(), [(1, samples["csi"][k])])
        time.sleep(0.05)
    assert wait_for(lambda: r.xlen(STREAM) >= 16)
    modes = [(int(e["sn"]), e["mode"]) for e in entries(r)]
    assert all(m == "fused" for sn, m in modes if sn < 6), modes
    assert all(m == "csi_only" for sn, m in modes if sn >= 8)
    assert counter(app, "wmfm_sync_total", result="csi_only") >= 8
    assert t0 > 0
    tx.close()


def test_curve_lets_only_allow_listed_clients_in(run_xapp, samples, tmp_path):
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    server_pub, server_sec = zmq.auth.create_certificates(keys, "server")
    ok_pub, ok_sec = zmq.auth.create_certificates(keys, "client_ok")
    bad_pub, bad_sec = zmq.auth.create_certificates(keys, "client_bad")
    shutil.copy(ok_pub, allowed)
    app = run_xapp("curve.enabled=true", f"curve.server_secret_key_file={server_sec}",
                   f"curve.allowed_clients_dir={allowed}")
    srv = zmq.auth.load_certificate(server_pub)[0]
    r = redis.Redis.from_url(app.redis_url)
    t0 = time.time_ns()
    bad = Sender(app, zmq.Context(), (*zmq.auth.load_certificate(bad_sec), srv))
    send_pairs(bad, samples, 0, 4, t0)
    plain = Sender(app, zmq.Context())                          # no CURVE at all
    send_pairs(plain, samples, 4, 4, t0)
    time.sleep(1.0)
    assert r.xlen(STREAM) == 0
    assert counter(app, "wmfm_messages_total", socket="indications") == 0
    good = Sender(app, zmq.Context(), (*zmq.auth.load_certificate(ok_sec), srv))
    send_pairs(good, samples, 10, 4, t0)
    assert wait_for(lambda: r.xlen(STREAM) >= 8)
    assert {int(e["sn"]) for e in entries(r)} == {10, 11, 12, 13}
    for s in (bad, plain, good):
        s.close()


def test_a_tampered_artifact_is_refused_at_start(artifact, tmp_path, capsys):
    art = tmp_path / "art"
    shutil.copytree(artifact, art)
    with open(art / "csi_encoder.onnx", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    assert main(["xapp", "--artifact", str(art), "--set", "http.port=0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "csi_encoder.onnx: sha256 mismatch" in err[0]


def test_sigterm_during_load_drains_and_exits_0(artifact, samples, tmp_path):
    server = EmbeddedRedis(tmp_path / "redis").start()
    ind, frm = f"ipc://{tmp_path}/ind.sock", f"ipc://{tmp_path}/frames.sock"
    env = {**os.environ, "WMFM__HTTP__PORT": "0", "WMFM__INDICATIONS__ENDPOINT": ind, "WMFM__FRAMES__ENDPOINT": frm}
    proc = subprocess.Popen([sys.executable, "-m", "wmfm.xapp", "--artifact", str(artifact), "--redis", server.url],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        ready = proc.stderr.readline()
        assert json.loads(ready)["msg"] == "ready", ready
        ctx = zmq.Context()
        tx_i, tx_f = ctx.socket(zmq.PUSH), ctx.socket(zmq.PUSH)
        tx_i.connect(ind)
        tx_f.connect(frm)
        t0 = time.time_ns()
        for k in range(300):                                    # ~1.5 s of load; SIGTERM in the middle of it
            t = t0 + k * 10 * MS
            if k % 10 == 0:
                tx_f.send(codec.encode_frame("cam0", k, t, codec.encode_image(samples["images"][k % 50], "png"),
                                             64, 64, "png"))
            tx_i.send(codec.encode_indication("gnb1", k, t + MS, [(u, samples["csi"][(k + u) % 50])
                                                                  for u in range(8)]))
            if k == 150:
                proc.send_signal(signal.SIGTERM)
            time.sleep(0.005)
        assert proc.wait(timeout=30) == 0
        lines = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]
        drained = [e for e in lines if e["msg"] == "drained"]
        assert drained and drained[0]["mdc"]["unwritten"] == 0
        n = redis.Redis.from_url(server.url).xlen(STREAM)
        assert n == drained[0]["mdc"]["written"] > 0 and n % 8 == 0   # whole indications, nothing half-written
        tx_i.close(linger=0)
        tx_f.close(linger=0)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()


def test_a_port_that_cannot_be_listened_on_stops_start_up_with_one_line(artifact, capsys):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc = main(["xapp", "--artifact", str(artifact), "--set", "http.host=127.0.0.1", "--set", f"http.port={port}",
                   "--set", "indications.endpoint=tcp://127.0.0.1:*", "--set", "frames.endpoint=tcp://127.0.0.1:*"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"wmfm xapp: error: controls.http: cannot listen on 127.0.0.1:{port}" in err[0], err


def test_the_xapp_command_hands_the_signals_back_when_it_returns(artifact, tmp_path):
    """In-process (tests, an embedding program), `wmfm xapp` restores SIGINT/SIGTERM when it returns,
    also when start-up fails: Ctrl-C raises KeyboardInterrupt again afterwards."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    art = tmp_path / "art"
    shutil.copytree(artifact, art)
    (art / "csi_encoder.onnx").write_bytes(b"tampered")
    assert main(["xapp", "--artifact", str(art), "--set", "http.port=0"]) == 2
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_multipart_message_is_refused_whole_and_counted(run_xapp, samples):
    """Every message is one part: a multipart one is counted once and all its parts dropped (a valid
    indication inside one never becomes an insight); single messages around it are served."""
    app = run_xapp()
    tx, r = Sender(app), redis.Redis.from_url(app.redis_url)
    t0, csi = time.time_ns(), samples["csi"][0]
    tx.ind.send_multipart([codec.encode_indication("gnb1", 1, t0, [(1, csi)]), b"junk"])
    tx.ind.send_multipart([b"junk", codec.encode_indication("gnb1", 2, t0, [(2, csi)])])
    png = codec.encode_image(samples["images"][0], "png")
    tx.frames.send_multipart([codec.encode_frame("cam0", 1, t0, png, 64, 64, "png"), b"x", b"y"])
    tx.indication(3, t0, [(3, csi)])
    assert wait_for(lambda: r.xlen(STREAM) >= 1)
    assert wait_for(lambda: counter(app, "wmfm_decode_errors_total", socket="frames", reason="multipart") == 1)
    assert counter(app, "wmfm_decode_errors_total", socket="indications", reason="multipart") == 2
    assert counter(app, "wmfm_messages_total", socket="indications") == 3
    assert [e["sn"] for e in entries(r)] == ["3"]
    tx.close()


def test_a_failed_batch_is_counted_by_type_with_the_exception_in_the_log(run_xapp, samples):
    import logging

    from wmfm.xapp.app import JsonFormatter
    app = run_xapp()
    tx, r = Sender(app), redis.Redis.from_url(app.redis_url)
    lines = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(json.loads(JsonFormatter().format(record)))
    keep = Keep()
    app.log.addHandler(keep)
    real = app.engine._infer

    def failing(pairs):
        if any(p.report.ue_id == 7 for p in pairs):
            raise RuntimeError("boom: the backend failed")
        return real(pairs)
    app.engine._infer = failing
    try:
        t0, csi = time.time_ns(), samples["csi"][0]
        tx.indication(1, t0, [(7, csi), (8, csi)])
        assert wait_for(lambda: counter(app, "wmfm_dropped_total", reason="inference_error") == 2)
        assert counter(app, "wmfm_batch_failures_total", error="RuntimeError") == 1
        tx.indication(2, t0, [(9, csi)])                     # the loop goes on
        assert wait_for(lambda: r.xlen(STREAM) == 1)
        failed = [e for e in lines if e["msg"].startswith("batch failed")]
        assert len(failed) == 1 and failed[0]["crit"] == "ERROR"
        assert failed[0]["mdc"]["error"] == "RuntimeError: boom: the backend failed"
        assert failed[0]["mdc"]["batch"] == 2 and failed[0]["mdc"]["ues"] == ["gnb1:7", "gnb1:8"]
        assert "Traceback" in failed[0]["exc"] and "RuntimeError: boom" in failed[0]["exc"]
    finally:
        app.log.removeHandler(keep)
        tx.close()


def test_sigterm_while_redis_is_down_exits_3_with_a_critical_line_counting_the_lost(artifact, samples, tmp_path):
    import urllib.request
    server = EmbeddedRedis(tmp_path / "redis").start()
    ind = f"ipc://{tmp_path}/ind.sock"
    proc = subprocess.Popen([sys.executable, "-m", "wmfm.xapp", "--artifact", str(artifact), "--redis", server.url,
                             "--set", "http.port=0", "--set", f"indications.endpoint={ind}",
                             "--set", f"frames.endpoint=ipc://{tmp_path}/frames.sock", "--set", "drain_s=1"],
                            stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(proc.stderr.readline())
        assert ready["msg"] == "ready", ready
        server.kill()                                         # Redis goes away
        ctx = zmq.Context()
        tx = ctx.socket(zmq.PUSH)
        tx.connect(ind)
        t0 = time.time_ns()
        for k in range(5):
            tx.send(codec.encode_indication("gnb1", k, t0 + k * MS, [(u, samples["csi"][u]) for u in range(4)]))
        metrics = f"http://127.0.0.1:{ready['mdc']['http_port']}/ric/v1/metrics"

        def buffered() -> bool:
            text = urllib.request.urlopen(metrics, timeout=5).read().decode()
            return "wmfm_redis_buffer_depth 20.0" in text
        assert wait_for(buffered)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 3
        lines = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]
        critical = [e for e in lines if e["crit"] == "CRITICAL"]
        assert len(critical) == 1 and critical[0]["mdc"]["lost"] == 20
        assert critical[0]["msg"].startswith("20 insights lost at shutdown")
        tx.close(linger=0)
        ctx.term()
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
