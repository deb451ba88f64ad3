"""The benchmarks (`wmfm bench twin|model|xapp`): figures against their baseline, JSON and PNG."""

import json

import pytest
from wmfm.sim.bench import model as bench

from wmfm.cli import main


def test_bench_twin_reports_scenes_per_second_and_the_stage_breakdown(tmp_path, capsys):
    out = tmp_path / "twin.json"
    assert main(["bench", "twin", "--scenes", "40", "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["scenes"] == 40 and rep["scenes_per_s"] > 0
    assert rep["ues_per_s"] > 0 and rep["mean_ues_per_scene"] == pytest.approx(rep["ues"] / 40, abs=0.01)
    assert set(rep["stage_ms_per_scene"]) == {"traffic", "trace", "render", "encode"}
    assert json.loads(capsys.readouterr().out) == rep


def test_bench_model_reports_every_backend_against_torch_eager(artifact, tmp_path, capsys):
    rep = bench.run(artifact, calls=30, batches=(1, 8), rounds=2, progress=False, log=lambda *_: None)
    got = {(r["backend"], r["component"], r["batch"]) for r in rep["results"]}
    for be in ("torch-eager", "onnxruntime"):
        for comp in bench.COMPONENTS:
            assert {(be, comp, 1), (be, comp, 8)} <= got
    for r in rep["results"]:
        assert 0 < r["p50_ms"] <= r["p99_ms"] and r["throughput_per_s"] > 0
        assert r["calls"] >= (30 if r["batch"] == 1 else 50)
    assert rep["speedup_vs_torch_eager"]["onnxruntime"] > 0
    out = tmp_path / "bench.json"
    assert main(["bench", "model", "--artifact", str(artifact), "--calls", "20", "--rounds", "1",
                 "--out", str(out), "--quiet", "--backends", "onnxruntime"]) == 0
    saved = json.loads(out.read_text())
    assert saved["format"] == "wmfm-bench-model/1" and set(saved["speedup_vs_torch_eager"]) == {"onnxruntime"}
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert "speed-up over torch eager" in capsys.readouterr().out


def test_bench_decode_times_every_method_on_camera_frames(artifact, tmp_path, capsys):
    out = tmp_path / "decode.json"
    assert main(["bench", "decode", "--artifact", str(artifact), "--sizes", "320x240", "1280x720", "--calls", "6",
                 "--rounds", "2", "--quiet", "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["format"] == "wmfm-bench-decode/1" and rep["model_input"] == [64, 64]
    got = {(tuple(r["size"]), r["method"]): r for r in rep["results"]}
    assert set(got) == {(s, m) for s in ((320, 240), (1280, 720))
                        for m in ("opencv-reduced", "opencv-full", "pillow-draft", "pillow-full")}
    for r in rep["results"]:
        assert r["calls"] == 6 and 0 < r["p50_ms"] <= r["p99_ms"] and r["speedup_vs_pillow_full"] > 0
        assert r["mean_abs_diff_vs_opencv_reduced"] < 3                  # the same picture by every method
    assert got[((1280, 720), "opencv-reduced")]["mean_abs_diff_vs_opencv_reduced"] == 0
    assert got[((1280, 720), "pillow-full")]["jpeg_kb"] > 40             # a camera's frame, not a flat upscale
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert "opencv-reduced" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_xapp_reports_throughput_latency_and_the_baseline_ratio(artifact, tmp_path, capsys):
    out = tmp_path / "bench_xapp.json"
    assert main(["bench", "xapp", "--artifact", str(artifact), "--rate", "80", "--duration", "2",
                 "--ues-per-frame", "4", "--cameras", "2", "--fps", "10", "--camera-size", "640x360",
                 "--also", "indications.encoding=e2ap", "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["format"] == "wmfm-bench-xapp/3" and rep["frame_size"] == [640, 360] and rep["fps"] == 10
    for k in ("throughput_per_s", "p50_ms", "p99_ms", "p999_ms", "sent", "received", "lost", "fused_share",
              "ratio_vs_baseline"):
        assert k in rep
    assert list(rep["variants"]) == ["wmfm", "wmfm indications.encoding=e2ap", "baseline"]   # the replay sent E2AP
    d = rep["decode"]
    assert d["ues"] == 4 and 0 < d["protobuf"]["p50_us"] <= d["protobuf"]["p99_us"] and d["e2ap"]["p50_us"] > 0
    assert d["e2ap"]["bytes"] > d["protobuf"]["bytes"] > 4 * 2 * 32 * 64 * 4
    for r in rep["variants"].values():
        assert r["sent"] > 100 and r["received"] + r["lost"] == r["sent"] and r["exit_code"] == 0
        assert r["indications"] * 4 == r["sent"] and r["frames_sent"] >= 30      # 4 UEs per indication; 2 x 10 fps
        assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["p999_ms"]
        assert {"decode", "frame_decode", "frame_embed", "infer", "redis"} <= set(r["xapp"]["stages"])
        fr = r["frames"]
        assert fr["received"] == r["frames_sent"] == fr["decoded"] + fr["superseded"]
        assert set(fr["by_camera"]) == {"cam0", "cam1"} and fr["worker_cpu_ms_per_decoded"] > 0
        assert 0 < r["cpu_s_per_1000_insights"] and r["fused_share"] > 0.5
    assert rep["lost"] == 0 and rep["received"] == rep["sent"]
    assert rep["variants"]["baseline"]["overrides"][-2:] == ["batch.reuse_frames=false", "frame_worker.conflate=false"]
    assert rep["variants"]["baseline"]["frames"]["superseded"] == 0
    assert out.with_suffix(".png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "throughput ratio vs baseline" in printed and "decode per indication of 4 UEs" in printed


def test_bench_queue_fills_a_socket_until_zeromq_blocks_the_senders(tmp_path, monkeypatch, capsys):
    from wmfm.sim.bench import queue
    monkeypatch.setattr(queue, "SETTINGS", {"small": queue.SETTINGS["small"],
                                            "rcvhwm only": {"rcvhwm": 10000, "max_message_bytes": 1 << 20,
                                                            "queue_bytes": 64 << 30}})
    out = tmp_path / "queue.json"
    assert main(["bench", "queue", "--senders", "1", "2", "--cap", "40", "--out", str(out)]) == 0
    rows = {(r["setting"], r["senders"]): r for r in json.loads(out.read_text())["rows"]}
    assert out.with_suffix(".png").is_file() and len(rows) == 4
    for s in (1, 2):
        small, unbounded = rows["small", s], rows["rcvhwm only", s]
        assert small["hwm"] == 8 and small["blocked"] and small["bound_mib"] == s * 9 * 2
        assert unbounded["hwm"] == 10000 and not unbounded["blocked"] and unbounded["sent"] == [40] * s
        assert 8 < sum(small["sent"]) < 40 * s


@pytest.mark.slow
def test_bench_soak_samples_memory_and_latency_every_interval(artifact, tmp_path, capsys):
    out = tmp_path / "soak.json"
    assert main(["bench", "soak", "--artifact", str(artifact), "--rate", "200", "--duration", "12",
                 "--interval", "2", "--warmup", "4", "--camera-size", "320x240", "--quiet", "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert out.with_suffix(".png").is_file() and rep["xapp_exit_code"] == 0
    assert rep["lost"] == 0 and rep["received"] == rep["sent"] > 2000
    assert len(rep["samples"]) >= 6 and all(s["rss_mib"] > 50 for s in rep["samples"])
    assert len(rep["intervals"]) >= 5 and all(i["p99_ms"] >= i["p50_ms"] > 0 for i in rep["intervals"])
    assert rep["memory"]["slope_mib_per_h"] is not None and "xApp memory:" in capsys.readouterr().out
