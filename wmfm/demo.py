"""`wmfm demo` (`make demo`): the whole system on embedded defaults, in one command.

    twin (250 scenes, every vehicle a UE), an unseen world and a 2-world corpus -> caches -> WMFM
    `tiny` experiment (report + model.pt) -> ONNX export (all reused from OUT when already there)
    -> embedded redis-server + the xApp (a child process, loopback) -> replay of the test split's
    trajectories at real time -> scores, pictures, the xApp's stage breakdown -> everything shut
    down (the xApp drains, exits 0)

Composed here, at the top, because it spans sim, model and xapp (DESIGN.md's import rule).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path


def _artifact(out: Path, progress: bool, log=print):
    """OUT/artifact (an Artifact) when it loads (hashes verified), else the tiny experiment + export."""
    from wmfm.artifact import Artifact, ArtifactError
    art = out / "artifact"
    if (art / "manifest.json").is_file() and (out / "data" / "twin").is_dir() and (out / "data" / "cache").is_dir():
        try:
            loaded = Artifact.load(art)
            log(f"artifact  {art} (reused; delete it to retrain)")
            return loaded
        except ArtifactError as exc:
            log(f"artifact  {art} does not load ({exc}): rebuilding it")
    from wmfm import pipeline
    from wmfm.model.experiment import load_config
    from wmfm.model.export import export
    from wmfm.model.train import set_threads
    t0 = time.monotonic()
    log("train     the `tiny` preset: twin worlds -> caches + corpus -> WMFM pretraining -> heads + E2E sweep "
        "(~5.5 min on 2 cores)")
    set_threads()
    rep = pipeline.run(load_config("tiny", None), out, progress=progress, preset_name="tiny")
    h = rep["summary"]["headline"]
    log(f"report    {out / 'report.md'}: LoS BA WMFM {h['wmfm_los_ba']:.3f} vs E2E {h['e2e_los_ba']:.3f}, "
        f"loc error {h['wmfm_loc_mean_error_m']:.2f} m vs {h['e2e_loc_mean_error_m']:.2f} m")
    exported = export(out / "model.pt", art, overwrite=True)
    log(f"export    {art} (ONNX + manifest, parity checked) in {time.monotonic() - t0:.0f} s")
    return exported


def xapp_overrides(rec) -> list[str]:
    """The xApp controls for replaying `rec`: its camera (frame size checked), and a report may wait
    up to 20 ms (instead of the default 1 ms) while the xApp decodes its frame. The replay sends a
    scene's frame and its CSI at the same instant, so pairing then does not depend on how busy this
    2-core machine is (the twin's frames are 0.5 s apart: missing one means csi_only)."""
    return [f"cameras={json.dumps(rec.cameras_control())}", "sync.deadline_ms=20"]


def run(out: str | Path = ".cache/demo", speed: float = 1.0, progress: bool = True, log=print) -> dict:
    from wmfm.sim import recording, replay, report
    from wmfm.sim.player import ReplayConfig
    from wmfm.sim.spawn import XAppProcess
    from wmfm.xapp.redis_server import EmbeddedRedis

    out = Path(out)
    t_all = time.monotonic()
    art = _artifact(out, progress, log)
    scenario, cache = out / "data" / "twin", out / "data" / "cache"
    rec = recording.load(scenario, "test", cache, progress=progress)
    overrides = xapp_overrides(rec)
    with tempfile.TemporaryDirectory(prefix="wmfm-demo-") as tmp, EmbeddedRedis(Path(tmp) / "redis") as srv:
        with XAppProcess(art.root, srv.url, overrides, out / "xapp.log") as xapp:
            log(f"xapp      up: model {art.version}, redis {srv.url} (embedded), "
                f"indications {xapp.endpoints['indications']}, frames {xapp.endpoints['frames']}, "
                f"metrics {xapp.metrics_url}; log {out / 'xapp.log'}")
            log(f"replay    {rec.n_reports} UE reports in {len(rec.scenes)} test scenes at {speed:g}x real time "
                f"(~{len(rec.scenes) * rec.period_s / speed:.0f} s)")
            summary = replay.replay(rec, xapp.endpoints["indications"], xapp.endpoints["frames"], srv.url,
                                    ReplayConfig(speed=speed), metrics_url=xapp.metrics_url,
                                    out=out / "replay", progress=progress)
            code = xapp.stop()
    log(report.text(summary))
    log(f"pictures  {', '.join(summary.get('plots', []))}")
    log(f"summary   {out / 'replay' / 'replay.json'}; xApp exited {code}; demo took "
        f"{time.monotonic() - t_all:.0f} s")
    summary["xapp_exit_code"] = code
    return summary
