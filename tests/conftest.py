import dataclasses as dc
import json
import threading

import pytest
from wmfm.sim.twin.config import TwinConfig
from wmfm.sim.twin.generate import generate


@pytest.fixture(scope="session")
def twin_scenario(tmp_path_factory):
    """A small twin scenario (150 scenes, 2 UEs per scene), generated once per session."""
    root = tmp_path_factory.mktemp("twin")
    cfg = TwinConfig()
    cfg = dc.replace(cfg, traffic=dc.replace(cfg.traffic, ues_per_scene=2),
                     camera=dc.replace(cfg.camera, resolution=(160, 120)))
    summary = generate(root, "small", 150, seed=3, cfg=cfg, progress=False)
    return root / "small", summary


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """`wmfm experiment --preset tiny` once per session: (output folder, report dict)."""
    from wmfm.cli import main
    out = tmp_path_factory.mktemp("exp") / "tiny"
    assert main(["experiment", "--preset", "tiny", "--out", str(out), "--quiet"]) == 0
    return out, json.loads((out / "report.json").read_text())


@pytest.fixture(scope="session")
def artifact(tiny, tmp_path_factory):
    """The tiny model exported with `wmfm export --fp16` (ONNX + manifest), once per session."""
    from wmfm.cli import main
    out = tmp_path_factory.mktemp("artifact") / "wmfm"
    assert main(["export", "--checkpoint", str(tiny[0] / "model.pt"), "--out", str(out), "--fp16"]) == 0
    return out


@pytest.fixture
def run_xapp(artifact):
    """run_xapp(*overrides, redis=URL) -> a started XApp whose loop runs in a thread; stopped after the test."""
    apps = []

    def start(*overrides, redis=None):
        from wmfm.xapp.app import XApp
        from wmfm.xapp.config import load as load_config
        cfg = load_config(None, [f"artifact={artifact}", "indications.endpoint=tcp://127.0.0.1:*",
                                 "frames.endpoint=tcp://127.0.0.1:*", "http.port=0", "http.host=127.0.0.1",
                                 *overrides], env={})
        app = XApp(cfg, redis_url=redis).start()
        th = threading.Thread(target=app.run, daemon=True)
        th.start()
        apps.append((app, th))
        return app

    yield start
    for app, th in apps:
        app.stop()
        th.join(timeout=30)
