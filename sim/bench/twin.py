"""`wmfm bench twin`: the twin generator (and the cache build) against the clock.

Runs the generator pinned to one core (it is single-threaded) and reports scenes per second and
UE samples per second (a scene holds several UEs), with a per-stage breakdown measured on the
same world in a second pass; `--cache` also times `wmfm dataset build` on the generated scenario.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path


def stage_breakdown(n: int, seed: int) -> dict:
    """Mean milliseconds per scene of each stage, without file writing."""
    import io

    from PIL import Image

    from ..twin.generate import Twin
    from ..twin.params import TwinConfig
    from ..twin.writer import mat_bytes, path_cell

    twin = Twin(TwinConfig(), seed)
    t = dict.fromkeys(("traffic", "trace", "render", "encode"), 0.0)
    for _ in range(n):
        t0 = time.perf_counter()
        twin.advance(twin.cfg.scene_period_s)
        rows = twin.select_ues()
        t1 = time.perf_counter()
        mats = [twin.tracers[0].trace(twin.traffic.v, r).matrix() for r in rows]
        t2 = time.perf_counter()
        img = twin.renderers[0].render(twin.traffic.v, twin.frame_rng)
        t3 = time.perf_counter()
        mat_bytes({"channels": path_cell(mats)})
        Image.fromarray(img).save(io.BytesIO(), format="JPEG", quality=90)
        t4 = time.perf_counter()
        for k, a, b in (("traffic", t0, t1), ("trace", t1, t2), ("render", t2, t3), ("encode", t3, t4)):
            t[k] += b - a
    return {k: round(v / n * 1e3, 3) for k, v in t.items()}


def run(scenes: int, seed: int = 0, cache: bool = False) -> dict:
    """Scenes and UE samples per second pinned to one core, the stage breakdown, and (`cache`)
    the cache build time."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from ..twin.generate import generate

    result = {"scenes": scenes, "cores": 1}
    with tempfile.TemporaryDirectory() as tmp:
        s = generate(Path(tmp), "bench", scenes, seed, progress=False)
        result.update({"generate_seconds": s["seconds"], "scenes_per_s": s["scenes_per_s"],
                       "ues": s["ues"], "ues_per_s": round(s["ues"] / s["seconds"], 1),
                       "mean_ues_per_scene": round(s["ues"] / scenes, 2),
                       "nlos_share": s["nlos_share"], "mean_vehicles_on_road": s["mean_vehicles_on_road"]})
        result["stage_ms_per_scene"] = stage_breakdown(min(scenes, 500), seed)
        if cache:
            from ..dataset import build

            t0 = time.perf_counter()
            meta = build(Path(tmp) / "bench", Path(tmp) / "cache", progress=False)
            result["cache_build_seconds"] = round(time.perf_counter() - t0, 2)
            result["cache_samples"] = meta["samples"]
            result["cache_bytes"] = int(sum(f.stat().st_size for f in (Path(tmp) / "cache").iterdir()))
    return result


def main(args) -> int:
    result = run(args.scenes, args.seed, args.cache)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0
