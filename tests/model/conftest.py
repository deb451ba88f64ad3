import pytest


@pytest.fixture(scope="session")
def twin_cache(twin_scenario, tmp_path_factory):
    """The session twin (150 scenes, 2 UEs per frame) as a 32x32 cache."""
    from wmfm.sim.dataset import build
    out = tmp_path_factory.mktemp("model") / "cache"
    build(twin_scenario[0], out, image_size=(32, 32), progress=False, guard_s=0.5)
    return out
