"""The replay simulator against a real xApp (in-process loop, real ZeroMQ sockets, real embedded
redis-server, ONNX Runtime): the realism knobs, the bounds, the scores, and its command line."""

import json
import time

import numpy as np
import pytest
from wmfm.sim import probe
from wmfm.sim.player import ReplayConfig
from wmfm.sim.recording import load
from wmfm.sim.replay import replay
from wmfm.xapp.redis_server import EmbeddedRedis

from wmfm.cache import load as load_cache
from wmfm.cli import main
from wmfm.scoring import evaluate

# Speed 10: the twin's 0.5 s scenes every 50 ms. A 10 ms skew pairs a report only with its own
# scene's frame; a 40 ms deadline lets it wait for that frame while the worker decodes it.
STRICT = ("sync.max_skew_ms=10", "sync.deadline_ms=40")


def cameras_override(rec) -> str:
    return f"cameras={json.dumps(rec.cameras_control())}"


def _run(app, rec, tmp_path=None, **kw):
    cfg = ReplayConfig(**{"speed": 10.0, "settle_s": 3.0, **kw})
    metrics = f"http://127.0.0.1:{app.status.port}/ric/v1/metrics"
    return replay(rec, app.endpoints["indications"], app.endpoints["frames"], app.redis_url, cfg,
                  metrics_url=metrics, out=tmp_path, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("encoding", ["protobuf", "e2ap"])
def test_replay_scores_equal_the_offline_evaluation_of_the_same_artifact(run_xapp, tiny, tiny_artifact, tmp_path,
                                                                         encoding):
    """Through either indication encoding (the RICIndication protobuf envelope, E2AP PDUs): the same scores."""
    rec = load(tiny[0] / "data" / "twin", "test", tiny[0] / "data" / "cache", progress=False)
    app = run_xapp(cameras_override(rec), *STRICT, f"indications.encoding={encoding}", artifact=tiny_artifact)
    s = _run(app, rec, tmp_path, encoding=encoding)
    assert s["sent"]["indications"] == rec.n_reports and s["lost"] == 0 and s["unexpected"] == 0
    assert s["xapp"]["sync"] == {"fused": rec.n_reports}

    # offline: the same artifact (ONNX Runtime) on the cache's test samples, in one batch
    from wmfm.xapp import inference
    c = load_cache(tiny[0] / "data" / "cache", mmap=False)
    idx = np.nonzero(c["split"] == 2)[0]
    assert len(idx) == rec.n_reports
    be = inference.load("onnxruntime", tiny_artifact)
    img = c["images"][idx].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    out = be.heads(be.embed_csi(c["csi"][idx]), be.embed_image(img).tokens)
    offline = evaluate(out.los_logit, out.position, c["los"][idx], c["position"][idx])

    got = s["scores"]
    assert got["insights"] == len(idx)
    assert got["los_balanced_accuracy"] == offline["los_balanced_accuracy"]
    assert got["los_confusion"] == offline["los_confusion"]
    for k in ("loc_mean_error_m", "loc_median_error_m", "loc_p90_error_m"):   # Redis keeps positions to 0.1 mm
        assert got[k] == pytest.approx(offline[k], abs=2e-4)
    # per sample too: the same (UE, time) gets the same position
    rows = sorted(s["_rows"], key=lambda r: (r["scene"], r["ue"]))
    order = np.lexsort((c["ue"][idx], c["scene"][idx]))
    np.testing.assert_allclose([r["position_pred"] for r in rows], out.position[order], atol=1e-4)

    # the report on disk, with its pictures
    saved = json.loads((tmp_path / "replay.json").read_text())
    assert saved["scores"]["los_balanced_accuracy"] == offline["los_balanced_accuracy"]
    for name in ("latency_cdf.png", "trajectories.png", "errors_over_time.png", "insights.csv"):
        assert (tmp_path / name).stat().st_size > 1000
    assert {"decode", "infer", "redis", "sync_wait", "queue"} <= set(saved["xapp"]["stages"])


def test_drops_and_reordering_show_in_the_xapps_sn_counters(run_xapp, cameras, recording):
    app = run_xapp(cameras, *STRICT)
    s = _run(app, recording, drop=0.15, reorder=0.1, seed=4)
    sent, x = s["sent"], s["xapp"]
    assert sent["dropped"] > 5 and sent["reordered"] > 3
    assert sent["indications"] + sent["dropped"] == recording.n_reports
    assert s["lost"] == 0 and s["received"] == sent["indications"]            # late is not lost
    assert x["sn_events"].get("out_of_order", 0) == sent["reordered"]
    # a gap opens for every dropped SN that a later one reveals, and (first) for every overtaken one
    last_sn = max(r["sn"] for r in s["_rows"])
    hidden = recording.n_reports - 1 - last_sn                                 # dropped after the last one sent
    assert x["sn_missing"] == sent["dropped"] - hidden + sent["reordered"]


def test_a_camera_outage_gives_csi_only_insights_exactly_inside_the_window(run_xapp, cameras, recording):
    app = run_xapp(cameras, *STRICT)
    # 0.4 s: shorter than the 1 s after which the xApp calls a camera stalled (and stops waiting)
    s = _run(app, recording, outages=((1.0, 1.4),))
    rows = s["_rows"]
    inside = [r for r in rows if 1.0 <= r["t_replay_s"] < 1.4]
    assert s["sent"]["frames_in_outage"] >= 6 and len(inside) >= 12
    assert all(r["mode"] == "csi_only" for r in inside)
    assert all(r["mode"] == "fused" for r in rows if not 1.0 <= r["t_replay_s"] < 1.4)
    assert s["xapp"]["sync"] == {"csi_only": len(inside), "fused": len(rows) - len(inside)}
    assert s["xapp"]["frames"] == s["sent"]["frames"] == len(recording.scenes) - s["sent"]["frames_in_outage"]


def test_the_replay_stops_by_itself_within_its_bounds(run_xapp, cameras, recording):
    app = run_xapp(cameras)
    t0 = time.monotonic()
    s = _run(app, recording, loop=True, count=7, settle_s=1.0)
    assert s["sent"]["indications"] == 7 and s["received"] == 7
    s = _run(app, recording, loop=True, duration_s=1.5, speed=50.0, settle_s=1.0)
    assert s["send_s"] < 2.0 and s["sent"]["indications"] > recording.n_reports     # it looped
    assert s["lost"] == 0
    s = _run(app, recording, max_rate=True, count=60, settle_s=1.0)            # as fast as the xApp takes them
    assert s["sent"]["indications"] == 60 and s["received"] == 60
    assert {"decode", "infer", "redis"} <= set(s["xapp"]["stages"]) and s["xapp"]["stages"]["infer"]["count"] > 0
    assert "inference (batch)" in probe.stage_table(s["xapp"])
    assert time.monotonic() - t0 < 20


def test_bundled_indications_carry_every_ue_of_a_scene(run_xapp, cameras, recording):
    app = run_xapp(cameras, *STRICT)
    s = _run(app, recording, bundle=True, count=30)
    per_scene = {sc.scene: len(sc.ue_id) for sc in recording.scenes}
    assert s["sent"]["reports"] == 30 == s["received"] and s["lost"] == 0
    assert s["sent"]["indications"] == len({r["scene"] for r in s["_rows"]}) < 30
    assert s["xapp"]["indications"] == s["sent"]["indications"]
    for r in s["_rows"]:                                # the UEs of one indication share its SN
        same = [q for q in s["_rows"] if q["scene"] == r["scene"]]
        assert {q["sn"] for q in same} == {r["sn"]} and len(same) <= per_scene[r["scene"]]


def test_an_e2ap_replay_reaches_an_e2ap_xapp(run_xapp, cameras, recording):
    app = run_xapp(cameras, *STRICT, "indications.encoding=e2ap")
    s = _run(app, recording, bundle=True, count=30, encoding="e2ap")
    assert s["sent"]["reports"] == 30 == s["received"] and s["lost"] == 0
    assert app.metrics.registry.get_sample_value("wmfm_indications_total", {"encoding": "e2ap", "sm": "WMFM-CSI/1.0"}) \
        == s["sent"]["indications"]


def test_noise_jitter_lag_and_clock_offset_are_applied(run_xapp, cameras, recording):
    app = run_xapp(cameras, *STRICT)
    # a camera clock 30 ms off: no frame within the 10 ms skew -> every insight is csi_only
    s = _run(app, recording, clock_offset_ms=30.0, count=20)
    assert s["xapp"]["sync"] == {"csi_only": 20}
    # noise at 0 dB SNR changes the CSI, so the positions change; jitter adds latency
    clean = _run(app, recording, count=40)
    noisy = _run(app, recording, count=40, snr_db=0.0, jitter_ms=20.0, seed=1)
    a = {(r["scene"], r["ue"]): r["position_pred"] for r in clean["_rows"]}
    b = {(r["scene"], r["ue"]): r["position_pred"] for r in noisy["_rows"]}
    assert {r["mode"] for r in clean["_rows"] + noisy["_rows"]} == {"fused"}
    assert set(a) == set(b) and np.mean([np.abs(a[k] - b[k]).max() > 1e-4 for k in a]) > 0.5
    assert noisy["scores"]["latency_ms"]["max"] > 5.0


def test_bad_knobs_and_bounds_are_refused_with_one_line(replay_twin, capsys):
    scen = str(replay_twin[0])
    for args, want in ((["--loop"], "--loop: needs --duration or --count"),
                       (["--drop", "1.5"], "argument --drop: must be in [0, 1), got 1.5"),
                       (["--outage", "5"], "--outage: expected START:END"),
                       (["--speed", "inf"], "argument --speed: must be a finite number"),
                       (["--count", "0"], "argument --count: must be >= 1, got 0")):
        assert main(["replay", "--scenario", scen, *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("wmfm replay: error: ") and want in err[0], err


def test_a_replay_into_nothing_fails_at_once_naming_the_endpoint(replay_twin, capsys):
    from wmfm.sim.spawn import free_port
    ind, frm = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    rc = main(["replay", "--scenario", str(replay_twin[0]), "--cache", str(replay_twin[1]), "--indications", ind,
               "--frames", frm, "--connect-timeout", "1", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "wmfm replay: error: no xApp answers at" in err[0], err
    assert ind in err[0] and frm in err[0] and time.monotonic() - t0 < 10


def _cli(app, replay_twin, *extra) -> list[str]:
    return ["replay", "--scenario", str(replay_twin[0]), "--cache", str(replay_twin[1]), "--speed", "10",
            "--indications", app.endpoints["indications"], "--frames", app.endpoints["frames"],
            "--settle", "1", "--quiet", *extra]


def test_the_replay_sends_the_encoding_the_xapp_takes(run_xapp, cameras, replay_twin, capsys):
    app = run_xapp(cameras, *STRICT, "indications.encoding=e2ap")
    metrics = f"http://127.0.0.1:{app.status.port}/ric/v1/metrics"
    assert main(_cli(app, replay_twin, "--metrics", metrics, "--count", "6")) == 0    # --encoding auto
    out = capsys.readouterr().out
    assert "indications as e2ap" in out and "insights 6, lost 0" in out


def test_the_replay_finds_the_xapps_redis_or_says_why_nothing_came_back(run_xapp, cameras, replay_twin, tmp_path,
                                                                        capsys):
    app = run_xapp(cameras, *STRICT)                       # its Redis: an embedded one on a private socket
    metrics = f"http://127.0.0.1:{app.status.port}/ric/v1/metrics"
    assert main(_cli(app, replay_twin, "--metrics", metrics, "--count", "6")) == 0
    out = capsys.readouterr().out
    assert f"insights read from {app.redis_url}" in out and "insights 6, lost 0" in out
    assert "indications as protobuf" in out
    other = EmbeddedRedis(tmp_path / "other").start()      # a Redis the xApp does not write to
    try:
        assert main(_cli(app, replay_twin, "--redis", other.url, "--count", "6")) == 1
        cap = capsys.readouterr()
        assert "insights 0, lost 6" in cap.out
        err = cap.err.strip().splitlines()
        assert len(err) == 1 and "no insight came back" in err[0] and "--metrics" in err[0]
    finally:
        other.close()


def test_ctrl_c_stops_the_replay_and_writes_its_partial_report(run_xapp, cameras, replay_twin, tmp_path, capsys,
                                                               ctrl_c):
    app = run_xapp(cameras, *STRICT)
    metrics = f"http://127.0.0.1:{app.status.port}/ric/v1/metrics"
    t0 = time.monotonic()
    with ctrl_c(5.0):                    # mid-replay: the scenario loads in 1-3 s, then it plays for 60 s
        rc = main(_cli(app, replay_twin, "--metrics", metrics, "--loop", "--duration", "60", "--out", str(tmp_path)))
    assert rc == 130 and time.monotonic() - t0 < 20
    # the replay's own words; the in-process xApp writes its JSON log lines to the same stderr
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("{")]
    assert err == ["wmfm replay: interrupted"]
    s = json.loads((tmp_path / "replay.json").read_text())
    assert s["interrupted"] and s["received"] > 5 and s["sent"]["reports"] >= s["received"]
    assert (tmp_path / "insights.csv").read_text().count("\n") == s["received"] + 1
