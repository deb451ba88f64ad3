"""`wmfm replay` (also `python sim/replay.py`): a DeepVerse6G scenario played as the RAN and
the cameras into a running xApp, with live scoring of what it publishes.

    scenario ─ deepverse (sim/dataset.read_scenes) ─► Scene records (CSI, frame file, truth)
        ─► schedule: for each scene in time order, the camera frame (its file's bytes, as the
           camera sent them) and one RIC indication per UE; source times from the scene time
        ─► realism knobs (CSI noise, jitter, drop, reorder, camera lag/outage, clock offset)
        ─► ZeroMQ PUSH to the xApp(s) ──► xApp(s) ──► Redis stream {ns},insights ─► Scorer (by UE, SN)

Pacing: real time x `speed` (scene times map onto the wall clock; gaps between the selected
time blocks are shortened to one scene period), or `max_rate` (as fast as the xApp takes
them: PUSH back-pressure). Bounded by `duration_s` and `count`; `loop` repeats the scenes.
Live scoring matches every insight to the truth of the (UE, SN) it answers: LoS balanced
accuracy, localisation error, latency (source time -> insight read back from Redis; same
host clock), loss, share of csi_only. With the xApp's metrics URL it also reports what the
xApp counted (decode errors, SN gaps, sync results) and its stage latency breakdown.

Several xApp instances (horizontal scaling): give several indication endpoints and the
indications are spread over them by ZeroMQ PUSH round-robin (`route="round_robin"`), or, with
as many cells as endpoints, cell i's indications go to endpoint i (`route="cell"`, as an E2
termination routes each subscription to the instance that made it). The UEs are spread over
the cells (UE id mod the number of cells), each cell with its own E2 subscription (SN
sequence). Every camera frame goes to every frame endpoint. Or `bind`: the replay binds (a PUSH
dealing the indications out over the xApps that connect to it, a PUB giving each every frame)
and waits for `peers` xApps, as an E2 termination and a camera gateway would serve replicas that
come and go. The scorer sees all instances through their shared Redis: each insight must arrive
exactly once.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from wmfm.xapp.config import check_cell
from wmfm.xapp.metrics import metrics_delta, scrape, stage_table

from wmfm.config import ConfigError

SPLITS = ("all", "train", "val", "test")
ROUTES = ("round_robin", "cell")
RAN_NAME = "gnb-replay"
SPIN_S = 0.002


@dataclass(frozen=True)
class ReplayConfig:
    speed: float = 1.0                     # real time x speed (unless max_rate)
    max_rate: bool = False                 # as fast as the xApp takes them (PUSH back-pressure)
    loop: bool = False                     # play the scenes again and again (soak); needs a bound
    duration_s: float | None = None        # stop sending after this many seconds
    count: int | None = None               # stop after this many UE indications (dropped ones count)
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
    connect_timeout_s: float = 60.0
    instance_id: int | None = None         # RIC instance id: each replay is a new E2 subscription (SNs
                                           # restart at 0); None: a random one per run
    settle_s: float = 3.0                  # after the last send: wait this long for missing insights

    def validate(self) -> None:
        def bad(name: str, why: str):
            raise ConfigError(f"--{name.replace('_', '-')}: {why}")
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
        for a, b in self.outages:
            if not 0 <= a < b:
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
        if self.bind and self.route == "cell" and self.peers < len(self.cells):
            bad("peers", f"--bind --route cell: one xApp per cell at least, got {self.peers} for {len(self.cells)}")


@dataclass
class Scene:
    """One scene of the recording: its camera frame as the camera wrote it and the truth per UE."""
    scene: int
    t_s: float                     # scene time [s]
    frame: bytes                   # the JPEG/PNG file's bytes
    encoding: str                  # "jpeg" | "png"
    size: tuple[int, int]          # (width, height)
    ue_id: np.ndarray              # [n] int64
    csi: np.ndarray                # [n, 2, A, K] float32 real/imag, as deepverse generates it
    los: np.ndarray                # [n] bool
    position: np.ndarray           # [n, 3] float64, metres


@dataclass
class Recording:
    scenario: str
    camera_id: str
    period_s: float
    split: str
    scenes: list[Scene]
    twin: dict | None = None

    @property
    def n_reports(self) -> int:
        return sum(len(s.ue_id) for s in self.scenes)


def scene_split(n_scenes: int, period_s: float, cache: Path | None, guard_s: float = 3.0,
                seed: int = 0) -> np.ndarray:
    """[S] int8 split label per scene (0 train, 1 val, 2 test, -1 guard), as `wmfm dataset build`
    cut it: from the cache's meta.json when given (the model's own split), else its defaults."""
    from .dataset import split_blocks
    guard = int(round(guard_s / period_s))
    if cache is not None:
        meta_file = Path(cache) / "meta.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"{meta_file}: not a wmfm cache (meta.json missing)")
        meta = json.loads(meta_file.read_text())
        if meta["source"]["scenes"] != n_scenes:
            raise ConfigError(f"--cache: built from {meta['source']['scenes']} scenes, the scenario has {n_scenes}")
        guard, seed = meta["split"]["guard_scenes"], meta["split"]["seed"]
        out = split_blocks(n_scenes, guard_scenes=guard, seed=seed)
        if out["blocks"] != meta["split"]["blocks"]:
            raise ConfigError(f"--cache: {meta_file} has split blocks this version does not reproduce")
        return out["label"]
    return split_blocks(n_scenes, guard_scenes=guard, seed=seed)["label"]


def load(scenario: str | Path, split: str = "test", cache: str | Path | None = None, bs: int = 1,
         camera: str | int | None = None, config: str | Path | None = None, scene_period_s: float | None = None,
         max_reports: int | None = None, progress: bool = True) -> Recording:
    """The scenes of ``split`` (UEs with at least one path, as the cache has them), through deepverse."""
    from PIL import Image
    from tqdm import tqdm

    from .dataset import read_scenes, scene_period
    from .scenario import ScenarioError, inspect

    if split not in SPLITS:
        raise ConfigError(f"--split: expected one of {SPLITS}, got {split!r}")
    info = inspect(scenario, bs=bs, camera=camera, progress=progress)
    if info.camera_id is None:
        raise ScenarioError(f"{scenario}/param/scenario.yaml: no 'camera' modality to replay")
    period = scene_period(info, scene_period_s)
    label = scene_split(len(info.scenes), period, Path(cache) if cache else None)
    by_scene: dict[int, list[int]] = {}
    total = 0
    for s, lk in zip(info.scenes, info.links):
        if split != "all" and label[s] != SPLITS.index(split) - 1:
            continue
        ues = [int(j) for j in np.flatnonzero(lk.n_paths > 0)]
        if ues:
            by_scene[s] = ues
            total += len(ues)
            if max_reports is not None and total >= max_reports:
                break
    if not by_scene:
        raise ScenarioError(f"{scenario}: no scene of split {split!r} has a UE with a path")
    scenes = []
    bar = tqdm(total=total, desc="load scenes", unit="UE", disable=not progress, leave=False)
    with tempfile.TemporaryDirectory(prefix="wmfm-replay-") as tmp:
        for sc in read_scenes(info, by_scene, Path(config) if config else None, Path(tmp), status=bar.set_postfix_str):
            path = Path(sc.image)
            with Image.open(path) as im:
                size, fmt = im.size, im.format
            if fmt not in ("JPEG", "PNG"):
                raise ScenarioError(f"{path}: {fmt} frame (the camera messages carry JPEG or PNG)")
            csi = np.stack([sc.csi.real, sc.csi.imag], axis=1).astype(np.float32)
            scenes.append(Scene(sc.scene, sc.scene * period, path.read_bytes(), fmt.lower(), size, sc.ue_id, csi,
                                info.links[sc.scene].los[sc.ues].astype(bool), sc.position))
            bar.update(len(sc.ues))
    bar.close()
    return Recording(str(scenario), info.camera_id, period, split, scenes, info.twin)


# --- live scoring ---------------------------------------------------------------------------
@dataclass
class Truth:
    scene: int
    t_replay_s: float              # seconds since the replay started (scene time on the replay clock)
    t_ns: int                      # source (collection) time sent
    ue_id: int
    los: bool
    position: np.ndarray


class Scorer(threading.Thread):
    """Reads the xApp's insight stream (XREAD, from what is new when it starts) and matches each
    insight to the truth of its (RAN, UE, SN); live counters for the progress line."""

    def __init__(self, redis_url: str, namespace: str = "wmfm", ran_name: str = RAN_NAME):
        import redis
        super().__init__(name="wmfm-replay-scorer", daemon=True)
        self.r = redis.Redis.from_url(redis_url)
        self.stream = f"{{{namespace}}},insights"
        self.ran = ran_name
        try:
            last = self.r.xrevrange(self.stream, count=1)   # only what this replay causes
        except (redis.RedisError, OSError) as exc:
            raise ConfigError(f"--redis {redis_url}: {type(exc).__name__}: {exc}") from None
        self.last_id = last[0][0] if last else b"0-0"
        self.lock = threading.Lock()
        self.expected: dict[tuple[int, int], Truth] = {}
        self.rows: list[dict] = []
        self.unexpected = 0
        self.stop_flag = threading.Event()
        self.error: str | None = None

    def expect(self, sn: int, truth: Truth) -> None:
        with self.lock:
            self.expected[(truth.ue_id, sn)] = truth

    def run(self) -> None:
        import redis
        while not self.stop_flag.is_set():
            try:
                res = self.r.xread({self.stream: self.last_id}, count=1000, block=100)
            except (redis.RedisError, OSError) as exc:          # the xApp's Redis restarting: try again
                self.error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.2)
                continue
            now = time.time_ns()
            for _, entries in res or []:
                for eid, f in entries:
                    self.last_id = eid
                    self._match(f, now)

    def _match(self, f: dict, now: int) -> None:
        if f.get(b"ran", b"").decode() != self.ran:
            return
        key = (int(f[b"ue"]), int(f[b"sn"]))
        with self.lock:
            truth = self.expected.pop(key, None)
            if truth is None:
                self.unexpected += 1
                return
            pred = np.array([float(f[b"x"]), float(f[b"y"]), float(f[b"z"])])
            t_ns = int(f[b"t_ns"])
            self.rows.append({
                "scene": truth.scene, "t_replay_s": truth.t_replay_s, "ue": truth.ue_id, "sn": key[1],
                "los": truth.los, "los_pred": f[b"los"] == b"1", "p_los": float(f[b"p_los"]),
                "position": truth.position, "position_pred": pred,
                "error_m": float(np.linalg.norm(pred - truth.position)), "mode": f[b"mode"].decode(),
                "latency_ms": (now - t_ns) / 1e6, "publish_latency_ms": (int(f[b"published_ns"]) - t_ns) / 1e6,
                "arrival_ns": now})

    def outstanding(self) -> int:
        with self.lock:
            return len(self.expected)

    def live(self) -> str:
        with self.lock:
            rows = self.rows[-2000:]
            n = len(self.rows)
        if not rows:
            return "waiting for insights"
        from wmfm.model.metrics import balanced_accuracy
        lat = np.array([r["latency_ms"] for r in rows])
        ba = balanced_accuracy([r["los"] for r in rows], [r["los_pred"] for r in rows])
        return (f"recv {n} | BA {ba:.3f} | err "
                f"{np.mean([r['error_m'] for r in rows]):.2f} m | p99 {np.percentile(lat, 99):.1f} ms | "
                f"csi_only {np.mean([r['mode'] == 'csi_only' for r in rows]):.0%}")

    def stop(self) -> None:
        self.stop_flag.set()
        self.join(timeout=5)
        self.r.close()


def scores(rows: list[dict]) -> dict:
    """LoS balanced accuracy, localisation error and latency of matched insights."""
    from wmfm.model.metrics import balanced_accuracy, confusion, localisation
    if not rows:
        return {"insights": 0}
    los = np.array([r["los"] for r in rows], int)
    pred = np.array([r["los_pred"] for r in rows], int)
    lat = np.array([r["latency_ms"] for r in rows])
    pub = np.array([r["publish_latency_ms"] for r in rows])
    out = {"insights": len(rows), "los_balanced_accuracy": balanced_accuracy(los, pred),
           "los_accuracy": float((los == pred).mean()), "los_confusion": confusion(los, pred)}
    out |= localisation(np.array([r["position_pred"] for r in rows]), np.array([r["position"] for r in rows]))
    out["latency_ms"] = {f"p{q:g}".replace(".", ""): float(np.percentile(lat, q)) for q in (50, 90, 99, 99.9)}
    out["latency_ms"] |= {"mean": float(lat.mean()), "max": float(lat.max())}
    out["publish_latency_ms"] = {"p50": float(np.percentile(pub, 50)), "p99": float(np.percentile(pub, 99))}
    return out


# --- the player -----------------------------------------------------------------------------
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
                 scorer: Scorer | None = None):
        import zmq
        cfg.validate()
        ind_eps, frame_eps = endpoints(indications), endpoints(frames)
        by_cell = cfg.route == "cell"
        if by_cell and len(ind_eps) != len(cfg.cells):
            raise ConfigError(f"--route cell: needs one indication endpoint per cell, got {len(ind_eps)} endpoints "
                              f"for {len(cfg.cells)} cells")
        self.rec, self.cfg, self.scorer = rec, cfg, scorer
        self.rng = np.random.default_rng(cfg.seed)
        self.ctx = zmq.Context()
        self._all: list = []                           # every socket, for close()
        try:
            # round_robin: one PUSH on every endpoint (ZeroMQ deals the messages out in turn); cell:
            # one PUSH per cell. Frames: each frame endpoint gets every frame (a PUSH each; bound: a PUB).
            ind_socks = [self._socket(zmq.PUSH, ep) for ep in ind_eps] if by_cell else \
                [self._socket(zmq.PUSH, *ind_eps)]
            self.frm = [self._socket(zmq.XPUB if cfg.bind else zmq.PUSH, ep) for ep in frame_eps]
            if cfg.bind:
                self._wait_for_xapps(ind_socks)
        except BaseException:
            self.close(linger=0)
            raise
        first = cfg.instance_id if cfg.instance_id is not None else int(np.random.default_rng().integers(65536))
        self.cells = [_Cell(c.partition(":")[0], int(c.partition(":")[2]), (first + i) % 65536,
                            ind_socks[i if by_cell else 0]) for i, c in enumerate(cfg.cells)]
        self.counts = {"indications": 0, "frames": 0, "dropped": 0, "reordered": 0, "frames_in_outage": 0,
                       "reports_planned": 0}
        self.stalled = False
        self._seq = itertools.count()
        self.frame_seq = self.planned = self.first_send_ns = 0

    def _socket(self, kind: int, *eps: str):
        import zmq
        s = self.ctx.socket(kind)
        s.setsockopt(zmq.SNDHWM, 64 if self.cfg.max_rate else 10_000)
        s.setsockopt(zmq.SNDTIMEO, 10_000)         # back-pressure blocks; an xApp gone for 10 s ends the run
        s.setsockopt(zmq.LINGER, 5_000)
        if kind == zmq.XPUB:
            s.setsockopt(zmq.XPUB_VERBOSE, 1)      # every subscriber's subscription reaches us (a count)
        self._all.append(s)
        try:
            for ep in eps:
                s.bind(ep) if self.cfg.bind else s.connect(ep)
        except zmq.ZMQError as exc:
            raise ConfigError(f"cannot {'bind' if self.cfg.bind else 'connect'} {', '.join(eps)}: {exc}") from None
        return s

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
                    t += (step if 0 < step <= self.rec.period_s else self.rec.period_s) / self.cfg.speed
                prev = sc.t_s
                yield t, sc

    def _plan(self, heap: list, r: float, sc: Scene, base: float, t_ns: int) -> None:
        """Queue scene ``sc`` (replay time r, due at perf time ``base``, source time t_ns): its
        frame, then one indication per UE (registered with the scorer), after the knobs."""
        from wmfm.xapp.codec import encode_frame, encode_indication
        cfg = self.cfg
        if self._in_outage(r):
            self.counts["frames_in_outage"] += 1
        else:
            cap = t_ns + int(cfg.clock_offset_ms * 1e6)
            heapq.heappush(heap, _Msg(base + cfg.camera_lag_ms / 1e3 + self._jitter(), next(self._seq), "frame",
                                      encode_frame(self.rec.camera_id, self.frame_seq, cap, sc.frame, *sc.size,
                                                   sc.encoding)))
        self.frame_seq += 1
        for k in range(len(sc.ue_id)):
            if cfg.count is not None and self.planned >= cfg.count:
                break
            self.planned += 1
            ue = int(sc.ue_id[k])
            cell = self.cells[ue % len(self.cells)]
            sn, cell.sn = cell.sn % 65536, cell.sn + 1
            if cfg.drop and self.rng.random() < cfg.drop:
                self.counts["dropped"] += 1
                continue
            csi = self._noisy(sc.csi[k]) if cfg.snr_db is not None else sc.csi[k]
            if self.scorer is not None:
                self.scorer.expect(sn, Truth(sc.scene, r, t_ns, ue, bool(sc.los[k]), sc.position[k]))
            buf = encode_indication(cfg.ran_name, sn, t_ns, [(ue, csi)], plmn_id=cell.plmn, nr_cell_id=cell.nr_cell,
                                    snr_db=cfg.snr_db, instance_id=cell.instance)
            heapq.heappush(heap, _Msg(base + self._jitter(), next(self._seq), "indication", buf,
                                      bool(cfg.reorder and self.rng.random() < cfg.reorder), cell))
        self.counts["reports_planned"] = self.planned

    def run(self, progress=None) -> dict:
        """Send everything within the bounds; returns the counts. Scenes are planned 50 ms ahead
        (max rate: one at a time), messages leave when due (heap by due time)."""
        cfg = self.cfg
        heap: list[_Msg] = []
        held: _Msg | None = None                   # an indication waiting to be overtaken
        lead = 0.2                                 # let the connections come up
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
                    time.sleep(min(delay - SPIN_S, 0.05))   # would count as xApp latency
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
            if held is not None and held.cell is msg.cell:
                self._send_indication(held)
                self.counts["reordered"] += 1
                held = None
            if progress is not None:
                progress(self.counts["indications"])
        if held is not None:                       # nothing came after it: it goes last, in order
            self._send_indication(held)
        self.counts["send_s"] = time.perf_counter() - t0
        return dict(self.counts)

    def _jitter(self) -> float:
        return float(self.rng.uniform(0.0, self.cfg.jitter_ms / 1e3)) if self.cfg.jitter_ms else 0.0

    def _send_indication(self, msg: _Msg) -> None:
        if self._send(msg.cell.sock, msg.payload):
            self.counts["indications"] += 1

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


def replay(rec: Recording, indications: str, frames: str, redis_url: str, cfg: ReplayConfig,
           metrics_url: str | None = None, namespace: str = "wmfm", out: Path | None = None,
           progress: bool = True) -> dict:
    """Play ``rec`` into a running xApp, score what it publishes; JSON summary (+ PNGs in ``out``)."""
    from tqdm import tqdm
    cfg.validate()
    urls = [u.strip() for u in metrics_url.split(",")] if metrics_url else []
    before = [_scrape(u) for u in urls]
    scorer = Scorer(redis_url, namespace, cfg.ran_name)
    player = Player(rec, indications, frames, cfg, scorer)
    scorer.start()
    total = cfg.count if cfg.count is not None else (None if cfg.loop else rec.n_reports)
    bar = tqdm(total=total, desc="replay", unit="ind", disable=not progress, dynamic_ncols=True)
    last = [0.0]

    def tick(n: int) -> None:
        bar.n = n
        if time.monotonic() - last[0] > 0.5:
            last[0] = time.monotonic()
            bar.set_postfix_str(scorer.live(), refresh=False)
            bar.refresh()
    t0 = time.monotonic()
    try:
        sent = player.run(tick)
        last_n, last_t = -1, time.monotonic()        # the last insights: all in, or none for settle_s
        while scorer.outstanding() and time.monotonic() - last_t < cfg.settle_s:
            if len(scorer.rows) != last_n:
                last_n, last_t = len(scorer.rows), time.monotonic()
            time.sleep(0.05)
    finally:
        player.close()
        scorer.stop()
        bar.n = player.counts["indications"]
        bar.set_postfix_str(scorer.live())
        bar.close()
    rows = scorer.rows
    summary = {"format": "wmfm-replay/1", "scenario": rec.scenario, "split": rec.split, "camera": rec.camera_id,
               "scene_period_s": rec.period_s, "config": asdict(cfg), "wall_s": time.monotonic() - t0,
               "sent": {k: v for k, v in sent.items() if k != "send_s"}, "send_s": sent["send_s"],
               "received": len(rows), "lost": sent["indications"] - len(rows), "unexpected": scorer.unexpected,
               "stalled": player.stalled, "throughput_per_s": _throughput(rows, player.first_send_ns),
               "csi_only_share": float(np.mean([r["mode"] == "csi_only" for r in rows])) if rows else None,
               "scores": scores(rows),
               "by_mode": {m: scores([r for r in rows if r["mode"] == m]) for m in ("fused", "csi_only")}}
    if urls:                                         # several instances: their sum, and each one
        after = [_scrape(u) for u in urls]
        summary["xapp"] = metrics_delta(_sum(before), _sum(after))
        if len(urls) > 1:
            summary["instances"] = [{"metrics": u} | metrics_delta(b, a) for u, b, a in zip(urls, before, after)]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        summary["plots"] = [str(p) for p in plots(rows, rec, summary, out)]
        (out / "replay.json").write_text(json.dumps(summary, indent=2, default=float))
        _write_rows(rows, out / "insights.csv")
    summary["_rows"] = rows
    return summary


def _throughput(rows: list[dict], first_send_ns: int) -> float:
    """Insights per second, from the first send to the last insight read back."""
    if not rows:
        return 0.0
    return len(rows) / max(1e-9, (max(r["arrival_ns"] for r in rows) - first_send_ns) / 1e9)


def _sum(scrapes: list[dict]) -> dict:
    out: dict = {}
    for d in scrapes:
        for k, v in d.items():
            out[k] = out.get(k, 0.0) + v
    return out


def _scrape(url: str) -> dict:
    try:
        return scrape(url)
    except OSError as exc:                          # URLError, connection refused, timeout
        raise ConfigError(f"--metrics {url}: {exc}") from None


def _write_rows(rows: list[dict], path: Path) -> None:
    with path.open("w") as f:
        f.write("scene,t_replay_s,ue,sn,mode,los,los_pred,p_los,x,y,z,x_pred,y_pred,z_pred,error_m,latency_ms\n")
        for r in rows:
            f.write(f"{r['scene']},{r['t_replay_s']:.3f},{r['ue']},{r['sn']},{r['mode']},{int(r['los'])},"
                    f"{int(r['los_pred'])},{r['p_los']:.6f},{','.join(f'{v:.3f}' for v in r['position'])},"
                    f"{','.join(f'{v:.3f}' for v in r['position_pred'])},{r['error_m']:.4f},{r['latency_ms']:.3f}\n")


# --- pictures -------------------------------------------------------------------------------
def plots(rows: list[dict], rec: Recording, summary: dict, out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .show import draw_map, map_limits
    if not rows:
        return []
    paths = []
    lat = np.sort([r["latency_ms"] for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(lat, np.arange(1, len(lat) + 1) / len(lat))
    for q in (50, 99):
        v = np.percentile(lat, q)
        ax.axvline(v, color="0.5", ls=":")
        ax.text(v, 0.05 if q == 50 else 0.15, f" p{q} {v:.2f} ms", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("end-to-end latency, ms (CSI collection -> insight read back from Redis)")
    ax.set_ylabel("CDF")
    ax.set_title(f"replay of {Path(rec.scenario).name} ({rec.split}): {len(rows)} insights")
    ax.grid(True, which="both", alpha=0.3)
    paths.append(_save(fig, out / "latency_cdf.png"))

    fig, ax = plt.subplots(figsize=(11, 5))
    cfg, bs = draw_map(ax, rec.twin)
    ues = [u for u, _ in Counter(r["ue"] for r in rows).most_common(4)]
    for i, u in enumerate(ues):
        rs = sorted((r for r in rows if r["ue"] == u), key=lambda r: r["t_replay_s"])
        true, pred = np.array([r["position"] for r in rs]), np.array([r["position_pred"] for r in rs])
        c = f"C{i}"
        ax.plot(true[:, 0], true[:, 1], "-", color=c, lw=2, label=f"UE {u} true")
        ax.plot(pred[:, 0], pred[:, 1], "o", color=c, mfc="none", ms=4, label=f"UE {u} predicted")
        for a, b in zip(true, pred):
            ax.plot([a[0], b[0]], [a[1], b[1]], color=c, lw=0.5, alpha=0.5)
    if bs is not None:
        ax.plot(*bs[:2], "k^", ms=10, label="BS + camera")
    if cfg is not None:
        map_limits(ax, cfg)
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_title("predicted vs true positions of the UEs with the most insights")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    paths.append(_save(fig, out / "trajectories.png"))

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    t = np.array([r["t_replay_s"] for r in rows])
    err = np.array([r["error_m"] for r in rows])
    csi_only = np.array([r["mode"] == "csi_only" for r in rows])
    a1.scatter(t[~csi_only], err[~csi_only], s=6, label="fused")
    a1.scatter(t[csi_only], err[csi_only], s=6, color="tab:red", label="csi_only")
    a1.set_ylabel("localisation error [m]")
    a1.legend(fontsize=8)
    a1.grid(alpha=0.3)
    wrong = np.array([r["los"] != r["los_pred"] for r in rows])
    p = np.array([r["p_los"] for r in rows])
    a2.scatter(t, p, s=6, c=["tab:green" if r["los"] else "tab:purple" for r in rows])
    a2.scatter(t[wrong], p[wrong], s=30, facecolors="none", edgecolors="k", label="wrong LoS decision")
    a2.axhline(0.5, color="0.5", ls=":")
    a2.set_ylabel("P(LoS) (green: LoS, purple: NLoS)")
    a2.set_xlabel("replay time [s]")
    a2.legend(fontsize=8)
    a2.grid(alpha=0.3)
    s = summary["scores"]
    a1.set_title(f"BA {s['los_balanced_accuracy']:.3f}, mean error {s['loc_mean_error_m']:.2f} m")
    paths.append(_save(fig, out / "errors_over_time.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(summary: dict) -> str:
    s, sent = summary["scores"], summary["sent"]
    lines = [f"sent {sent['indications']} indications + {sent['frames']} frames "
             f"(dropped by the replay {sent['dropped']}, reordered {sent['reordered']}, "
             f"frames in outage {sent['frames_in_outage']}) in {summary['send_s']:.1f} s; "
             f"insights {summary['received']}, lost {summary['lost']}, unexpected {summary['unexpected']}"]
    if summary["stalled"]:
        lines.append("STALLED: the xApp took nothing for 10 s (is it running, at these endpoints?)")
    if s.get("insights"):
        lat = s["latency_ms"]
        lines += [f"LoS balanced accuracy {s['los_balanced_accuracy']:.4f} (accuracy {s['los_accuracy']:.4f})",
                  f"localisation error mean {s['loc_mean_error_m']:.3f} m, median {s['loc_median_error_m']:.3f} m, "
                  f"p90 {s['loc_p90_error_m']:.3f} m",
                  f"latency p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, max {lat['max']:.2f} ms; "
                  f"csi_only {summary['csi_only_share']:.1%}"]
    if "xapp" in summary:
        x = summary["xapp"]
        lines.append(f"xApp counted: sync {x['sync']}, SN {x['sn_events']} (missing {x['sn_missing']}), "
                     f"decode errors {x['decode_errors']}, dropped {x['dropped']}, skipped {x['skipped']}")
        for i, inst in enumerate(summary.get("instances", [])):
            lines.append(f"  instance {i} ({inst['metrics']}): indications {inst['indications']}, frames "
                         f"{inst['frames']}, insights {sum(inst['insights'].values())}, skipped {inst['skipped']}")
        lines.append(stage_table(x))
    return "\n".join(lines)


if __name__ == "__main__":                     # `python sim/replay.py ...` = `wmfm replay ...`
    import sys

    from wmfm.cli import main
    sys.exit(main(["replay", *sys.argv[1:]]))
