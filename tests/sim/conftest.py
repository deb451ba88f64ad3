import pytest
from wmfm.sim import replay


@pytest.fixture(scope="module")
def recording(tiny):
    """The tiny experiment's twin, test split, as the replay plays it."""
    out = tiny[0]
    return replay.load(out / "data" / "twin", "test", out / "data" / "cache", progress=False)


@pytest.fixture(scope="module")
def cameras(recording) -> str:
    """The `cameras` control (an xApp override) for the recording's camera, its frame size checked."""
    w, h = recording.scenes[0].size
    return f'cameras={{"{recording.camera_id}": {{"cells": [], "width": {w}, "height": {h}}}}}'
