"""`wmfm bench model`: latency and throughput of every available backend vs torch eager.

For each backend and for torch eager in the same run, on the artifact's reference inputs
(reference.npz: held-out samples, or synthetic ones for a `--random-init` artifact):
- batch 1: p50/p99 latency over `calls` (>= 1000 by default) timed calls after warm-up, of the
  CSI encoder, the image encoder, the fused heads, and the fused path (both encoders + heads);
- batch 8 and 32: the same figures and the throughput (samples/s).
Backends are timed in interleaved rounds (each round runs every backend once per
component) so that a noisy neighbour on a shared host hits all of them alike.
Each backend's parity with the export-time torch outputs (reference.npz) goes in the same
report, so a GPU run (scripts/gpu_check.sh) shows speed and correctness together.
Writes JSON (`results`, `speedup_vs_torch_eager`, `parity`) and a bar chart next to it.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
from wmfm.xapp import inference

from wmfm.artifact import Artifact

from . import save

COMPONENTS = ("csi", "image", "heads", "fused")
BASELINE = "torch-eager"


def _calls(backend, batch: dict[str, np.ndarray]):
    """{component: zero-argument callable} on fixed inputs."""
    z = backend.embed_csi(batch["csi"])
    tok = backend.embed_image(batch["image"]).tokens
    return {"csi": lambda: backend.embed_csi(batch["csi"]),
            "image": lambda: backend.embed_image(batch["image"]),
            "heads": lambda: backend.heads(z, tok),
            "fused": lambda: backend.fused(batch["csi"], batch["image"])}


def _inputs(ref: dict[str, np.ndarray], b: int) -> dict[str, np.ndarray]:
    idx = np.arange(b) % len(ref["csi"])
    return {"csi": np.ascontiguousarray(ref["csi"][idx]), "image": np.ascontiguousarray(ref["image"][idx])}


def open_backends(artifact: Artifact, names: list[str] | None, threads: int | None, log=print) -> dict:
    """{label: backend}: the baseline torch eager (CPU) plus every requested/available backend."""
    chosen = {}
    opts = {"threads": threads} if threads else {}
    chosen[BASELINE] = inference.load("torch", artifact, **opts)
    wanted = names or ["onnxruntime", "tensorrt"]
    for name in wanted:
        why = inference.available(name)
        if why is not None:
            log(f"skipping {name}: {why}")
            continue
        if name == "onnxruntime":
            chosen["onnxruntime"] = inference.load(name, artifact, **opts)
        elif name == "tensorrt":
            chosen["tensorrt"] = inference.load(name, artifact)
            if artifact.graphs["csi_encoder"].fp16_file:
                chosen["tensorrt-fp16"] = inference.load(name, artifact, precision="fp16")
        elif name == "torch":
            import torch
            if torch.cuda.is_available():
                chosen["torch-eager-cuda"] = inference.load("torch", artifact, device="cuda")
    return chosen


def _time(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def run(artifact: str | Path, backends: list[str] | None = None, calls: int = 1000, batches=(1, 8, 32),
        rounds: int = 3, threads: int | None = None, progress: bool = True, log=print) -> dict:
    from tqdm import tqdm
    art = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact)
    ref = art.reference()
    if ref is None:
        raise FileNotFoundError(f"{art.root}: reference.npz missing (re-export the artifact)")
    chosen = open_backends(art, backends, threads, log)
    results = []
    jobs = [(b, c) for b in batches for c in COMPONENTS]
    bar = tqdm(jobs, desc="bench model", disable=not progress, unit="case")
    for b, comp in bar:
        n = calls if b == 1 else max(50, calls // (4 * b) * 4)
        fns = {label: _calls(be, _inputs(ref, b))[comp] for label, be in chosen.items()}
        for fn in fns.values():                               # warm-up: allocations, graph capture, caches
            _time(fn, max(20, n // 20))
        times = {label: [] for label in fns}
        per_round = -(-n // rounds)
        for _ in range(rounds):
            for label, fn in fns.items():
                bar.set_postfix_str(f"batch {b} {comp} {label}")
                times[label] += _time(fn, per_round)
        for label, t in times.items():
            t = np.asarray(t) * 1e3
            results.append({"backend": label, "component": comp, "batch": b, "calls": len(t),
                            "p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99)),
                            "mean_ms": float(t.mean()), "throughput_per_s": float(b * 1e3 / t.mean())})
    base = next(r["p50_ms"] for r in results if r["backend"] == BASELINE and r["component"] == "fused"
                and r["batch"] == 1)
    speedup = {r["backend"]: base / r["p50_ms"] for r in results
               if r["component"] == "fused" and r["batch"] == 1 and r["backend"] != BASELINE}
    parity = {label: be.self_test() for label, be in chosen.items()}
    report = {"format": "wmfm-bench-model/1", "artifact": str(art.root), "model": art.version,
              "parameters": art.manifest["model"].get("parameters"),
              "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                       "gpu": _gpu()},
              "backends": {label: be.describe() for label, be in chosen.items()},
              "calls_batch1": calls, "rounds": rounds, "results": results, "speedup_vs_torch_eager": speedup,
              "parity": parity}
    for be in chosen.values():
        be.close()
    return report


def _gpu() -> str | None:
    try:
        import torch
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        return None


def table(report: dict) -> str:
    rows = [f"{'backend':<18}{'component':<10}{'batch':>6}{'p50 ms':>10}{'p99 ms':>10}{'samples/s':>12}"]
    for r in report["results"]:
        rows.append(f"{r['backend']:<18}{r['component']:<10}{r['batch']:>6}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}"
                    f"{r['throughput_per_s']:>12.0f}")
    for label, p in report["parity"].items():
        rows.append(f"parity {label:<18} vs export-time torch on {p['samples']} reference samples: LoS agreement "
                    f"{min(p['heads_fused']['los_agreement'], p['heads_csi']['los_agreement']):.3f}, position error "
                    f"<= {max(p['heads_fused']['position_max_err_m'], p['heads_csi']['position_max_err_m']):.2g} m, "
                    f"largest max-abs diff {max(p['max_abs_diff'].values()):.2g}")
    rows.append("speed-up over torch eager (fused, batch 1, p50): "
                + ", ".join(f"{k} {v:.2f}x" for k, v in report["speedup_vs_torch_eager"].items()))
    return "\n".join(rows)


def plot(report: dict, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = list(report["backends"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    w = 0.8 / len(labels)
    for i, label in enumerate(labels):
        rs = {r["component"]: r for r in report["results"] if r["backend"] == label and r["batch"] == 1}
        x = np.arange(len(COMPONENTS)) + i * w
        axes[0].bar(x, [rs[c]["p50_ms"] for c in COMPONENTS], w, label=label,
                    yerr=[[0] * len(COMPONENTS), [rs[c]["p99_ms"] - rs[c]["p50_ms"] for c in COMPONENTS]], capsize=2)
        fused = sorted((r["batch"], r["throughput_per_s"]) for r in report["results"]
                       if r["backend"] == label and r["component"] == "fused")
        axes[1].plot([b for b, _ in fused], [t for _, t in fused], "o-", label=label)
    axes[0].set_xticks(np.arange(len(COMPONENTS)) + 0.4 - w / 2, COMPONENTS)
    axes[0].set_ylabel("batch-1 latency, ms (bar p50, whisker p99)")
    axes[1].set_xscale("log", base=2)
    axes[1].set_xlabel("batch")
    axes[1].set_ylabel("fused samples / s")
    axes[0].legend()
    axes[1].legend()
    fig.suptitle(f"{report['model']} ({report['parameters']:,} parameters)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(args) -> int:
    report = run(args.artifact, args.backends, args.calls, rounds=args.rounds, threads=args.threads,
                 progress=not args.quiet)
    print(table(report))
    if args.out:
        save(report, args.out, plot)
    return 0
