"""Pairing CSI with camera frames by time, and indication sequence-number tracking.

FrameSync keeps, per camera, a ring of recent frames and the reports waiting for a frame. A CSI
report pairs with the frame nearest in time within `max_skew_ms`:
- decided at once when a frame at or after the CSI time is already there (no later frame can
  be nearer), or when the camera's frame period says the next frame would be farther than the
  newest one, or would arrive only after the deadline (waiting could not help);
- otherwise the report waits for a later frame, at most `deadline_ms` after it arrived, and then
  takes the best frame within the skew, or none (mode csi_only);
- a camera that has sent nothing for a while (stalled) does not make reports wait at all;
- a UE's reports leave in the order they came: while one waits, the UE's later reports are held
  behind it and decided after it, so the insight stream keeps each UE's order.

SNTracker follows the 16-bit RIC indication SN per stream (E2 node + subscription):
gaps (lost indications), duplicates (dropped) and out-of-order arrivals (kept, counted).

Both count what they decide in the app's metrics when given them: `wmfm_sync_total` by result,
the `sync_wait` stage and `wmfm_sync_waiting`; `wmfm_sn_events_total` and `wmfm_sn_missing_total`.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from .controls import SyncConfig
from .records import CSIReport, Frame, Pairing

SN_MOD = 1 << 16
STALL_MIN_NS = 1_000_000_000
PERIOD_OF = 16                  # frames the camera's period is estimated from


class _Seen:
    """The last `size` SNs of a stream: a deque for order, a set for O(1) lookups."""

    def __init__(self, size: int):
        self.order: deque[int] = deque()
        self.set: set[int] = set()
        self.size = size

    def add(self, sn: int) -> None:
        self.order.append(sn)
        self.set.add(sn)
        if len(self.order) > self.size:
            self.set.discard(self.order.popleft())


class SNTracker:
    """Per stream: gaps ahead, duplicates, late (out-of-order) arrivals up to `window` behind; an SN
    further behind than that is a restarted sender (a new sequence), not a 30000-deep reordering.

    `expect_gaps`: the senders spread one stream over several instances (round-robin), so the SNs
    this one sees skip by design; gaps are then not counted (loss shows end to end)."""

    def __init__(self, window: int = 1024, max_streams: int = 100_000, metrics=None, expect_gaps: bool = False):
        self.last: dict[tuple, int] = {}
        self.seen: dict[tuple, _Seen] = {}
        self.window, self.max_streams = window, max_streams
        self.metrics, self.expect_gaps = metrics, expect_gaps

    def accept(self, stream: tuple, sn: int) -> bool:
        """Observe and count; False for a duplicate (to be dropped)."""
        event, missing = self.observe(stream, sn)
        if event == "gap" and self.expect_gaps:
            return True
        if event != "ok" and self.metrics is not None:
            self.metrics.sn.labels(event).inc()
            self.metrics.sn_missing.inc(missing)
        return event != "duplicate"

    def observe(self, stream: tuple, sn: int) -> tuple[str, int]:
        """("ok" | "gap" | "duplicate" | "out_of_order" | "reset", number of SNs skipped)."""
        last = self.last.get(stream)
        if last is None or stream not in self.seen:
            if len(self.last) >= self.max_streams:            # bounded memory: forget everything
                self.last.clear()
                self.seen.clear()
            self.last[stream] = sn
            self.seen[stream] = _Seen(self.window)
            self.seen[stream].add(sn)
            return "ok", 0
        seen = self.seen[stream]
        d = (sn - last) % SN_MOD
        if d == 0 or sn in seen.set:
            return "duplicate", 0
        if d < SN_MOD // 2:                                   # ahead of the last one (with wrap)
            seen.add(sn)
            self.last[stream] = sn
            return ("gap", d - 1) if d > 1 else ("ok", 0)
        if SN_MOD - d <= self.window:                         # a little behind: late
            seen.add(sn)
            return "out_of_order", 0
        self.seen[stream] = _Seen(self.window)                # far behind: the sender restarted
        self.seen[stream].add(sn)
        self.last[stream] = sn
        return "reset", 0


class _Camera:
    def __init__(self, size: int, start_ns: int):
        self.frames: deque[Frame] = deque(maxlen=size)
        self.pending: deque[CSIReport] = deque()
        self.last_received_ns = start_ns          # a camera gets the same grace at start as after a frame
        self.period: float | None = None          # frame period [ns], median of the last PERIOD_OF frames
        self.latest_report_ns = 0                 # the newest CSI time seen here: later reports come after it

    def add(self, frame: Frame) -> None:
        if self.frames and frame.t_ns < self.frames[-1].t_ns:
            self.frames = deque(sorted([*self.frames, frame], key=lambda f: f.t_ns), maxlen=self.frames.maxlen)
        else:
            self.frames.append(frame)
        t = [f.t_ns for f in list(self.frames)[-PERIOD_OF:]]      # Python ints: no int64 overflow
        d = [b - a for a, b in zip(t, t[1:]) if b > a]
        self.period = float(np.median(d)) if d else None

    def nearest(self, t_ns: int, skew_ns: int) -> Frame | None:
        """The frame nearest to t_ns within the skew; the ring is in time order, so the scan starts at
        the newest (where reports look) and stops once the frames are older than the window."""
        best, best_d = None, None
        for f in reversed(self.frames):
            if f.t_ns < t_ns - skew_ns:
                break
            d = abs(f.t_ns - t_ns)
            if d <= skew_ns and (best_d is None or d < best_d):
                best, best_d = f, d
        return best


def _ue(r: CSIReport) -> tuple[str, int]:
    return r.ran_name, r.ue_id


class FrameSync:
    def __init__(self, cfg: SyncConfig, cameras: list[str], start_ns: int | None = None, metrics=None):
        self.skew_ns = int(cfg.max_skew_ms * 1e6)
        self.deadline_ns = int(cfg.deadline_ms * 1e6)
        start = time.time_ns() if start_ns is None else start_ns
        self.cams = {c: _Camera(cfg.frames_per_camera, start) for c in cameras}
        self.metrics = metrics
        self.lock = threading.Lock()        # the waiting lists: the loop changes them, the frame worker reads them
        self.waiting_ue: dict[tuple[str, int], CSIReport] = {}     # (RAN, UE) -> its report waiting for a frame
        self.held: dict[tuple[str, int], deque] = {}                # (RAN, UE) -> its later (report, camera_id)s

    def _decided(self, pairs: list[Pairing], now_ns: int, waited: bool = True) -> list[Pairing]:
        """Count the pairings decided now (result, time the report waited) and, when they came off
        the waiting lists (`waited`), the reports left waiting."""
        if self.metrics is not None:
            for p in pairs:
                self.metrics.sync.labels("fused" if p.frame is not None else "csi_only").inc()
                self.metrics.stage.labels("sync_wait").observe(max(0, now_ns - p.report.received_ns) / 1e9)
            if waited:
                self.metrics.waiting.set(self.pending())
        return pairs

    def add_frame(self, frame: Frame, now_ns: int | None = None) -> list[Pairing]:
        """Store the frame; returns the waiting reports it settles (decided at ``now_ns``, default
        the frame's arrival)."""
        cam = self.cams[frame.camera_id]
        cam.add(frame)
        cam.last_received_ns = max(cam.last_received_ns, frame.received_ns)
        out, keep = [], deque()
        with self.lock:
            for r in cam.pending:
                if frame.t_ns >= r.t_ns:               # no later frame can be nearer
                    out.append(Pairing(r, cam.nearest(r.t_ns, self.skew_ns)))
                else:
                    keep.append(r)
            cam.pending = keep
        now = frame.received_ns if now_ns is None else now_ns
        return self._then_held(self._decided(out, now), now)

    def _stalled(self, cam: _Camera, now_ns: int) -> bool:
        """Nothing for 5 frame periods (at least 1 s: a 2 fps camera is not stalled between frames)."""
        period = cam.period or 1e8
        return now_ns - cam.last_received_ns > max(5 * period, self.skew_ns + self.deadline_ns, STALL_MIN_NS)

    def add_report(self, report: CSIReport, camera_id: str | None, now_ns: int) -> list[Pairing]:
        """The pairings decided now: this report's, when it can be decided now (else it waits; see
        `expire`). While an earlier report of the UE waits, this one is held behind it and comes out,
        in order, when that one is decided."""
        cam = self.cams.get(camera_id) if camera_id is not None else None
        if cam is not None and report.t_ns > cam.latest_report_ns:
            cam.latest_report_ns = report.t_ns
        ue = _ue(report)
        if ue in self.waiting_ue:
            self.held.setdefault(ue, deque()).append((report, camera_id))
            if self.metrics is not None:
                self.metrics.waiting.set(self.pending())
            return []
        out = self._place(report, cam, now_ns, waited=False)
        if not out and self.metrics is not None:
            self.metrics.waiting.set(self.pending())
        return out

    def _place(self, report: CSIReport, cam: _Camera | None, now_ns: int, waited: bool) -> list[Pairing]:
        """[its pairing] when the report can be decided now (a held one also when its deadline has
        passed meanwhile), else [] and it waits for a frame."""
        if (waited and now_ns - report.received_ns >= self.deadline_ns) or self._decide_now(report, cam, now_ns):
            return self._decided([Pairing(report, cam.nearest(report.t_ns, self.skew_ns) if cam else None)],
                                 now_ns, waited=waited)
        with self.lock:                         # in deadline order (a held report may have arrived earlier)
            i = len(cam.pending)
            while i and cam.pending[i - 1].received_ns > report.received_ns:
                i -= 1
            cam.pending.insert(i, report)
        self.waiting_ue[_ue(report)] = report
        return []

    def _then_held(self, decided: list[Pairing], now_ns: int) -> list[Pairing]:
        """`decided`, each followed by the reports of its UE that were held behind it and can go now
        (the first that must wait for a frame stops its UE's queue again)."""
        out = []
        for p in decided:
            out.append(p)
            ue = _ue(p.report)
            if self.waiting_ue.get(ue) is p.report:
                del self.waiting_ue[ue]
            queue = self.held.get(ue)
            while queue and ue not in self.waiting_ue:
                r, camera_id = queue.popleft()
                out += self._place(r, self.cams.get(camera_id) if camera_id is not None else None, now_ns,
                                   waited=True)
            if queue is not None and not queue:
                del self.held[ue]
        return out

    def _decide_now(self, report: CSIReport, cam: _Camera | None, now_ns: int) -> bool:
        if cam is None or self.deadline_ns == 0 or self._stalled(cam, now_ns):
            return True
        if cam.frames:
            newest = cam.frames[-1]
            period = cam.period
            if newest.t_ns >= report.t_ns:                          # no later frame can be nearer
                return True
            if period is not None:
                farther = newest.t_ns + period - report.t_ns >= report.t_ns - newest.t_ns
                too_late = cam.last_received_ns + period - now_ns > self.deadline_ns
                if farther or too_late:         # the next frame would be farther, or arrive after the deadline
                    return True
        return False

    def start_clock(self, now_ns: int) -> None:
        """Start every camera's grace period now (the loop starts; frames can only come from here on)."""
        for cam in self.cams.values():
            cam.last_received_ns = max(cam.last_received_ns, now_ns)

    def expire(self, now_ns: int) -> list[Pairing]:
        """Reports whose deadline has passed: paired with the best frame within the skew, or none."""
        out = []
        with self.lock:
            for cam in self.cams.values():
                while cam.pending and now_ns - cam.pending[0].received_ns >= self.deadline_ns:
                    r = cam.pending.popleft()
                    out.append(Pairing(r, cam.nearest(r.t_ns, self.skew_ns)))
        return self._then_held(self._decided(out, now_ns), now_ns) if out else out

    def needs(self, camera_id: str, t_ns: int, newer_ns: int) -> bool:
        """Whether a report could still pair with a frame captured at `t_ns` rather than with the newer
        one at `newer_ns` (the frame worker asks before dropping the older unread): a report waiting
        for the camera that is nearer to it, or one still to come (reports of a cell arrive in time
        order: a later one is at or after the newest seen, and is nearer to `t_ns` only before the
        midpoint)."""
        cam = self.cams.get(camera_id)
        if cam is None:
            return False
        mid = (t_ns + newer_ns) // 2
        if cam.latest_report_ns < mid:
            return True
        with self.lock:
            return any(r.t_ns < mid and abs(r.t_ns - t_ns) <= self.skew_ns for r in cam.pending)

    def next_deadline_ns(self) -> int | None:
        ts = [c.pending[0].received_ns + self.deadline_ns for c in self.cams.values() if c.pending]
        return min(ts) if ts else None

    def pending(self) -> int:
        """Reports waiting for a frame, and those held behind them."""
        return sum(len(c.pending) for c in self.cams.values()) + sum(len(q) for q in self.held.values())

    def flush(self) -> list[Pairing]:
        """Every waiting report, now (drain at shutdown)."""
        out = []
        with self.lock:
            for cam in self.cams.values():
                out += [Pairing(r, cam.nearest(r.t_ns, self.skew_ns)) for r in cam.pending]
                cam.pending.clear()
            for queue in self.held.values():            # after their UE's waiting report: in order
                for r, camera_id in queue:
                    cam = self.cams.get(camera_id) if camera_id is not None else None
                    out.append(Pairing(r, cam.nearest(r.t_ns, self.skew_ns) if cam else None))
            self.waiting_ue.clear()
            self.held.clear()
        return self._decided(out, time.time_ns())
