"""Frame pairing by time (nearest within skew, deadline, stalled camera) and SN tracking."""

import numpy as np
from wmfm.xapp.controls import SyncConfig
from wmfm.xapp.records import CSIReport, Frame
from wmfm.xapp.sync import FrameSync, SNTracker

MS = 1_000_000
IMG = np.zeros((4, 4, 3), np.uint8)


def rep(t_ms, received_ms=None, ue=1):
    return CSIReport("g", "00101:1", ue, 0, int(t_ms * MS), np.zeros((2, 1, 1), np.float32), None,
                     int((t_ms if received_ms is None else received_ms) * MS))


def frame(t_ms, seq, received_ms=None, cam="c"):
    return Frame(cam, seq, int(t_ms * MS), IMG, int((t_ms if received_ms is None else received_ms) * MS))


def sync(**kw):
    return FrameSync(SyncConfig(**{"max_skew_ms": 60.0, "deadline_ms": 15.0, **kw}), ["c"], start_ns=0)


def test_sn_tracker_gaps_duplicates_out_of_order_and_wrap():
    t, s = SNTracker(), ("g", 2, 1)
    assert t.observe(s, 65533) == ("ok", 0)
    assert t.observe(s, 65534) == ("ok", 0)
    assert t.observe(s, 1) == ("gap", 2)             # 65535 and 0 missing, across the wrap
    assert t.observe(s, 1) == ("duplicate", 0)
    assert t.observe(s, 65535) == ("out_of_order", 0)  # one of the missing arrives late
    assert t.observe(s, 65535) == ("duplicate", 0)
    assert t.observe(s, 2) == ("ok", 0)
    assert t.observe(("g", 2, 2), 2) == ("ok", 0)     # streams are independent
    assert t.observe(s, 30000) == ("gap", 29997)
    assert t.observe(s, 5) == ("reset", 0)             # far behind: the sender restarted, a new sequence
    assert t.observe(s, 6) == ("ok", 0)
    assert t.observe(s, 4) == ("out_of_order", 0)


def test_report_after_a_later_frame_pairs_at_once_with_the_nearest():
    s = sync()
    for i, t in enumerate((0, 100, 200)):
        s.add_frame(frame(t, i))
    p, = s.add_report(rep(130), "c", 200 * MS)
    assert p is not None and p.frame.seq == 1          # 130 is nearer 100 than 200
    p, = s.add_report(rep(170), "c", 200 * MS)
    assert p.frame.seq == 2


def test_report_waits_for_a_nearer_frame_then_settles_when_it_comes():
    s = sync()
    s.add_frame(frame(0, 0))
    assert s.add_report(rep(40), "c", 41 * MS) == []           # frame period unknown: a nearer one may come
    out = s.add_frame(frame(50, 1, received_ms=51))
    assert [p.frame.seq for p in out] == [1]


def test_known_frame_period_decides_without_waiting_when_waiting_cannot_help():
    s = sync()
    for i in range(4):
        s.add_frame(frame(i * 100, i))
    p, = s.add_report(rep(320), "c", 321 * MS)          # next frame expected at 400: farther than 300
    assert p is not None and p.frame.seq == 3
    p, = s.add_report(rep(370), "c", 371 * MS)          # 400 would be nearer, but arrives after the 15 ms deadline
    assert p is not None and p.frame is None            # (300 is 70 ms away: beyond the 60 ms skew)
    assert s.add_report(rep(392), "c", 392 * MS) == []   # 400 is nearer and due within the deadline: wait
    out = s.add_frame(frame(400, 4))
    assert [p.frame.seq for p in out] == [4]


def test_deadline_gives_the_best_frame_within_skew_or_csi_only():
    s = sync(deadline_ms=50.0)
    for i in range(3):
        s.add_frame(frame(i * 100, i, received_ms=i * 100))
    assert s.add_report(rep(260, received_ms=261), "c", 261 * MS) == []
    assert s.add_report(rep(290, received_ms=262, ue=2), "c", 262 * MS) == []
    assert s.expire(300 * MS) == []                                 # before the deadline
    out = s.expire(313 * MS)
    assert [(p.report.ue_id, p.frame.seq if p.frame else None) for p in out] == [(1, 2), (2, None)]
    # ue 1: frame 2 (t=200) is 60 ms away = within skew; ue 2: 90 ms away -> csi_only


def test_stalled_camera_does_not_make_reports_wait():
    s = sync()
    for i in range(5):
        s.add_frame(frame(i * 100, i))
    p, = s.add_report(rep(5000), "c", 5000 * MS)        # nothing for 4.6 s: stalled
    assert p is not None and p.frame is None


def test_a_camera_gets_a_grace_period_at_start_then_counts_as_stalled():
    s = sync()
    assert s.add_report(rep(100), "c", 100 * MS) == []     # no frame yet, just started: wait
    assert s.add_report(rep(900, ue=2), "c", 900 * MS) == []         # 0.9 s: still waiting
    assert s.add_report(rep(1200, ue=3), "c", 1200 * MS)[0].frame is None  # none after 1.2 s: stalled


def test_unknown_camera_or_no_camera_pairs_csi_only():
    s = sync()
    assert s.add_report(rep(10), None, 10 * MS)[0].frame is None
    assert s.add_report(rep(10), "other", 10 * MS)[0].frame is None


def test_flush_settles_everything_waiting():
    s = sync()
    s.add_frame(frame(0, 0))
    assert s.add_report(rep(20), "c", 20 * MS) == []
    assert s.pending() == 1
    out = s.flush()
    assert len(out) == 1 and out[0].frame.seq == 0 and s.pending() == 0


def test_a_frame_is_needed_by_a_nearer_waiting_report_or_by_reports_still_to_come():
    s = sync(max_skew_ms=100.0, deadline_ms=50.0)
    assert s.needs("c", 100 * MS, 133 * MS)                       # no report seen yet: any may still come
    assert s.add_report(rep(128), "c", 128 * MS) == []          # waits: no frame at or after it yet
    assert s.needs("c", 133 * MS, 166 * MS)                       # later reports (>= 128) may be nearer to 133
    assert not s.needs("c", 100 * MS, 133 * MS)                   # 128 and everything later is nearer to 133
    assert not s.needs("other", 133 * MS, 166 * MS)
    s = sync(max_skew_ms=100.0, deadline_ms=50.0)
    assert s.add_report(rep(110), "c", 110 * MS) == []
    assert s.add_report(rep(140, ue=2), "c", 140 * MS) == []   # the newest seen: 140
    assert s.needs("c", 100 * MS, 133 * MS)                       # the waiting 110 is nearer to 100
    assert not s.needs("c", 60 * MS, 100 * MS)                    # ... and nearer to 100 than to 60
    s = sync(max_skew_ms=3.0, deadline_ms=50.0)
    assert s.add_report(rep(110), "c", 110 * MS) == [] and s.add_report(rep(140, ue=2), "c", 140 * MS) == []
    assert not s.needs("c", 100 * MS, 133 * MS)                   # 10 ms from 110: outside the 3 ms skew


def test_a_ues_later_reports_are_held_behind_its_waiting_one_so_its_order_is_kept():
    """A report waiting for a nearer frame is never overtaken by the same UE's next report: that one
    is held behind it and comes out right after it, whatever decides the first (a frame, or the
    deadline)."""
    s = sync(max_skew_ms=100.0)
    s.add_frame(frame(0, 0))
    s.add_frame(frame(100, 1))                                   # period 100 ms: the next frame at 200
    assert s.add_report(rep(190, ue=1), "c", 191 * MS) == []     # 200 is nearer and due in time: it waits
    assert s.add_report(rep(191, ue=2), "c", 191 * MS) == []     # another UE waits too
    assert s.add_report(rep(195, ue=1), None, 196 * MS) == []    # decidable at once, but held behind UE 1's
    assert s.pending() == 3
    out = s.add_frame(frame(200, 2, received_ms=201))
    assert [(p.report.ue_id, p.report.t_ns // MS) for p in out] == [(1, 190), (1, 195), (2, 191)]
    assert out[0].frame.seq == 2 and out[1].frame is None and out[2].frame.seq == 2
    assert s.pending() == 0
    assert s.add_report(rep(290, ue=1), "c", 291 * MS) == []     # waits again
    assert s.add_report(rep(295, ue=1), "c", 296 * MS) == []     # held
    assert s.add_report(rep(296, ue=3), "c", 297 * MS) == []     # another UE: waits on its own
    out = s.expire(400 * MS)                                     # the deadline decides: the held one follows
    assert [(p.report.ue_id, p.report.t_ns // MS) for p in out] == [(1, 290), (1, 295), (3, 296)]
    assert s.pending() == 0
    assert s.add_report(rep(390, ue=1), "c", 391 * MS) == [] and s.add_report(rep(392, ue=1), "c", 392 * MS) == []
    assert [p.report.t_ns // MS for p in s.flush()] == [390, 392]        # the drain keeps the order too
