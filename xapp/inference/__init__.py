"""Inference backends, chosen by name from one table and imported lazily.

    from wmfm.xapp.inference import load
    backend = load("auto", "artifacts/wmfm")       # verifies the manifest hashes first
    backend = from_controls(cfg.backend, artifact) # as the xApp does: options from its controls

| name          | runs                                                                  | needs                      |
|---------------|-----------------------------------------------------------------------|----------------------------|
| `onnxruntime` | the ONNX graphs; CUDA execution provider when present, else CPU       | onnxruntime                |
| `tensorrt`    | engines built from the ONNX graphs (strongly typed, cached on disk)   | tensorrt, cuda-python, GPU |
| `torch`       | the checkpoint in eager PyTorch: the reference, for parity/debugging  | torch                      |
| `auto`        | `tensorrt` when it and a GPU are present, else `onnxruntime`          |                            |
"""

from __future__ import annotations

import importlib
from pathlib import Path

from wmfm.artifact import Artifact, ArtifactError, InputError
from wmfm.config import ConfigError

from .base import Backend, Encoded, HeadsOut

BACKENDS = {
    "onnxruntime": "wmfm.xapp.inference.ort_backend:OnnxRuntimeBackend",
    "tensorrt": "wmfm.xapp.inference.trt_backend:TensorRTBackend",
    "torch": "wmfm.xapp.inference.torch_backend:TorchBackend",
}
NAMES = (*BACKENDS, "auto")

__all__ = ["BACKENDS", "NAMES", "Artifact", "ArtifactError", "Backend", "Encoded", "HeadsOut", "InputError",
           "available", "from_controls", "load", "resolve"]


class BackendUnavailable(ConfigError):
    """The backend's library or device is not on this host (message says which)."""


def backend_class(name: str) -> type[Backend]:
    if name not in BACKENDS:
        raise ValueError(f"backend: expected one of {list(NAMES)}, got {name!r}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def available(name: str) -> str | None:
    """None when `name` can run here, else the reason it cannot."""
    return backend_class(name).unavailable()


def resolve(name: str) -> str:
    """`auto` -> `tensorrt` when it can run here, else `onnxruntime`; other names unchanged."""
    if name != "auto":
        backend_class(name)
        return name
    return "tensorrt" if available("tensorrt") is None else "onnxruntime"


def load(name: str, artifact: str | Path | Artifact, **options) -> Backend:
    """A ready backend for the artifact (hashes verified when given a path)."""
    name = resolve(name)
    cls = backend_class(name)
    why = cls.unavailable()
    if why is not None:
        raise BackendUnavailable(f"backend {name}: {why}")
    if not isinstance(artifact, Artifact):
        artifact = Artifact.load(artifact)
    return cls(artifact, **options)


def from_controls(cfg, artifact: str | Path | Artifact) -> Backend:
    """The backend the xApp's `controls.backend` (BackendConfig) names, each implementation taking
    its own options from it (precision, threads: `Backend.options`)."""
    name = resolve(cfg.name)
    return load(name, artifact, **backend_class(name).options(cfg))
