"""`wmfm replay` (also `python sim/replay.py`): a Recording played into running xApp(s), with live
scoring of what they publish.

    recording.py   the scenes (a DeepVerse6G scenario through `deepverse`, or a synthetic load)
    player.py      pacing, realism knobs, ZeroMQ to the xApp(s)
    scorer.py      the insights read back from Redis, matched to the truth of each (UE, SN)
    probe.py       what the xApp counted (its metrics before and after), where it writes (its config)
    report.py      replay.json, insights.csv, the pictures, the text summary

The scorer sees all instances through their shared Redis: each insight must arrive exactly once.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from wmfm.config import ConfigError

from . import probe, report
from .player import Player, ReplayConfig
from .recording import Recording
from .scorer import Scorer, scores

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def find_redis(metrics_url: str | None) -> tuple[str, str | None]:
    """(Redis URL, SDL namespace) the xApp at ``metrics_url`` writes to, from its /ric/v1/config;
    without a metrics URL, the machine's default Redis (and the namespace left to the caller)."""
    if not metrics_url:
        return DEFAULT_REDIS, None
    cfg = probe.xapp_config(metrics_url.split(",")[0].strip())
    url = cfg.get("redis") or ""
    if "***" in url:
        raise ConfigError(f"--redis: the xApp at {metrics_url} writes to {url} with a password it does not show; "
                          "pass --redis with the credentials")
    if not url:
        raise ConfigError(f"--redis: the xApp at {metrics_url} does not say where it writes; pass --redis")
    return url, cfg.get("namespace")


def find_encoding(metrics_url: str | None) -> str:
    """The indication encoding the xApp at ``metrics_url`` takes (its /ric/v1/config); protobuf without one."""
    if not metrics_url:
        return "protobuf"
    cfg = probe.xapp_config(metrics_url.split(",")[0].strip())
    return ((cfg.get("config") or {}).get("indications") or {}).get("encoding") or "protobuf"


def replay(rec: Recording, indications: str | list[str], frames: str | list[str], redis_url: str, cfg: ReplayConfig,
           metrics_url: str | None = None, namespace: str = "wmfm", out: Path | None = None,
           progress: bool = True) -> dict:
    """Play ``rec`` into running xApp(s), score what they publish; the summary (+ files in ``out``).

    Ctrl-C stops the sending: the summary (``interrupted``) and the files cover what was sent."""
    from tqdm import tqdm
    urls = [u.strip() for u in metrics_url.split(",")] if metrics_url else []
    before = [probe.scrape(u) for u in urls]
    scorer = Scorer(redis_url, namespace, cfg.ran_name)
    try:
        player = Player(rec, indications, frames, cfg, scorer)
    except BaseException:
        scorer.r.close()
        raise
    scorer.start()
    total = cfg.count if cfg.count is not None else (None if cfg.loop else rec.n_reports)
    bar = tqdm(total=total, desc="replay", unit="UE", disable=not progress, dynamic_ncols=True)
    last = [0.0]

    def tick(n: int) -> None:
        bar.n = n
        if time.monotonic() - last[0] > 0.5:
            last[0] = time.monotonic()
            bar.set_postfix_str(scorer.live(), refresh=False)
            bar.refresh()
    t0 = time.monotonic()
    interrupted = False
    try:
        player.run(tick)
        last_n, last_t = -1, time.monotonic()        # the last insights: all in, or none for settle_s
        while scorer.outstanding() and time.monotonic() - last_t < cfg.settle_s:
            if scorer.received() != last_n:
                last_n, last_t = scorer.received(), time.monotonic()
            time.sleep(0.05)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        player.close(linger=0 if interrupted else None)
        scorer.stop()
        bar.n = player.counts["reports"]
        bar.set_postfix_str(scorer.live())
        bar.close()
    sent = player.counts
    rows = scorer.rows
    summary = {"format": "wmfm-replay/2", "scenario": rec.scenario, "split": rec.split,
               "cameras": list(rec.cameras), "scene_period_s": rec.period_s, "config": asdict(cfg),
               "wall_s": time.monotonic() - t0, "interrupted": interrupted,
               "sent": {k: v for k, v in sent.items() if k != "send_s"}, "send_s": sent.get("send_s", 0.0),
               "received": len(rows), "lost": sent["reports"] - len(rows), "unexpected": scorer.unexpected,
               "stalled": player.stalled, "throughput_per_s": _throughput(rows, player.first_send_ns),
               "csi_only_share": float(np.mean([r["mode"] == "csi_only" for r in rows])) if rows else None,
               "scores": scores(rows),
               "by_mode": {m: scores([r for r in rows if r["mode"] == m]) for m in ("fused", "csi_only")}}
    if urls and not interrupted:                     # several instances: their sum, and each one
        after = [probe.scrape(u) for u in urls]
        summary["xapp"] = probe.metrics_delta(probe.total(before), probe.total(after))
        if len(urls) > 1:
            summary["instances"] = [{"metrics": u} | probe.metrics_delta(b, a) for u, b, a in zip(urls, before, after)]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        summary["plots"] = [str(p) for p in report.plots(rows, rec, summary, out)]
        (out / "replay.json").write_text(json.dumps(summary, indent=2, default=_plain))
        report.write_rows(rows, out / "insights.csv")
    summary["_rows"] = rows
    return summary


def failure(summary: dict, redis_url: str) -> str | None:
    """Why a finished replay failed, as a hint to the user (None: it did not)."""
    if summary["stalled"]:
        return "the xApp took nothing for 10 s: is it running, at these endpoints?"
    if summary["sent"]["reports"] and not summary["received"]:
        return (f"no insight came back from {redis_url} (stream {{ns}},insights): is the xApp writing there? Give "
                "--metrics http://<xapp>:8080/ric/v1/metrics and the replay reads the xApp's own Redis from it")
    return None


def _throughput(rows: list[dict], first_send_ns: int) -> float:
    """Insights per second, from the first send to the last insight read back."""
    if not rows:
        return 0.0
    return len(rows) / max(1e-9, (max(r["arrival_ns"] for r in rows) - first_send_ns) / 1e9)


def _plain(v):
    """JSON for numpy scalars and arrays."""
    return v.tolist() if isinstance(v, np.ndarray) else float(v)


if __name__ == "__main__":                     # `python sim/replay.py ...` = `wmfm replay ...`
    import sys

    from wmfm.cli import main
    sys.exit(main(["replay", *sys.argv[1:]]))
