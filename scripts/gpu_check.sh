#!/usr/bin/env bash
# GPU check (< 5 min on one GPU): parity + latency of the exported model with torch eager on
# CUDA, ONNX Runtime (CUDA provider when its GPU build is installed) and, where TensorRT is
# installed, the TensorRT backend in FP32 and FP16; torch eager on the CPU is the baseline.
# Writes one JSON (+ PNG): $OUT/gpu_check.json. On a host without an NVIDIA GPU: says so, exits 0.
#
#   scripts/gpu_check.sh [ARTIFACT]      # no ARTIFACT: the `cpu` preset's shapes with random weights
#                                        # (`wmfm export --random-init`, the deployed size, seconds)
#   PY=.venv/bin/python OUT=/tmp/gpu CALLS=1000 scripts/gpu_check.sh
set -euo pipefail
PY=${PY:-python3}
OUT=${OUT:-.cache/gpu_check}
CALLS=${CALLS:-1000}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU on this host: nothing to check"
    exit 0
fi
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
"$PY" - <<'PY' || true
import importlib
for m in ("torch", "onnxruntime", "tensorrt", "cuda.bindings"):
    try:
        mod = importlib.import_module(m); print(f"{m:14s}", getattr(mod, "__version__", "present"))
    except ImportError as e:
        print(f"{m:14s} missing ({e})")
PY

ARTIFACT=${1:-}
if [ -z "$ARTIFACT" ]; then
    "$PY" -m wmfm.cli export --random-init --preset cpu --out "$OUT/artifact" --fp16 --overwrite
    ARTIFACT=$OUT/artifact
fi
"$PY" -m wmfm.cli bench model --artifact "$ARTIFACT" --backends onnxruntime tensorrt torch \
    --calls "$CALLS" --out "$OUT/gpu_check.json" --quiet
