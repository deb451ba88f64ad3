"""The player: a Recording sent into the xApp(s) as the RAN and the cameras would send it.

    for each scene in time order: its camera frame (a CameraFrame with the scene time as the
    capture time), then its UE reports (RIC indications of the CSI service model, the scene time
    as the collection time): one indication per UE, or per cell with all its UEs (`bundle`)
        -> realism knobs (CSI noise, jitter, drop, reorder, camera lag/outage, clock offset)
        -> ZeroMQ PUSH to the xApp(s) (or bound PUSH/PUB the xApps connect to)

Pacing: real time x `speed` (scene times map onto the wall clock; gaps between the selected
time blocks are shortened to one scene period), or `max_rate` (as fast as the xApp takes
them: PUSH back-pressure). Bounded by `duration_s` and `count`; `loop` repeats the scenes.

Several xApp instances (horizontal scaling): give several indication endpoints and the
indications are spread over them by ZeroMQ PUSH round-robin (`route="round_robin"`), or, with
as many cells as endpoints, cell i's indications go to endpoint i (`route="cell"`, as an E2
termination routes each subscription to the instance that made it). The UEs are spread over
the cells (UE id mod the number of cells) unless the scene names its cell; each cell is its own
E2 subscription (SN sequence). Every camera frame goes to every frame endpoint. Or `bind`: the
player binds (a PUSH dealing the indications out over the xApps that connect to it, a PUB
giving each every frame) and waits for `peers` xApps, as an E2 termination and a camera gateway
would serve replicas that come and go. Connecting, it waits until every endpoint has answered,
so that a replay into nothing fails at once with the endpoint's name.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from wmfm.config import ConfigError, check_cell

from .recording import Recording, Scene
from .scorer import RAN_NAME, Truth

ROUTES = ("round_robin", "cell")
SPIN_S = 0.002


@dataclass(frozen=True)
class ReplayConfig:
    speed: float = 1.0                     # real time x speed (unless max_rate)
    max_rate: bool = False                 # as fast as the xApp takes them (PUSH back-pressure)
    loop: bool = False                     # play the scenes again and again (soak); needs a bound
    duration_s: float | None = None        # stop sending after this many seconds
    count: int | None = None               # stop after this many UE reports (dropped ones count)
    bundle: bool = False                   # one indication per scene and cell with all its UEs (else one per UE)
    snr_db: float | None = None            # CSI estimation noise at this SNR (per UE, vs its mean power)
    jitter_ms: float = 0.0                 # extra network delay per message, uniform in [0, jitter]
    drop: float = 0.0                      # probability that an indication is lost on the way
    reorder: float = 0.0                   # probability that an indication is overtaken by the next one
    camera_lag_ms: float = 0.0             # frames are sent this long after their capture time
    outages: tuple[tuple[float, float], ...] = ()   # camera sends nothing in [start, end) s of replay time
    clock_offset_ms: float = 0.0           # camera clock - RAN clock (capture times are shifted by this)
    seed: int = 0                          # noise, drops, reordering, jitter
    ran_name: str = RAN_NAME
    cells: tuple[str, ...] = ("00101:1",)  # "<plmn>:<nr_cell_id>" of the indications; UE id mod n picks one
    route: str = "round_robin"             # several indication endpoints: round_robin, or cell (cell i -> i)
    bind: bool = False                     # the replay binds (PUSH for indications, PUB for frames), the xApps
                                           # connect (indications.mode=connect, frames.pattern=sub), as to an
                                           # E2 termination and a camera gateway
    peers: int = 1                         # bind: wait for this many xApps before sending
    connect_timeout_s: float = 10.0        # connect: every endpoint must answer within this; bind: the peers
    instance_id: int | None = None         # RIC instance id: each replay is a new E2 subscription (SNs
                                           # restart at 0); None: a random one per run
    settle_s: float = 3.0                  # after the last send: wait this long for missing insights
    encoding: str = "protobuf"             # indications as the RICIndication protobuf envelope, or as E2AP
                                           # RICindication PDUs (APER, E2SM-WMFM-CSI): indications.encoding

    def validate(self) -> None:
        def bad(name: str, why: str):
            raise ConfigError(f"--{name.replace('_', '-')}: {why}")

        def finite(name: str) -> float | None:
            v = getattr(self, name)
            if v is not None and not math.isfinite(v):
                bad(name, f"must be a finite number, got {v}")
            return v
        for name in ("speed", "duration_s", "snr_db", "jitter_ms", "drop", "reorder", "camera_lag_ms",
                     "clock_offset_ms", "settle_s", "connect_timeout_s"):
            finite(name)
        if not self.speed > 0:
            bad("speed", f"must be > 0, got {self.speed}")
        if self.loop and self.duration_s is None and self.count is None:
            bad("loop", "needs --duration or --count (a bound)")
        if self.duration_s is not None and not self.duration_s > 0:
            bad("duration", f"must be > 0, got {self.duration_s}")
        if self.count is not None and self.count < 1:
            bad("count", f"must be >= 1, got {self.count}")
        for name in ("drop", "reorder"):
            if not 0 <= getattr(self, name) < 1:
                bad(name, f"must be in [0, 1), got {getattr(self, name)}")
        for name in ("jitter_ms", "camera_lag_ms", "settle_s"):
            if not getattr(self, name) >= 0:
                bad(name, f"must be >= 0, got {getattr(self, name)}")
        if not self.connect_timeout_s > 0:
            bad("connect_timeout", f"must be > 0, got {self.connect_timeout_s}")
        for a, b in self.outages:
            if not (math.isfinite(a) and math.isfinite(b) and 0 <= a < b):
                bad("outage", f"window {a}:{b} must have 0 <= start < end")
        if self.instance_id is not None and not 0 <= self.instance_id <= 65535:
            bad("instance_id", f"must be in 0..65535, got {self.instance_id}")
        if not self.cells or len(set(self.cells)) != len(self.cells):
            bad("cell", f"one or more distinct cells, got {list(self.cells)}")
        for c in self.cells:
            check_cell(c, "--cell")
        if self.peers < 1:
            bad("peers", f"must be >= 1, got {self.peers}")
        if self.route not in ROUTES:
            bad("route", f"expected one of {', '.join(ROUTES)}, got {self.route!r}")
        if self.encoding not in ("protobuf", "e2ap"):
            bad("encoding", f"expected protobuf or e2ap, got {self.encoding!r}")
        if self.bind and self.route == "cell" and self.peers < len(self.cells):
            bad("peers", f"--bind --route cell: one xApp per cell at least, got {self.peers} for {len(self.cells)}")


@dataclass(order=True)
class _Msg:
    due: float                                     # perf_counter seconds
    order: int
    kind: str = field(compare=False)               # "frame" | "indication"
    payload: bytes = field(compare=False)
    reorder: bool = field(compare=False, default=False)
    cell: object = field(compare=False, default=None)   # an indication's _Cell (its stream and socket)


@dataclass
class _Cell:
    """One cell of the replay's RAN: its own E2 subscription (RIC instance id, SN sequence)."""
    plmn: str
    nr_cell: int
    instance: int
    sock: object                                        # the PUSH socket its indications take
    sn: int = 0


def endpoints(spec: str | list[str]) -> list[str]:
    """"tcp://a:5560,tcp://b:5560" (or a list) -> the endpoints."""
    eps = [e.strip() for e in (spec.split(",") if isinstance(spec, str) else spec) if e.strip()]
    if not eps or any("://" not in e for e in eps):
        raise ConfigError(f"expected ZeroMQ endpoints like tcp://host:port[,tcp://...], got {spec!r}")
    return eps


class Player:
    """Sends a Recording into the xApp's endpoints, following the pacing and the realism knobs."""

    def __init__(self, rec: Recording, indications: str | list[str], frames: str | list[str], cfg: ReplayConfig,
                 scorer=None):
        import zmq
        cfg.validate()
        ind_eps, frame_eps = endpoints(indications), endpoints(frames)
        by_cell = cfg.route == "cell"
        if by_cell and len(ind_eps) != len(cfg.cells):
            raise ConfigError(f"--route cell: needs one indication endpoint per cell, got {len(ind_eps)} endpoints "
                              f"for {len(cfg.cells)} cells")
        named = set(rec.cells) - set(cfg.cells)
        if named:
            raise ConfigError(f"--cell: the recording's cells {sorted(named)} are not among {list(cfg.cells)}")
        self.rec, self.cfg, self.scorer = rec, cfg, scorer
        self.rng = np.random.default_rng(cfg.seed)
        self.ctx = zmq.Context()
        self._all: list = []                           # every socket, for close()
        try:
            # round_robin: one PUSH on every endpoint (ZeroMQ deals the messages out in turn); cell:
            # one PUSH per cell. Frames: each frame endpoint gets every frame (a PUSH each; bound: a PUB).
            self._monitors: list = []                  # connecting: (socket, its monitor, its endpoints)
            ind_socks = [self._socket(zmq.PUSH, ep) for ep in ind_eps] if by_cell else \
                [self._socket(zmq.PUSH, *ind_eps)]
            self.frm = [self._socket(zmq.XPUB if cfg.bind else zmq.PUSH, ep) for ep in frame_eps]
            if cfg.bind:
                self._wait_for_xapps(ind_socks)
            else:
                self._wait_for_endpoints()
        except BaseException:
            self.close(linger=0)
            raise
        first = cfg.instance_id if cfg.instance_id is not None else int(np.random.default_rng().integers(65536))
        self.cells = [_Cell(c.partition(":")[0], int(c.partition(":")[2]), (first + i) % 65536,
                            ind_socks[i if by_cell else 0]) for i, c in enumerate(cfg.cells)]
        self.cell_of = {c: cell for c, cell in zip(cfg.cells, self.cells)}
        self.counts = {"indications": 0, "reports": 0, "frames": 0, "dropped": 0, "reordered": 0,
                       "frames_in_outage": 0, "reports_planned": 0}
        self.stalled = False
        self._seq = itertools.count()
        self.frame_seq: dict[str, int] = {}
        self.planned = self.first_send_ns = 0

    def _socket(self, kind: int, *eps: str):
        import zmq
        s = self.ctx.socket(kind)
        s.setsockopt(zmq.SNDHWM, 64 if self.cfg.max_rate else 10_000)
        s.setsockopt(zmq.SNDTIMEO, 10_000)         # back-pressure blocks; an xApp gone for 10 s ends the run
        s.setsockopt(zmq.LINGER, 5_000)
        if kind == zmq.XPUB:
            s.setsockopt(zmq.XPUB_VERBOSE, 1)      # every subscriber's subscription reaches us (a count)
        self._all.append(s)
        if not self.cfg.bind:                      # before connecting: a local handshake is over in microseconds
            mon = s.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
            self._all.append(mon)
            self._monitors.append((s, mon, list(eps)))
        try:
            for ep in eps:
                s.bind(ep) if self.cfg.bind else s.connect(ep)
        except zmq.ZMQError as exc:
            raise ConfigError(f"cannot {'bind' if self.cfg.bind else 'connect'} {', '.join(eps)}: {exc}") from None
        return s

    def _wait_for_endpoints(self) -> None:
        """Connecting: wait until every endpoint has completed a ZeroMQ handshake (an xApp is
        there), at most `connect_timeout_s`; a PUSH with nobody at the other end would queue
        everything silently."""
        import zmq
        from zmq.utils.monitor import recv_monitor_message
        up: list[set[str]] = [set() for _ in self._monitors]
        poller = zmq.Poller()
        for _, mon, _ in self._monitors:
            poller.register(mon, zmq.POLLIN)
        end = time.monotonic() + self.cfg.connect_timeout_s
        while any(len(u) < len(eps) for u, (_, _, eps) in zip(up, self._monitors)):
            left = end - time.monotonic()
            if left <= 0:
                missing = sorted({ep for u, (_, _, eps) in zip(up, self._monitors) for ep in eps if ep not in u})
                raise ConfigError(f"no xApp answers at {', '.join(missing)} (no ZeroMQ handshake within "
                                  f"{self.cfg.connect_timeout_s:g} s): is it running, at these endpoints?")
            for mon, _ in poller.poll(timeout=left * 1e3):
                i = next(k for k, (_, m, _) in enumerate(self._monitors) if m is mon)
                ep = recv_monitor_message(mon)["endpoint"]
                up[i].add(ep.decode() if isinstance(ep, bytes) else ep)
        for sock, mon, _ in self._monitors:
            sock.disable_monitor()
            mon.close(0)
            self._all.remove(mon)
        self._monitors = []

    def _wait_for_xapps(self, ind_socks: list) -> None:
        """Bound: wait until `peers` xApps are connected (handshakes on the indication sockets, at
        least one each, and `peers` frame subscriptions on each frame socket); PUSH deals messages
        only to the peers it has, so starting earlier would give the first one everything."""
        import zmq
        from zmq.utils.monitor import recv_monitor_message
        mons = [s.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED) for s in ind_socks]
        self._all += mons
        shakes, subs = [0] * len(mons), [0] * len(self.frm)
        poller = zmq.Poller()
        for sock in [*mons, *self.frm]:
            poller.register(sock, zmq.POLLIN)
        end = time.monotonic() + self.cfg.connect_timeout_s
        peers = self.cfg.peers
        while sum(shakes) < peers or min(shakes) < 1 or min(subs) < peers:
            left = end - time.monotonic()
            if left <= 0:
                raise ConfigError(f"--peers {peers}: after {self.cfg.connect_timeout_s:g} s, {sum(shakes)} xApp(s) "
                                  f"connected for indications and {min(subs)} subscribed to frames")
            for sock, _ in poller.poll(timeout=left * 1e3):
                if sock in mons:                   # connected peers: handshakes - disconnections
                    event = recv_monitor_message(sock)["event"]
                    shakes[mons.index(sock)] += 1 if event == zmq.EVENT_HANDSHAKE_SUCCEEDED else -1
                else:                              # XPUB: \x01 a subscription, \x00 an unsubscription
                    subs[self.frm.index(sock)] += 1 if sock.recv()[:1] == b"\x01" else -1
        for s, m in zip(ind_socks, mons):
            s.disable_monitor()
            m.close(0)
            self._all.remove(m)

    def _noisy(self, csi: np.ndarray) -> np.ndarray:
        """csi [2, A, K] + complex white noise at snr_db below its mean power."""
        p = float(np.mean(csi[0] ** 2 + csi[1] ** 2))
        sigma = math.sqrt(p / 10 ** (self.cfg.snr_db / 10) / 2)
        return (csi + self.rng.normal(0.0, sigma, csi.shape)).astype(np.float32)

    def _in_outage(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.cfg.outages)

    def _scenes(self):
        """(replay time [s] after the start, scene), paced: gaps between blocks cut to one period."""
        t, prev = 0.0, None
        for n_pass in itertools.count():
            if n_pass and not self.cfg.loop:
                return
            for sc in self.rec.scenes:
                if prev is not None:                   # a gap (next block, next pass) lasts one period
                    step = sc.t_s - prev
                    t += (step if 0 <= step <= self.rec.period_s else self.rec.period_s) / self.cfg.speed
                prev = sc.t_s
                yield t, sc

    def _plan(self, heap: list, r: float, sc: Scene, base: float, t_ns: int) -> None:
        """Queue scene ``sc`` (replay time r, due at perf time ``base``, source time t_ns): its
        frame, then its UE reports (registered with the scorer), after the knobs."""
        from wmfm.xapp.codec import encode_frame
        cfg = self.cfg
        if sc.frame is not None:
            seq = self.frame_seq.get(sc.camera, 0)
            self.frame_seq[sc.camera] = seq + 1
            if self._in_outage(r):
                self.counts["frames_in_outage"] += 1
            else:
                cap = t_ns + int(cfg.clock_offset_ms * 1e6)
                heapq.heappush(heap, _Msg(base + cfg.camera_lag_ms / 1e3 + self._jitter(), next(self._seq), "frame",
                                          encode_frame(sc.camera, seq, cap, sc.frame, *sc.size, sc.encoding)))
        groups: dict[int, list] = {}                   # cell index -> [(ue, csi)] of one bundled indication
        for k in range(len(sc.ue_id)):
            if cfg.count is not None and self.planned >= cfg.count:
                break
            self.planned += 1
            ue = int(sc.ue_id[k])
            cell = self.cell_of[sc.cell] if sc.cell is not None else self.cells[ue % len(self.cells)]
            csi = self._noisy(sc.csi[k]) if cfg.snr_db is not None else sc.csi[k]
            if cfg.bundle:
                groups.setdefault(self.cells.index(cell), []).append((ue, csi, k))
                continue
            self._indication(heap, cell, [(ue, csi, k)], sc, r, base, t_ns)
        for i, reports in groups.items():
            self._indication(heap, self.cells[i], reports, sc, r, base, t_ns)
        self.counts["reports_planned"] = self.planned

    def _indication(self, heap: list, cell: _Cell, reports: list, sc: Scene, r: float, base: float,
                    t_ns: int) -> None:
        """One indication of `cell` carrying `reports` [(ue, csi, k)]: an SN, the truth of each UE,
        the drop and reorder draws."""
        from wmfm.xapp.codec import encode_indication
        from wmfm.xapp.e2ap import encode_e2ap_indication
        cfg = self.cfg
        encode = encode_e2ap_indication if cfg.encoding == "e2ap" else encode_indication
        sn, cell.sn = cell.sn % 65536, cell.sn + 1
        if cfg.drop and self.rng.random() < cfg.drop:
            self.counts["dropped"] += len(reports)
            return
        if self.scorer is not None:
            for ue, _, k in reports:
                self.scorer.expect(sn, Truth(sc.scene, r, t_ns, ue,
                                             bool(sc.los[k]) if sc.los is not None else None,
                                             sc.position[k] if sc.position is not None else None))
        buf = encode(cfg.ran_name, sn, t_ns, [(ue, csi) for ue, csi, _ in reports], plmn_id=cell.plmn,
                     nr_cell_id=cell.nr_cell, snr_db=cfg.snr_db, instance_id=cell.instance)
        heapq.heappush(heap, _Msg(base + self._jitter(), next(self._seq), "indication", buf,
                                  bool(cfg.reorder and self.rng.random() < cfg.reorder), (cell, len(reports))))

    def run(self, progress=None) -> dict:
        """Send everything within the bounds; returns the counts. Scenes are planned 50 ms ahead
        (max rate: one at a time), messages leave when due (heap by due time). A KeyboardInterrupt
        stops the sending; the counts say what left."""
        cfg = self.cfg
        heap: list[_Msg] = []
        held: _Msg | None = None                   # an indication waiting to be overtaken
        lead = 0.05                                # plan the first scenes before the first is due
        t0 = time.perf_counter() + lead
        t0_ns = time.time_ns() + int(lead * 1e9)
        end = t0 + cfg.duration_s if cfg.duration_s else math.inf
        scenes = self._scenes()
        pending = next(scenes, None)
        if cfg.max_rate:
            time.sleep(lead)
        while not self.stalled:
            now = time.perf_counter()
            while pending is not None and (not heap if cfg.max_rate else t0 + pending[0] <= now + 0.05):
                r, sc = pending
                if (cfg.count is not None and self.planned >= cfg.count) or \
                        (now if cfg.max_rate else t0 + r) >= end:
                    pending = None
                    break
                if cfg.max_rate:                   # replay time = time since the start
                    self._plan(heap, max(0.0, now - t0), sc, now, time.time_ns())
                else:
                    self._plan(heap, r, sc, t0 + r, t0_ns + int(r * 1e9))
                pending = next(scenes, None)
            if not heap:
                if pending is None:
                    break
                time.sleep(min(max(t0 + pending[0] - 0.05 - now, 0.0), 0.05))
                continue
            delay = heap[0].due - now
            if delay > 0 and not cfg.max_rate:       # sleep, then spin the last 2 ms: a sleep can
                if delay > SPIN_S:                    # overshoot by a millisecond or more, which
                    time.sleep(min(delay - SPIN_S, 0.05))   # would count as xApp latency; the spin
                else:                                 # yields the GIL (the scorer reads meanwhile)
                    time.sleep(0)
                continue
            msg = heapq.heappop(heap)
            if msg.kind == "frame":
                if all(self._send(sock, msg.payload) for sock in self.frm):   # a copy to each frame endpoint
                    self.counts["frames"] += 1
                continue
            if msg.reorder and held is None:
                held = msg                         # sent right after the next indication of its cell
                continue
            self._send_indication(msg)
            if held is not None and held.cell[0] is msg.cell[0]:
                self._send_indication(held)
                self.counts["reordered"] += 1
                held = None
            if progress is not None:
                progress(self.counts["reports"])
        if held is not None:                       # nothing came after it: it goes last, in order
            self._send_indication(held)
        self.counts["send_s"] = time.perf_counter() - t0
        return dict(self.counts)

    def _jitter(self) -> float:
        return float(self.rng.uniform(0.0, self.cfg.jitter_ms / 1e3)) if self.cfg.jitter_ms else 0.0

    def _send_indication(self, msg: _Msg) -> None:
        cell, n = msg.cell
        if self._send(cell.sock, msg.payload):
            self.counts["indications"] += 1
            self.counts["reports"] += n

    def _send(self, sock, buf: bytes) -> bool:
        import zmq
        try:
            sock.send(buf)
        except zmq.Again:                          # the xApp took nothing for 10 s
            self.stalled = True
            return False
        self.first_send_ns = self.first_send_ns or time.time_ns()
        return True

    def close(self, linger: int | None = None) -> None:
        for sock in self._all:
            sock.close(linger)
        self.ctx.term()
