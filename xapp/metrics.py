"""Prometheus metrics of the xApp (one registry per app instance), served at /ric/v1/metrics, and
reading them back from that endpoint (replay, bench): counter deltas and the stage breakdown."""

from __future__ import annotations

import math
import urllib.request

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_MS = (0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.messages = Counter("wmfm_messages", "messages received, by socket", ["socket"], registry=r)
        self.reports = Counter("wmfm_ue_reports", "UE CSI reports decoded", registry=r)
        self.decode_errors = Counter("wmfm_decode_errors", "messages dropped by the codec, by socket and reason",
                                     ["socket", "reason"], registry=r)
        self.sn = Counter("wmfm_sn_events", "indication SN anomalies: gap, duplicate (dropped), out_of_order",
                          ["event"], registry=r)
        self.sn_missing = Counter("wmfm_sn_missing", "indications missing according to SN gaps", registry=r)
        self.sync = Counter("wmfm_sync", "CSI reports by pairing result: fused or csi_only (no frame in time)",
                            ["result"], registry=r)
        self.skipped = Counter("wmfm_skipped", "indications left to another instance, by reason (other_cell)",
                               ["reason"], registry=r)
        self.dropped = Counter("wmfm_dropped", "UE reports dropped after decoding, by reason", ["reason"], registry=r)
        self.insights = Counter("wmfm_insights", "insights produced, by mode", ["mode"], registry=r)
        self.batch = Histogram("wmfm_batch_size", "UEs per inference batch", registry=r,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.stage = Histogram("wmfm_stage_seconds",
                               "time per stage: decode, frame_embed, sync_wait, queue, infer, redis",
                               ["stage"], registry=r, buckets=_MS)
        self.e2e = Histogram("wmfm_e2e_latency_seconds", "CSI collection time (source clock) to the Redis write",
                             registry=r, buckets=_MS)
        self.latency = Histogram("wmfm_latency_seconds", "message received to the Redis write (this host's clock)",
                                 registry=r, buckets=_MS)
        self.redis_errors = Counter("wmfm_redis_errors", "failed Redis round trips", registry=r)
        self.redis_dropped = Counter("wmfm_redis_dropped", "insights dropped because the buffer was full", registry=r)
        self.redis_buffer = Gauge("wmfm_redis_buffer_depth", "insights waiting for Redis", registry=r)
        self.queue = Gauge("wmfm_queue_depth", "UE reports waiting for inference", registry=r)
        self.waiting = Gauge("wmfm_sync_waiting", "UE reports waiting for a camera frame", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


STAGES = (("decode", "decode (CSI + frames)"), ("frame_embed", "frame embedding (worker)"),
          ("sync_wait", "sync wait"), ("queue", "batch wait"), ("infer", "inference (batch)"),
          ("redis", "Redis write (batch)"))


def scrape(url: str) -> dict:
    """The xApp's Prometheus text -> {(metric, frozenset(labels)): value} of every sample."""
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def metrics_delta(before: dict, after: dict) -> dict:
    """What the xApp counted between two scrapes, and its latency breakdown by stage (p50/p99
    interpolated within the histogram buckets, as Prometheus' histogram_quantile does)."""
    d = {k: v - before.get(k, 0.0) for k, v in after.items() if not k[0].endswith("_created")}

    def total(name: str, **labels) -> float:
        want = set(labels.items())
        return sum(v for (n, lab), v in d.items() if n == name and want <= set(lab))

    def by(name: str, label: str) -> dict:
        out: dict[str, float] = {}
        for (n, lab), v in d.items():
            if n == name and v:
                key = dict(lab).get(label, "")
                out[key] = out.get(key, 0.0) + v
        return {k: int(v) for k, v in sorted(out.items())}

    def hist(name: str, title: str, **labels) -> dict | None:
        n = total(f"{name}_count", **labels)
        if not n:
            return None
        want = set(labels.items())
        buckets = sorted((float(dict(lab)["le"]), v) for (m, lab), v in d.items()
                         if m == f"{name}_bucket" and want <= set(lab))
        return {"title": title, "count": int(n), "mean_ms": 1e3 * total(f"{name}_sum", **labels) / n,
                "p50_ms": 1e3 * _quantile(buckets, 0.5), "p99_ms": 1e3 * _quantile(buckets, 0.99)}

    stages = {stage: h for stage, title in STAGES if (h := hist("wmfm_stage_seconds", title, stage=stage))}
    for name, key, title in (("wmfm_latency_seconds", "in_xapp", "received -> Redis write"),
                             ("wmfm_e2e_latency_seconds", "e2e", "CSI collection -> Redis write")):
        if h := hist(name, title):
            stages[key] = h
    return {"indications": int(total("wmfm_messages_total", socket="indications")),
            "frames": int(total("wmfm_messages_total", socket="frames")),
            "decode_errors": by("wmfm_decode_errors_total", "reason"), "sn_events": by("wmfm_sn_events_total", "event"),
            "sn_missing": int(total("wmfm_sn_missing_total")), "sync": by("wmfm_sync_total", "result"),
            "dropped": by("wmfm_dropped_total", "reason"), "skipped": by("wmfm_skipped_total", "reason"),
            "insights": by("wmfm_insights_total", "mode"),
            "redis_errors": int(total("wmfm_redis_errors_total")), "stages": stages}


def _quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus histogram_quantile: linear within the bucket holding the q-th observation."""
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    rank, prev_le, prev_n = q * buckets[-1][1], 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_n) / max(n - prev_n, 1e-12)
        prev_le, prev_n = le, n
    return prev_le


def stage_table(m: dict) -> str:
    rows = [f"{'xApp stage':<28}{'count':>8}{'mean ms':>10}{'p50 ms':>9}{'p99 ms':>9}"]
    for s in m["stages"].values():
        rows.append(f"{s['title']:<28}{s['count']:>8}{s['mean_ms']:>10.3f}{s['p50_ms']:>9.3f}{s['p99_ms']:>9.3f}")
    return "\n".join(rows)
