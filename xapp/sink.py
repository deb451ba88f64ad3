"""Insights -> Redis, with SDL-compatible keys (namespace `wmfm`, keys `{wmfm},<key>`):

    {wmfm},ue:<ran_name>:<ue_id>   hash: p_los los x y z t_ns published_ns sn mode model camera frame_t_ns
    {wmfm},insights                stream (XADD, MAXLEN ~ stream_maxlen): every insight, in order (each
                                   UE's in the order of its reports)
    {wmfm},events                  channel: one PUBLISH per insight (the serialized Insight protobuf)

and, unless `redis.sdl_mirror` is off, a mirror in the shapes the RIC's SDL libraries (ricsdl,
xapp-frame's sdlgo) read and write, so that other xApps read the insights with them:

    {wmfm},insight:<ran_name>:<ue_id>   string: the UE's newest insight as UTF-8 JSON, expiring
                                        `redis.sdl_ttl_s` after its last write
    {wmfm},ues                          set: "<ran_name>:<ue_id>" of the UEs with a live insight key
    {wmfm},updates                      channel: per batch, the insight keys written, joined by "___"
                                        (the SDL's event separator; plain UTF-8 text)

What is written follows the publish mode (the A1 policy's `publish`): `all`, `state` (the per-UE
hash and the mirror's key and set only: no stream, no channels) or `none`.

One pipelined round trip per batch. While Redis is unreachable, ingestion goes on: insights
wait in a bounded in-memory buffer (the oldest dropped and counted when it is full) and are
flushed in order once a retry succeeds; retries follow an exponential backoff policy. Delivery
is at-least-once: a round trip cut mid-way is sent again in full. A chunk the server refuses
as a whole (OOM, READONLY after a failover, NOPERM) is retried the same way; commands refused
one by one (WRONGTYPE on a foreign key) are counted and skipped, so one bad key never blocks
the rest. The per-UE state (hash and mirror key) only moves forward in time: an older insight
(an out-of-order indication) never overwrites a newer one there (it still goes to the stream
and the channels); the sink remembers the newest time written per UE. With several instances
writing the same UEs (`scaling.round_robin`) that memory is not enough: the state is then
written by a server-side Lua check (`HSET` only if the stored t_ns is older), sent with EVAL (an
EVALSHA through redis-py's pipelined Script adds a SCRIPT EXISTS round trip per batch). It costs
a little more: a batch of 8 takes 0.87 vs 0.77 ms p50 (`python scripts/bench_sink.py`, 2-core
host), so a single instance does without it. A UE leaves the set once its mirror key has expired:
the instance that wrote it last removes it (a server-side check that the key is gone, so a UE
another instance still writes stays).
"""

from __future__ import annotations

import itertools
import json
import time
from collections import OrderedDict, deque

import redis

from .codec import encode_insight
from .controls import RedisConfig
from .metrics import Metrics
from .records import Insight

CHUNK = 512
MAX_UES = 1_000_000            # UEs whose newest hash time the sink remembers (least recently written forgotten)

PUBLISH_MODES = ("all", "state", "none")

# KEYS[1] the UE hash, KEYS[2] (optional) its SDL mirror key; ARGV[1] the insight's t_ns, ARGV[2] the
# mirror's JSON, ARGV[3] its TTL (ms), ARGV[4..] field, value, ... : written unless the hash holds a newer
# t_ns. t_ns compared as decimal strings (length first): Lua numbers are doubles, exact only to 2^53,
# and nanosecond times are ~1.8e18.
NEWER_ONLY = """
local old = redis.call('HGET', KEYS[1], 't_ns')
local new = ARGV[1]
if old and (#old > #new or (#old == #new and old > new)) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if KEYS[2] then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
return 1
"""
# KEYS[1] a UE's mirror key, KEYS[2] the set of UEs; ARGV[1] the UE: out of the set once its key has expired
GONE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end
return 0
"""


def hash_fields(x: Insight) -> dict:
    """The per-UE hash's fields of an insight (the stream entry adds `ran` and `ue`)."""
    return {"p_los": f"{x.p_los:.6f}", "los": int(x.los), "x": f"{x.position[0]:.4f}", "y": f"{x.position[1]:.4f}",
            "z": f"{x.position[2]:.4f}", "t_ns": x.t_ns, "published_ns": x.published_ns, "sn": x.sn, "mode": x.mode,
            "model": x.model, "camera": x.camera_id, "frame_t_ns": x.frame_t_ns}


def stream_entry(x: Insight, fields: dict) -> dict:
    """The `{ns},insights` stream entry of an insight: its RAN and UE, then its hash fields."""
    return {"ran": x.ran_name, "ue": x.ue_id, **fields}


def sdl_value(x: Insight) -> bytes:
    """The SDL mirror's value of an insight: UTF-8 JSON, numbers as numbers."""
    return json.dumps({"ran": x.ran_name, "ue": x.ue_id, "p_los": round(x.p_los, 6), "los": bool(x.los),
                       "x": round(x.position[0], 4), "y": round(x.position[1], 4), "z": round(x.position[2], 4),
                       "t_ns": x.t_ns, "published_ns": x.published_ns, "sn": x.sn, "mode": x.mode, "model": x.model,
                       "camera": x.camera_id, "frame_t_ns": x.frame_t_ns}, separators=(",", ":")).encode()


class Backoff:
    """Exponential backoff between retries: first, 2x, 4x, ... up to cap (seconds)."""

    def __init__(self, first_s: float, cap_s: float):
        self.first, self.cap, self.delay = first_s, cap_s, 0.0

    def failed(self) -> float:
        self.delay = self.first if self.delay == 0 else min(self.cap, self.delay * 2)
        return self.delay

    def reset(self) -> None:
        self.delay = 0.0


class RedisSink:
    def __init__(self, client: redis.Redis, cfg: RedisConfig, metrics: Metrics, shared: bool = False):
        ns = cfg.namespace
        self.client, self.cfg, self.m = client, cfg, metrics
        self.ue_prefix, self.stream, self.channel = f"{{{ns}}},ue:", f"{{{ns}}},insights", f"{{{ns}}},events"
        self.sdl_prefix, self.sdl_set, self.sdl_channel = f"{{{ns}}},insight:", f"{{{ns}}},ues", f"{{{ns}}},updates"
        self.sdl_ttl_ms = int(cfg.sdl_ttl_s * 1000)
        self.live: OrderedDict[str, float] = OrderedDict()   # mirror: UE -> when its key expires (monotonic)
        self.publish_mode = "all"                       # all | state | none (the A1 policy's `publish`)
        self.buffer: deque[Insight] = deque()
        self.backoff = Backoff(cfg.retry_backoff_ms[0] / 1e3, cfg.retry_backoff_ms[1] / 1e3)
        self.retry_at = 0.0
        self.up = True
        self.last_error = ""
        self.written = 0
        self.newest: OrderedDict[str, int] = OrderedDict()     # UE hash key -> newest t_ns written
        self.shared = shared                            # other instances write the same UEs

    def ue_key(self, ran_name: str, ue_id: int) -> str:
        return f"{self.ue_prefix}{ran_name}:{ue_id}"

    def sdl_key(self, ran_name: str, ue_id: int) -> str:
        """The mirror's key of a UE, as Redis holds it (an SDL reader asks for `insight:<ran>:<ue>`)."""
        return f"{self.sdl_prefix}{ran_name}:{ue_id}"

    def publish(self, insights: list[Insight]) -> int:
        """Queue the insights and write what can be written now; returns how many were written. With the
        publish mode `none` they are counted (withheld) and dropped."""
        if self.publish_mode == "none":
            self.m.withheld.inc(len(insights))
            return 0
        self.buffer.extend(insights)
        over = len(self.buffer) - self.cfg.buffer
        if over > 0:                                    # full: the oldest go
            for _ in range(over):
                self.buffer.popleft()
            self.m.redis_dropped.inc(over)
        return self.flush()

    def flush(self) -> int:
        if self.publish_mode == "none" and self.buffer:         # buffered before the mode changed
            self.m.withheld.inc(len(self.buffer))
            self.buffer.clear()
        if not self.buffer and self.up:
            self.prune()
        if not self.buffer or time.monotonic() < self.retry_at:
            self.m.redis_buffer.set(len(self.buffer))
            return 0
        done = 0
        while self.buffer:
            chunk = list(itertools.islice(self.buffer, CHUNK))
            t0 = time.perf_counter()
            try:
                self._write(chunk)
            except (redis.RedisError, OSError) as exc:          # unreachable, or refusing everything
                self.m.redis_errors.inc()
                self.retry_at = time.monotonic() + self.backoff.failed()
                self.up, self.last_error = False, f"{type(exc).__name__}: {exc}"
                break
            self.m.stage.labels("redis").observe(time.perf_counter() - t0)
            for _ in chunk:
                self.buffer.popleft()
            done += len(chunk)
            self.backoff.reset()
            self.up = True
            now = time.time_ns()
            for x in chunk:
                self.m.e2e.observe(max(0, now - x.t_ns) / 1e9)
                self.m.latency.observe(max(0, now - x.received_ns) / 1e9)
        self.written += done
        self.m.redis_buffer.set(len(self.buffer))
        return done

    def _write(self, chunk: list[Insight]) -> None:
        """One pipelined round trip; raises when the server refused every command (retry later)."""
        mode, mirror = self.publish_mode, self.cfg.sdl_mirror           # mode "none" never gets here (publish)
        pipe = self.client.pipeline(transaction=False)
        newest, events = {}, []
        for x in chunk:
            fields = hash_fields(x)
            key = self.ue_key(x.ran_name, x.ue_id)
            if x.t_ns >= max(newest.get(key, 0), self.newest.get(key, 0)):
                sdl_key = self.sdl_key(x.ran_name, x.ue_id) if mirror else None
                if self.shared:                     # EVAL, not EVALSHA: no SCRIPT EXISTS round trip per batch
                    keys = (key, sdl_key) if mirror else (key,)
                    pipe.eval(NEWER_ONLY, len(keys), *keys, x.t_ns, sdl_value(x) if mirror else "", self.sdl_ttl_ms,
                              *itertools.chain(*fields.items()))
                else:
                    pipe.hset(key, mapping=fields)
                    if mirror:
                        pipe.set(sdl_key, sdl_value(x), px=self.sdl_ttl_ms)
                if mirror:
                    events.append(f"{x.ran_name}:{x.ue_id}")
                newest[key] = x.t_ns
            if mode == "all":
                pipe.xadd(self.stream, stream_entry(x, fields), maxlen=self.cfg.stream_maxlen, approximate=True)
                pipe.publish(self.channel, encode_insight(x))
        if events:
            ues = list(dict.fromkeys(events))
            pipe.sadd(self.sdl_set, *ues)
            if mode == "all":
                pipe.publish(self.sdl_channel, "___".join(f"insight:{ue}" for ue in ues))
        if mirror:
            self._touch(chunk)
        results = pipe.execute(raise_on_error=False)
        errors = [r for r in results if isinstance(r, Exception)]
        if errors and len(errors) == len(results):
            raise errors[0]
        for key, t in newest.items():
            self.newest[key] = t
            self.newest.move_to_end(key)
        while len(self.newest) > MAX_UES:
            self.newest.popitem(last=False)
        if errors:                                      # per-key problems: count, skip, go on
            self.m.redis_errors.inc(len(errors))
            self.last_error = f"{type(errors[0]).__name__}: {errors[0]}"

    def _touch(self, chunk: list[Insight]) -> None:
        """The chunk's UEs are live for another TTL."""
        until = time.monotonic() + self.sdl_ttl_ms / 1e3
        for x in chunk:
            ue = f"{x.ran_name}:{x.ue_id}"
            self.live[ue] = until
            self.live.move_to_end(ue)

    def _expired(self) -> list[str]:
        """The UEs whose mirror key has expired (least recently written first; at most MAX_UES remembered)."""
        now, gone = time.monotonic(), []
        while self.live and (len(self.live) > MAX_UES or next(iter(self.live.values())) <= now):
            gone.append(self.live.popitem(last=False)[0])
        return gone

    def prune(self) -> None:
        """Out of the set: the UEs whose mirror key has expired (checked whenever nothing waits to be
        written; a UE that another instance wrote since keeps its key, and stays)."""
        if not self.cfg.sdl_mirror or not self.live or next(iter(self.live.values())) > time.monotonic():
            return
        gone = self._expired()
        pipe = self.client.pipeline(transaction=False)
        for ue in gone:
            pipe.eval(GONE, 2, f"{self.sdl_prefix}{ue}", self.sdl_set, ue)
        try:
            pipe.execute()
        except (redis.RedisError, OSError):             # Redis away: try again at the next turn
            for ue in reversed(gone):
                self.live[ue] = 0.0
                self.live.move_to_end(ue, last=False)
            self.m.redis_errors.inc()

    def close(self) -> None:
        self.client.close()

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False
