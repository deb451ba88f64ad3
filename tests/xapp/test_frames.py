"""The frame worker's conflation: per camera, a queued frame superseded by a newer one is dropped
unread unless a report may still pair with it; every drop counted per camera."""

import zmq
from test_sync import MS, rep
from wmfm.xapp.controls import SyncConfig
from wmfm.xapp.frames import FrameWorker
from wmfm.xapp.metrics import Metrics
from wmfm.xapp.records import FrameMessage
from wmfm.xapp.sync import FrameSync


def msg(cam: str, t_ms: float) -> FrameMessage:
    return FrameMessage(cam, int(t_ms), int(t_ms * MS), "jpeg", 1280, 720, b"", int(t_ms * MS))


def superseded(m: Metrics, cam: str) -> float:
    return m.frames.labels(cam, "superseded")._value.get()


def test_only_frames_that_can_still_pair_are_decoded():
    m = Metrics()
    sync = FrameSync(SyncConfig(max_skew_ms=100.0, deadline_ms=50.0), ["cam0", "cam1"], start_ns=0)
    ctx = zmq.Context()
    try:
        worker = FrameWorker(ctx, None, None, m, None, sync.needs)
        burst = [msg("cam0", 100), msg("cam1", 100), msg("cam0", 133), msg("cam0", 166), msg("cam1", 133)]
        assert worker.select(burst) == burst                      # no report seen yet: any frame may pair
        assert (superseded(m, "cam0"), superseded(m, "cam1")) == (0, 0)
        for ue, cam in ((1, "cam0"), (3, "cam1")):               # reports at 170 ms: later ones come after
            assert sync.add_report(rep(170, ue=ue), cam, 170 * MS) == []
        assert worker.select(burst) == [burst[3], burst[4]]       # the newest of each camera, in arrival order
        assert (superseded(m, "cam0"), superseded(m, "cam1")) == (2, 1)
        assert sync.add_report(rep(128, ue=2), "cam0", 171 * MS) == []   # a late report: 133 ms is its nearest
        assert worker.select(burst) == [burst[2], burst[3], burst[4]]
        assert (superseded(m, "cam0"), superseded(m, "cam1")) == (3, 2)
        assert worker.select(burst[:1]) == burst[:1]
        naive = FrameWorker(ctx, None, None, m, None, sync.needs, conflate=False)
        assert naive.select(burst) == burst
        assert (superseded(m, "cam0"), superseded(m, "cam1")) == (3, 2)
        worker.close()
        naive.close()
    finally:
        ctx.term()
