"""The xApp seen from outside, through its HTTP surface (xapp/status.py): what it counted during a
run (counter deltas between two scrapes of /ric/v1/metrics, the stage latency breakdown), and
where it writes (/ric/v1/config: its Redis and SDL namespace). Used by the replay and the benchmarks.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request

from wmfm.config import ConfigError

STAGES = (("decode", "decode (CSI; frame headers)"), ("frame_decode", "frame decode (worker)"),
          ("frame_embed", "frame embedding (worker)"),
          ("sync_wait", "sync wait"), ("queue", "batch wait"), ("infer", "inference (batch)"),
          ("redis", "Redis write (batch)"))


def scrape(url: str) -> dict:
    """The xApp's Prometheus text -> {(metric, frozenset(labels)): value} of every sample."""
    from prometheus_client.parser import text_string_to_metric_families
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    except (OSError, ValueError) as exc:                 # URLError, connection refused, timeout, bad URL
        raise ConfigError(f"--metrics {url}: {exc}") from None
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def total(scrapes: list[dict]) -> dict:
    """The sum of several instances' scrapes (sample by sample)."""
    out: dict = {}
    for d in scrapes:
        for k, v in d.items():
            out[k] = out.get(k, 0.0) + v
    return out


def config_url(metrics_url: str) -> str:
    """http://host:8080/ric/v1/metrics -> http://host:8080/ric/v1/config."""
    base, sep, _ = metrics_url.rstrip("/").rpartition("/metrics")
    if not sep:
        raise ConfigError(f"--metrics {metrics_url}: expected a URL ending in /ric/v1/metrics")
    return base + "/config"


def xapp_config(metrics_url: str) -> dict:
    """The xApp's /ric/v1/config (its effective controls, model, endpoints, Redis, namespace)."""
    url = config_url(metrics_url)
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read().decode())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--metrics: cannot read the xApp's config at {url}: {exc}") from None


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
    frames: dict[str, dict[str, int]] = {}
    for (n, lab), v in d.items():
        if n == "wmfm_frames_total" and v:
            lab = dict(lab)
            frames.setdefault(lab["camera"], {})[lab["result"]] = int(v)
    return {"indications": int(total("wmfm_messages_total", socket="indications")),
            "frames": int(total("wmfm_messages_total", socket="frames")),
            "decode_errors": by("wmfm_decode_errors_total", "reason"), "sn_events": by("wmfm_sn_events_total", "event"),
            "sn_missing": int(total("wmfm_sn_missing_total")), "sync": by("wmfm_sync_total", "result"),
            "dropped": by("wmfm_dropped_total", "reason"), "skipped": by("wmfm_skipped_total", "reason"),
            "insights": by("wmfm_insights_total", "mode"),
            "redis_errors": int(total("wmfm_redis_errors_total")),
            "frames_by_camera": dict(sorted(frames.items())),
            "frame_worker_cpu_s": total("wmfm_frame_worker_cpu_seconds_total"),
            "frame_embeds": by("wmfm_frame_embeds_total", "path"),
            "cpu_s": total("process_cpu_seconds_total"), "stages": stages}


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
