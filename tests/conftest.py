import dataclasses as dc

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
