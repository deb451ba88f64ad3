"""Session fixtures shared by the packages' tests.

    twin_scenario   a small twin (150 scenes, 2 UEs per scene), generated once
    twin_cache      its 64x64 cache (the `cpu` preset's input size)
    artifact        `wmfm export --random-init --preset cpu --fp16`: the deployed model size with
                    random weights, exported in seconds; what the service's tests run on
    tiny            `wmfm experiment --preset tiny` (a trained model and its corpus, ~2.5 min):
                    only for the tests that compare scores (marked slow)
    tiny_artifact   the tiny model exported (slow tests only)
    run_xapp        an in-process xApp (its loop on a thread) on loopback endpoints
    ctrl_c          ctrl_c(seconds): a context in which Ctrl-C reaches the main thread after that long
"""

import dataclasses as dc
import json
import os
import threading

import pytest
from wmfm.sim.twin.generate import generate
from wmfm.sim.twin.params import TwinConfig


@pytest.fixture(autouse=True)
def _no_dbaas(monkeypatch):
    """`redis.url` is `auto` by default: on a host whose environment names a RIC's dbaas, the tests'
    xApps must still write to their own servers."""
    for k in [k for k in os.environ if k.startswith("DBAAS_")]:
        monkeypatch.delenv(k)


@pytest.fixture(scope="session")
def twin_scenario(tmp_path_factory):
    """A small twin scenario (150 scenes, 2 connected UEs per scene: the service tests need a small,
    fixed load; tests/sim/test_twin.py covers the every-vehicle-a-UE default), generated once."""
    root = tmp_path_factory.mktemp("twin")
    cfg = TwinConfig()
    cfg = dc.replace(cfg, traffic=dc.replace(cfg.traffic, ue_policy="fixed", ues_per_scene=2),
                     camera=dc.replace(cfg.camera, resolution=(160, 120)))
    summary = generate(root, "small", 150, seed=3, cfg=cfg, progress=False)
    return root / "small", summary


@pytest.fixture(scope="session")
def twin_cache(twin_scenario, tmp_path_factory):
    """The session twin as a 64x64 cache (0.5 s guards: 150 scenes are short)."""
    from wmfm.sim.dataset import build
    out = tmp_path_factory.mktemp("cache") / "cache"
    build(twin_scenario[0], out, image_size=(64, 64), progress=False, guard_s=0.5)
    return out


@pytest.fixture(scope="session")
def artifact(tmp_path_factory):
    """The `cpu` preset's shapes with random weights, exported with FP16 encoders, once per session."""
    from wmfm.cli import main
    out = tmp_path_factory.mktemp("artifact") / "cpu-random"
    assert main(["export", "--random-init", "--preset", "cpu", "--fp16", "--samples", "64", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """`wmfm experiment --preset tiny` once per session: (output folder, report dict)."""
    from wmfm.cli import main
    out = tmp_path_factory.mktemp("exp") / "tiny"
    assert main(["experiment", "--preset", "tiny", "--out", str(out), "--quiet"]) == 0
    return out, json.loads((out / "report.json").read_text())


@pytest.fixture(scope="session")
def tiny_artifact(tiny, tmp_path_factory):
    """The tiny model exported with `wmfm export` (ONNX + manifest), once per session."""
    from wmfm.cli import main
    out = tmp_path_factory.mktemp("artifact") / "tiny"
    assert main(["export", "--checkpoint", str(tiny[0] / "model.pt"), "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_xapp(artifact):
    """run_xapp(*overrides, redis=URL, artifact=PATH) -> a started XApp whose loop runs in a thread
    (default artifact: the random-weight `cpu` one); stopped after the test."""
    apps = []

    def start(*overrides, redis=None, artifact=artifact):
        from wmfm.xapp.app import XApp
        from wmfm.xapp.controls import load as load_config
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


@pytest.fixture
def ctrl_c():
    """ctrl_c(delay) -> a context manager: KeyboardInterrupt in the main thread after ``delay``
    seconds, as a terminal's Ctrl-C. SIGINT gets Python's default handler meanwhile (a process
    started in the background by a shell without job control inherits SIGINT ignored, and then
    a simulated Ctrl-C does nothing). Python drops an exception raised inside a destructor or a
    weakref/GC callback and hands it to sys.unraisablehook; a Ctrl-C lost that way is sent again,
    as a user would press it again."""
    import _thread
    import contextlib
    import signal
    import sys

    @contextlib.contextmanager
    def after(delay: float):
        previous, previous_sigint = sys.unraisablehook, signal.signal(signal.SIGINT, signal.default_int_handler)

        def hook(unraisable):
            if unraisable.exc_type is KeyboardInterrupt:
                _thread.interrupt_main()
            else:
                previous(unraisable)
        sys.unraisablehook = hook
        timer = threading.Timer(delay, _thread.interrupt_main)
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            sys.unraisablehook = previous
            signal.signal(signal.SIGINT, previous_sigint)
    return after
