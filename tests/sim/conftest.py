import dataclasses as dc
import json

import pytest
from wmfm.sim.recording import load
from wmfm.sim.twin.params import TwinConfig


@pytest.fixture(scope="session")
def replay_twin(tmp_path_factory):
    """A twin to replay (300 frames 0.5 s apart, 2 connected UEs each) and its cache (which cuts
    the split), no training: (scenario, cache)."""
    from wmfm.sim.dataset import build
    from wmfm.sim.twin.generate import generate
    root = tmp_path_factory.mktemp("replay")
    base = TwinConfig()
    cfg = dc.replace(base, scene_period_s=0.5, traffic=dc.replace(base.traffic, ue_policy="fixed", ues_per_scene=2))
    generate(root, "twin", 300, seed=1, cfg=cfg, progress=False)
    build(root / "twin", root / "cache", image_size=(64, 64), progress=False)
    return root / "twin", root / "cache"


@pytest.fixture(scope="session")
def recording(replay_twin):
    """The replay twin's test split, as the replay plays it."""
    return load(replay_twin[0], "test", replay_twin[1], progress=False)


@pytest.fixture(scope="session")
def cameras(recording) -> str:
    """The `cameras` control (an xApp override) for the recording's camera, its frame size checked."""
    return f"cameras={json.dumps(recording.cameras_control())}"
