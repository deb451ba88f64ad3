"""Would one ONNX Runtime call for the CSI encoder and the fused heads beat two? The artifact's
two graphs are merged (onnx.compose, the encoder's feature/embedding wired into the heads) and
both ways are timed on one thread, interleaved in 5 rounds, at batch 1 and 8, with the same
outputs checked.

    .venv/bin/python scripts/one_call.py [ARTIFACT]        (default .cache/cpu-random)
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import compose

art = Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/cpu-random")
enc, heads = onnx.load(str(art / "csi_encoder.onnx")), onnx.load(str(art / "heads_fused.onnx"))
merged = compose.merge_models(compose.add_prefix(enc, "e_"), compose.add_prefix(heads, "h_"),
                              io_map=[("e_feature", "h_csi_feature"), ("e_embedding", "h_csi_embedding")])
opts = ort.SessionOptions()
opts.intra_op_num_threads = opts.inter_op_num_threads = 1          # as the xApp runs them (backend.threads 1)
opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
with tempfile.TemporaryDirectory() as tmp:
    onnx.save(merged, f"{tmp}/merged.onnx")
    s_enc, s_heads, s_one = (ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
                             for p in (art / "csi_encoder.onnx", art / "heads_fused.onnx", f"{tmp}/merged.onnx"))
ref = np.load(art / "reference.npz")
dim = heads.graph.input[2].type.tensor_type.shape.dim[2].dim_value
for b in (1, 8):
    csi = np.ascontiguousarray(ref["csi"][np.arange(b) % len(ref["csi"])])
    tok = np.random.default_rng(0).standard_normal((b, 64, dim)).astype(np.float32)

    def two(csi=csi, tok=tok):
        f, e = s_enc.run(["feature", "embedding"], {"csi": csi})
        return s_heads.run(None, {"csi_feature": f, "csi_embedding": e, "image_tokens": tok})

    def one(csi=csi, tok=tok):
        return s_one.run(None, {"e_csi": csi, "h_image_tokens": tok})

    assert all(np.array_equal(x, y) for x, y in zip(two(), one()))
    times = {"two calls": [], "one call": []}
    for _ in range(5):
        for name, fn in (("two calls", two), ("one call", one)):
            for _ in range(300):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    p50 = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    figures = ", ".join(f"{k} p50 {v:.3f} ms p99 {1e3 * np.percentile(times[k], 99):.3f} ms" for k, v in p50.items())
    print(f"batch {b}: {figures}; one call saves {1 - p50['one call'] / p50['two calls']:.1%}")
