"""`wmfm bench decode`: camera JPEG -> model input pixels, per camera resolution, every method in one run.

    opencv-reduced   wmfm.image.decode (what the cache and the xApp run): OpenCV decodes at the
                     smallest DCT scale (1/2, 1/4, 1/8) still >= the model input, then one area resize
    opencv-full      OpenCV at full size, then the same area resize (what the DCT scaling saves)
    pillow-draft     Pillow's draft mode (its DCT scaling), then bilinear with antialiasing
    pillow-full      Pillow at full size, then bilinear with antialiasing (a plain decode-and-resize)

Frames: the load generator's (the artifact's reference pictures at the camera size with sensor
noise, JPEG quality 85), so the sizes and entropy are those `wmfm bench xapp` sends. Each method
runs on one thread, in interleaved rounds (a noisy neighbour hits all alike); p50/p99 per frame,
the speed-up over pillow-full, and each method's mean absolute pixel difference from
opencv-reduced (the same picture, within JPEG's own error). JSON + a PNG chart.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from wmfm import image
from wmfm.artifact import Artifact

from .. import loadgen
from . import save

SIZES = ((320, 240), (1280, 720), (1920, 1080))
BASELINE = "pillow-full"


def _pillow(data: bytes, size: tuple[int, int], draft: bool) -> np.ndarray:
    h, w = size
    with Image.open(io.BytesIO(data)) as im:
        if draft:
            im.draft("RGB", (w, h))
        im = im.convert("RGB")
        return np.asarray(im.resize((w, h), Image.BILINEAR, reducing_gap=2.0))


def _opencv_full(data: bytes, size: tuple[int, int]) -> np.ndarray:
    bgr = image.cv2.imdecode(np.frombuffer(data, np.uint8), image.cv2.IMREAD_COLOR)
    return image.cv2.cvtColor(image.resize(bgr, size), image.cv2.COLOR_BGR2RGB)


METHODS = {
    "opencv-reduced": lambda data, size: image.decode(data, size),
    "opencv-full": _opencv_full,
    "pillow-draft": lambda data, size: _pillow(data, size, True),
    "pillow-full": lambda data, size: _pillow(data, size, False),
}


def run(artifact: str | Path, sizes=SIZES, calls: int = 200, rounds: int = 3, progress: bool = True) -> dict:
    from tqdm import tqdm
    art = Artifact.load(artifact)
    pre = art.manifest["preprocessing"]["image"]
    model = tuple(pre.get("source_size") or art.manifest["model_config"]["image_size"])     # (H, W) decoded to
    rows = []
    bar = tqdm(sizes, desc="bench decode", unit="size", disable=not progress)
    for w, h in bar:
        _, jpegs = loadgen.reference_inputs(art, (w, h))
        ref = [METHODS["opencv-reduced"](j, model) for j in jpegs]
        times = {m: [] for m in METHODS}
        for fn in METHODS.values():                               # warm-up
            for j in jpegs:
                fn(j, model)
        per_round = -(-calls // rounds)
        for _ in range(rounds):
            for m, fn in METHODS.items():
                bar.set_postfix_str(f"{w}x{h} {m}")
                for k in range(per_round):
                    j = jpegs[k % len(jpegs)]
                    t0 = time.perf_counter()
                    fn(j, model)
                    times[m].append(time.perf_counter() - t0)
        for m, fn in METHODS.items():
            t = np.asarray(times[m]) * 1e3
            diff = np.mean([np.abs(fn(j, model).astype(np.int16) - r).mean() for j, r in zip(jpegs, ref)])
            rows.append({"size": [w, h], "method": m, "calls": len(t), "p50_ms": float(np.percentile(t, 50)),
                         "p99_ms": float(np.percentile(t, 99)), "mean_ms": float(t.mean()),
                         "mean_abs_diff_vs_opencv_reduced": float(diff),
                         "jpeg_kb": round(float(np.mean([len(j) for j in jpegs])) / 1024, 1)})
    for r in rows:
        base = next(b["p50_ms"] for b in rows if b["size"] == r["size"] and b["method"] == BASELINE)
        r["speedup_vs_pillow_full"] = base / r["p50_ms"]
    return {"format": "wmfm-bench-decode/1", "artifact": str(artifact), "model_input": list(model),
            "decoder": image.DECODER, "opencv": image.cv2.__version__, "pillow": Image.__version__,
            "jpeg_quality": loadgen.QUALITY, "calls": calls, "rounds": rounds, "results": rows}


def table(rep: dict) -> str:
    rows = [f"{'camera':<11}{'KB':>6}  {'method':<16}{'p50 ms':>8}{'p99 ms':>8}{'vs pillow-full':>16}{'|diff|':>8}"]
    for r in rep["results"]:
        rows.append(f"{r['size'][0]}x{r['size'][1]:<6}{r['jpeg_kb']:>6.0f}  {r['method']:<16}{r['p50_ms']:>8.2f}"
                    f"{r['p99_ms']:>8.2f}{r['speedup_vs_pillow_full']:>15.2f}x"
                    f"{r['mean_abs_diff_vs_opencv_reduced']:>8.2f}")
    rows.append(f"to the model input {rep['model_input'][0]}x{rep['model_input'][1]}, one thread; |diff|: mean "
                "absolute pixel difference from opencv-reduced (8-bit levels)")
    return "\n".join(rows)


def plot(rep: dict, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sizes = sorted({tuple(r["size"]) for r in rep["results"]}, key=lambda s: s[0] * s[1])
    fig, ax = plt.subplots(figsize=(7.5, 4))
    w = 0.8 / len(METHODS)
    for i, m in enumerate(METHODS):
        rs = {tuple(r["size"]): r for r in rep["results"] if r["method"] == m}
        x = np.arange(len(sizes)) + i * w
        ax.bar(x, [rs[s]["p50_ms"] for s in sizes], w, label=m,
               yerr=[[0] * len(sizes), [rs[s]["p99_ms"] - rs[s]["p50_ms"] for s in sizes]], capsize=2)
    ax.set_xticks(np.arange(len(sizes)) + 0.4 - w / 2, [f"{a}x{b}" for a, b in sizes])
    ax.set_ylabel("ms per frame, one thread (bar p50, whisker p99)")
    ax.set_title(f"camera JPEG (q{rep['jpeg_quality']}) -> {rep['model_input'][0]}x{rep['model_input'][1]} model input")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(args) -> int:
    rep = run(args.artifact, tuple(args.sizes), args.calls, args.rounds, progress=not args.quiet)
    print(table(rep))
    if args.out:
        save(rep, args.out, plot)
    return 0
