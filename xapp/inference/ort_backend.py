"""ONNX Runtime: the CPU default (CUDA execution provider when the GPU build finds a GPU)."""

from __future__ import annotations

import numpy as np

from wmfm.artifact import Artifact
from wmfm.config import ConfigError

from .base import Backend


class OnnxRuntimeBackend(Backend):
    """Options: `threads` (intra-op threads, default ORT's: one per physical core),
    `providers` (default CUDA then CPU when CUDA is available, else CPU),
    `precision` "fp32" | "fp16" (the mixed-precision encoders, when exported with --fp16),
    `spinning` (intra-op threads busy-wait for work after a run; default off).

    Spinning is off because each of the four sessions has its own thread pool: a pool that
    spins after the CSI encoder steals the cores the image encoder then needs. Measured on the
    2-core host, fused path of the 1.9 M-parameter model, 2 threads: 1.84 -> 1.13 ms at batch 1,
    15.9 -> 7.0 ms at batch 8 with spinning turned off."""

    name = "onnxruntime"

    @classmethod
    def unavailable(cls) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnxruntime is not installed (pip install onnxruntime)"
        return None

    @classmethod
    def options(cls, cfg) -> dict:
        return {"precision": cfg.precision, "threads": cfg.threads or None}

    def __init__(self, artifact: Artifact, threads: int | None = None, providers: list[str] | None = None,
                 precision: str = "fp32", spinning: bool = False):
        super().__init__(artifact)
        import onnxruntime as ort
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"precision: expected fp32 or fp16, got {precision!r}")
        if providers is None:
            have = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in have]
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1              # the graphs are chains: no parallel branches to run
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self.precision, self.threads, self.spinning = precision, threads, spinning
        self.sessions, self.outputs = {}, {}
        for name, g in self.graphs.items():
            file = g.fp16_file if precision == "fp16" and g.fp16_file else g.file
            if precision == "fp16" and name.endswith("_encoder") and not g.fp16_file:
                raise ConfigError(f"backend precision fp16: {artifact.root} has no fp16 graphs (export with --fp16)")
            self.sessions[name] = ort.InferenceSession(str(artifact.path(file)), opts, providers=providers)
            self.outputs[name] = [s.name for s in g.outputs]
        self.providers = self.sessions["csi_encoder"].get_providers()

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.sessions[graph].run(self.outputs[graph], feeds)

    def describe(self) -> dict:
        import onnxruntime as ort
        return {"backend": self.name, "version": ort.__version__, "providers": self.providers,
                "precision": self.precision, "threads": self.threads or "default", "spinning": self.spinning}
