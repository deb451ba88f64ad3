"""Live scoring: the xApp's insights read back from Redis and matched to what was sent.

The Scorer reads the `{ns},insights` stream (XREAD, only the entries this run causes) and
matches every insight to the truth of its (UE, SN), registered by the player as it sends.
Latency = the time the insight is read back minus the CSI collection time (same host clock),
so decode, sync, batching, inference, the Redis write and the delivery are all in it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from wmfm.config import ConfigError
from wmfm.scoring import balanced_accuracy, confusion, localisation

RAN_NAME = "gnb-replay"


@dataclass
class Truth:
    scene: int
    t_replay_s: float              # seconds since the replay started (scene time on the replay clock)
    t_ns: int                      # source (collection) time sent
    ue_id: int
    los: bool | None               # None: unknown (a synthetic load: latency and loss only)
    position: np.ndarray | None


class Scorer(threading.Thread):
    """Reads the xApp's insight stream (from what is new when it starts) and matches each insight
    to the truth of its (RAN, UE, SN); live counters for the progress line."""

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
            known = truth.los is not None
            self.rows.append({
                "scene": truth.scene, "t_replay_s": truth.t_replay_s, "ue": truth.ue_id, "sn": key[1],
                "los": truth.los, "los_pred": f[b"los"] == b"1", "p_los": float(f[b"p_los"]),
                "position": truth.position, "position_pred": pred,
                "error_m": float(np.linalg.norm(pred - truth.position)) if known else None,
                "mode": f[b"mode"].decode(), "latency_ms": (now - t_ns) / 1e6,
                "publish_latency_ms": (int(f[b"published_ns"]) - t_ns) / 1e6, "arrival_ns": now})

    def outstanding(self) -> int:
        with self.lock:
            return len(self.expected)

    def received(self) -> int:
        with self.lock:
            return len(self.rows)

    def live(self) -> str:
        """The progress line's figures over the last 2000 insights."""
        with self.lock:
            rows = self.rows[-2000:]
            n = len(self.rows)
        if not rows:
            return "waiting for insights"
        lat = np.array([r["latency_ms"] for r in rows])
        known = [r for r in rows if r["los"] is not None]
        quality = ""
        if known:
            ba = balanced_accuracy([r["los"] for r in known], [r["los_pred"] for r in known])
            quality = f" | BA {ba:.3f} | err {np.mean([r['error_m'] for r in known]):.2f} m"
        return (f"recv {n}{quality} | p99 {np.percentile(lat, 99):.1f} ms | "
                f"csi_only {np.mean([r['mode'] == 'csi_only' for r in rows]):.0%}")

    def stop(self) -> None:
        self.stop_flag.set()
        self.join(timeout=5)
        self.r.close()


def scores(rows: list[dict]) -> dict:
    """Latency of matched insights; LoS balanced accuracy and localisation error of those with truth."""
    if not rows:
        return {"insights": 0}
    lat = np.array([r["latency_ms"] for r in rows])
    pub = np.array([r["publish_latency_ms"] for r in rows])
    out: dict = {"insights": len(rows)}
    known = [r for r in rows if r["los"] is not None]
    if known:
        los = np.array([r["los"] for r in known], int)
        pred = np.array([r["los_pred"] for r in known], int)
        out |= {"los_balanced_accuracy": balanced_accuracy(los, pred), "los_accuracy": float((los == pred).mean()),
                "los_confusion": confusion(los, pred)}
        out |= localisation(np.array([r["position_pred"] for r in known]), np.array([r["position"] for r in known]))
    out["latency_ms"] = {f"p{q:g}".replace(".", ""): float(np.percentile(lat, q)) for q in (50, 90, 99, 99.9)}
    out["latency_ms"] |= {"mean": float(lat.mean()), "max": float(lat.max())}
    out["publish_latency_ms"] = {"p50": float(np.percentile(pub, 50)), "p99": float(np.percentile(pub, 99))}
    return out
