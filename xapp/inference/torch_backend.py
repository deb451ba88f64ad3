"""Eager PyTorch on the artifact's checkpoint: the reference for parity, and for debugging.

The only place the xApp imports `wmfm.model` (DESIGN.md's dependency rule). The checkpoint
is the artifact's `model.pt`, hash-checked with the rest and loaded with weights_only=True.
"""

from __future__ import annotations

import numpy as np

from wmfm.artifact import Artifact

from .base import Backend


class TorchBackend(Backend):
    """Options: `device` ("cpu", "cuda", "cuda:N"), `threads` (torch intra-op threads)."""

    name = "torch"

    @classmethod
    def unavailable(cls) -> str | None:
        try:
            import torch  # noqa: F401
        except ImportError:
            return "torch is not installed (pip install 'wmfm-xapp[train]')"
        return None

    @classmethod
    def options(cls, cfg) -> dict:
        return {"threads": cfg.threads or None}

    def __init__(self, artifact: Artifact, device: str = "cpu", threads: int | None = None):
        super().__init__(artifact)
        import torch
        from wmfm.model.checkpoint import load_graphs
        if threads:
            torch.set_num_threads(int(threads))
        self.device = torch.device(device)
        self.modules = {g: m.to(self.device) for g, m in load_graphs(artifact.path("model.pt")).items()}
        self.threads = torch.get_num_threads()

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch
        with torch.inference_mode():
            outs = self.modules[graph](*[torch.from_numpy(a).to(self.device) for a in feeds.values()])
        return [o.float().cpu().numpy() for o in outs]

    def describe(self) -> dict:
        import torch
        return {"backend": self.name, "version": torch.__version__, "device": str(self.device),
                "precision": "fp32", "threads": self.threads}
