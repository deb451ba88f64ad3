"""The one interface every inference backend offers, and the checks they all share.

    backend = load("onnxruntime", artifact)     # wmfm.xapp.inference.load
    z = backend.embed_csi(csi)                   # csi [B, 2, A, K] f32 -> Encoded(feature [B, Fc], embedding [B, E])
    v = backend.embed_image(image)               # image [B, 3, H, W] f32 in [0, 1] -> Encoded(..., tokens [B, T, E])
    out = backend.heads(z, v.tokens)             # -> HeadsOut(los_logit [B], p_los [B], position [B, 3] m)
    out = backend.heads(z)                       # csi-only fallback (no camera frame)

A backend implements only `_run(graph, feeds) -> outputs in the manifest's order`; inputs are
checked against the manifest here (shape, float dtype) and batches larger than the
artifact's `max_batch` are split, so every backend fails and succeeds the same way.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from wmfm.artifact import MODES, Artifact, InputError

LOGIT_MARGIN = 1e-3         # LoS decisions of samples with |logit| below this are not compared (export's tolerance)


class Encoded(NamedTuple):
    feature: np.ndarray      # [B, F] float32, what the heads read
    embedding: np.ndarray    # [B, E] float32, unit norm (the joint CSI-image space)
    tokens: np.ndarray | None = None   # image only: [B, T, E] float32, unit norm (what the fused heads attend over)


class HeadsOut(NamedTuple):
    los_logit: np.ndarray    # [B] float32
    p_los: np.ndarray        # [B] float32, P(LoS)
    position: np.ndarray     # [B, 3] float32, metres (the scenario's frame)


class Backend:
    name = "base"

    def __init__(self, artifact: Artifact):
        self.artifact = artifact
        self.graphs = artifact.graphs
        self.max_batch = artifact.max_batch

    # --- implemented by each backend -------------------------------------------------
    @classmethod
    def unavailable(cls) -> str | None:
        """None when this backend can run on this host, else why not (missing library, no GPU)."""
        return None

    @classmethod
    def options(cls, cfg) -> dict:
        """This backend's constructor options from the xApp's `controls.backend` (BackendConfig)."""
        return {}

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def describe(self) -> dict:
        """What runs where, for logs, /config and benchmark reports."""
        return {"backend": self.name}

    def close(self) -> None:
        pass

    # --- the interface ---------------------------------------------------------------
    def run(self, graph: str, *inputs) -> list[np.ndarray]:
        g = self.graphs[graph]
        if len(inputs) != len(g.inputs):
            raise InputError(f"{graph}: expected {len(g.inputs)} inputs ({[s.name for s in g.inputs]}), "
                             f"got {len(inputs)}")
        arrays = [spec.check(x) for spec, x in zip(g.inputs, inputs)]
        n = arrays[0].shape[0]
        if any(a.shape[0] != n for a in arrays):
            raise InputError(f"{graph}: inputs disagree on the batch size: {[a.shape[0] for a in arrays]}")
        if n <= self.max_batch:
            return self._run(graph, {s.name: a for s, a in zip(g.inputs, arrays)})
        parts = [self._run(graph, {s.name: a[i:i + self.max_batch] for s, a in zip(g.inputs, arrays)})
                 for i in range(0, n, self.max_batch)]
        return [np.concatenate([p[k] for p in parts]) for k in range(len(g.outputs))]

    def embed_csi(self, csi) -> Encoded:
        return Encoded(*self.run("csi_encoder", csi))

    def embed_image(self, image) -> Encoded:
        return Encoded(*self.run("image_encoder", image))

    def heads(self, csi: Encoded, image_tokens=None) -> HeadsOut:
        """The fused heads on the CSI's encoding and its frame's tokens [B, T, E]; without tokens the
        csi-only fallback."""
        if image_tokens is None:
            return HeadsOut(*self.run(MODES["csi_only"], csi.feature))
        return HeadsOut(*self.run(MODES["fused"], csi.feature, csi.embedding, image_tokens))

    def fused(self, csi, image) -> HeadsOut:
        """CSI + camera image of the same instant -> LoS and position (the fused path)."""
        return self.heads(self.embed_csi(csi), self.embed_image(image).tokens)

    def warmup(self, batches=(1,), graphs=None) -> None:
        """Run every graph (or those named) once per batch size (allocations, engine/graph capture,
        kernel selection; a thread's first call is slow too)."""
        for b in batches:
            for name, g in self.graphs.items():
                if graphs is None or name in graphs:
                    self.run(name, *[np.zeros([b, *s.shape[1:]], np.float32) for s in g.inputs])

    def self_test(self) -> dict:
        """Parity with the torch outputs recorded at export (reference.npz, held-out samples):
        max abs difference per output, LoS-decision agreement (samples whose logit is clear of the
        threshold by the export's logit tolerance) and position error per mode."""
        ref = self.artifact.reference()
        if ref is None:
            raise FileNotFoundError(f"{self.artifact.root}: reference.npz missing")
        z, v = self.embed_csi(ref["csi"]), self.embed_image(ref["image"])
        got = {"csi_encoder.feature": z.feature, "csi_encoder.embedding": z.embedding,
               "image_encoder.feature": v.feature, "image_encoder.embedding": v.embedding,
               "image_encoder.tokens": v.tokens}
        res = {"samples": int(len(ref["csi"]))}
        for mode, out in (("heads_fused", self.heads(z, v.tokens)), ("heads_csi", self.heads(z))):
            got.update({f"{mode}.{k}": getattr(out, k) for k in HeadsOut._fields})
            clear = np.abs(ref[f"{mode}.los_logit"]) > LOGIT_MARGIN     # nearer the threshold may flip
            agree = (out.p_los > 0.5) == (ref[f"{mode}.p_los"] > 0.5)
            err = np.linalg.norm(out.position - ref[f"{mode}.position"], axis=-1)
            res[mode] = {"los_agreement": float(agree[clear].mean()) if clear.any() else 1.0,
                         "within_margin": int((~clear).sum()), "position_max_err_m": float(err.max()),
                         "position_within_1cm": float((err <= 0.01).mean())}
        res["max_abs_diff"] = {k: float(np.abs(v - ref[k]).max()) for k, v in sorted(got.items())}
        return res

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
