"""`wmfm demo` with an artifact already trained: the xApp as a child process, its embedded
redis-server, the replay of the test trajectories, the scores, and a clean shutdown."""

import json

import numpy as np
import pytest

from wmfm.cli import main


@pytest.mark.slow
def test_demo_reuses_the_artifact_replays_the_test_split_and_shuts_down_cleanly(tiny, tiny_artifact, tmp_path,
                                                                               capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "data").symlink_to(tiny[0] / "data")
    (out / "artifact").symlink_to(tiny_artifact)
    assert main(["demo", "--out", str(out), "--speed", "10", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "(reused; delete it to retrain)" in text and "xApp exited 0" in text
    s = json.loads((out / "replay" / "replay.json").read_text())
    assert s["lost"] == 0 and s["received"] == s["sent"]["indications"] > 50
    assert s["xapp"]["insights"]["fused"] > 0.9 * s["received"]
    assert f"LoS balanced accuracy {s['scores']['los_balanced_accuracy']:.4f}" in text
    for png in s["plots"]:
        assert png in text


@pytest.mark.slow
def test_ctrl_c_stops_the_demo_and_its_xapp_and_keeps_the_partial_replay(tiny, tiny_artifact, tmp_path, capsys,
                                                                          ctrl_c):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "data").symlink_to(tiny[0] / "data")
    (out / "artifact").symlink_to(tiny_artifact)
    with ctrl_c(12.0):                                         # during the ~20 s replay
        rc = main(["demo", "--out", str(out), "--quiet"])
    assert rc == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "wmfm demo: interrupted"
    s = json.loads((out / "replay" / "replay.json").read_text())
    test_reports = int((np.load(tiny[0] / "data" / "cache" / "split.npy") == 2).sum())
    assert s["interrupted"] and 0 < s["received"] < test_reports
    log = [json.loads(line) for line in (out / "xapp.log").read_text().splitlines() if line.startswith("{")]
    assert log[-1]["msg"] == "drained"                         # the xApp was told to stop, and drained
