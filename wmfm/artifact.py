"""The deployable artifact: ONNX graphs + `manifest.json`, verified before anything loads.

Written by `wmfm export` (wmfm.model.export), read by the inference backends and the xApp
(wmfm.xapp.inference). It lives here, in the shared package, because `model` never imports
`xapp`. Verifying an artifact needs neither torch nor onnx. An artifact whose frames were
preprocessed by another method than this version's (wmfm.image) is refused.

    ARTIFACT/
      manifest.json            schema, configs, preprocessing, graphs (I/O specs), parity, sha256 of every file
      manifest.sha256          the manifest's own sha256 (`sha256sum -c manifest.sha256` checks it too)
      csi_encoder.onnx         csi [B, 2, A, K] f32 -> feature [B, Fc], embedding [B, E] (unit norm)
      image_encoder.onnx       image [B, 3, H, W] f32 in [0, 1] -> feature [B, Fi], embedding [B, E], tokens [B, T, E]
      heads_fused.onnx         csi_feature [B, Fc], csi_embedding [B, E], image_tokens [B, T, E]
                               -> los_logit [B], p_los [B], position [B, 3] m
      heads_csi.onnx           csi_feature [B, Fc] -> los_logit, p_los, position      (the fallback without a frame)
      *.fp16.onnx              the encoders in mixed precision (`--fp16`), FP32 inputs/outputs
      model.pt                 the source checkpoint (weights only), for the torch reference backend
      reference.npz            held-out inputs and the torch outputs, to re-check parity on any host
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wmfm.config import ConfigError
from wmfm.image import DECODER

SCHEMA = "wmfm-artifact/2"          # /2: image tokens, cross-attention fused heads
MANIFEST = "manifest.json"
DIGEST = "manifest.sha256"          # sha256sum format: "<hex>  manifest.json"
ENCODERS = ("csi_encoder", "image_encoder")
MODES = {"fused": "heads_fused", "csi_only": "heads_csi"}   # insight mode -> heads graph


class ArtifactError(ConfigError):
    """The artifact is missing, tampered with, or of another schema (message names the file/field)."""


class InputError(ValueError):
    """An inference input has the wrong shape or dtype (message names the input)."""


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def seal(root: str | Path) -> None:
    """Write ROOT/manifest.sha256, the manifest's own digest (export; after a deliberate edit)."""
    root = Path(root)
    (root / DIGEST).write_text(f"{sha256(root / MANIFEST)}  {MANIFEST}\n")


def _check_seal(root: Path) -> None:
    """The manifest is the one that was exported: its sha256 is the one in manifest.sha256. The
    manifest holds the hashes of every other file, so this makes the whole artifact checked."""
    dpath, mpath = root / DIGEST, root / MANIFEST
    try:
        words = dpath.read_text().split()
    except FileNotFoundError:
        raise ArtifactError(f"{dpath}: missing: the manifest's own sha256 (export again)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{dpath}: not readable ({exc})") from None
    if len(words) != 2 or words[1] != MANIFEST or len(words[0]) != 64:
        raise ArtifactError(f"{dpath}: expected one line '<sha256>  {MANIFEST}'")
    got = sha256(mpath)
    if got != words[0]:
        raise ArtifactError(f"{mpath}: sha256 mismatch ({DIGEST} {words[0][:12]}..., file {got[:12]}...): "
                            "the manifest is not the one that was exported")


@dataclass(frozen=True)
class TensorSpec:
    """One graph input/output: `shape` has "batch" for the dynamic axis."""
    name: str
    shape: tuple
    dtype: str

    def check(self, x, max_batch: int | None = None) -> np.ndarray:
        """`x` as a C-contiguous array of this spec's dtype, or InputError naming the input."""
        a = np.asarray(x)
        if a.dtype.kind != "f":
            raise InputError(f"{self.name}: expected a float array, got dtype {a.dtype}")
        want = tuple("B" if d == "batch" else d for d in self.shape)
        if a.ndim != len(want) or any(w != "B" and w != g for w, g in zip(want, a.shape)):
            raise InputError(f"{self.name}: expected shape {list(want)}, got {list(a.shape)}")
        if a.shape[0] < 1:
            raise InputError(f"{self.name}: empty batch")
        if max_batch is not None and a.shape[0] > max_batch:
            raise InputError(f"{self.name}: batch {a.shape[0]} exceeds the artifact's max_batch {max_batch}")
        return np.ascontiguousarray(a, dtype=self.dtype)


@dataclass(frozen=True)
class Graph:
    name: str
    file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    fp16_file: str | None = None


class Artifact:
    """A verified artifact folder: `Artifact.load(path)` checks schema and every sha256 first."""

    def __init__(self, root: Path, manifest: dict):
        self.root = root
        self.manifest = manifest
        self.graphs = {name: Graph(name, g["file"], tuple(TensorSpec(s["name"], tuple(s["shape"]), s["dtype"])
                                                           for s in g["inputs"]),
                                   tuple(TensorSpec(s["name"], tuple(s["shape"]), s["dtype"]) for s in g["outputs"]),
                                   g.get("fp16_file"))
                       for name, g in manifest["graphs"].items()}

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> Artifact:
        root = Path(path)
        mpath = root / MANIFEST
        if not mpath.is_file():
            raise ArtifactError(f"{mpath}: manifest not found (is {root} a `wmfm export` output?)")
        if verify:
            _check_seal(root)
        try:
            manifest = json.loads(mpath.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{mpath}: not readable JSON ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
            got = manifest.get("schema") if isinstance(manifest, dict) else type(manifest).__name__
            raise ArtifactError(f"{mpath}: schema: expected {SCHEMA!r}, got {got!r}")
        for key in ("files", "graphs", "model_config", "preprocessing", "max_batch", "model"):
            if key not in manifest:
                raise ArtifactError(f"{mpath}: {key}: missing")
        for name in (*ENCODERS, *MODES.values()):
            if name not in manifest["graphs"]:
                raise ArtifactError(f"{mpath}: graphs.{name}: missing")
        decoder = (manifest["preprocessing"].get("image") or {}).get("decoder")
        if decoder != DECODER:
            raise ArtifactError(f"{mpath}: preprocessing.image.decoder: the model was trained on frames decoded by "
                                f"{decoder or 'an unrecorded method'}, this version decodes with {DECODER} "
                                "(rebuild the cache and export again)")
        listed = set(manifest["files"])
        for name, g in manifest["graphs"].items():
            for f in (g.get("file"), g.get("fp16_file")):
                if f is not None and f not in listed:
                    raise ArtifactError(f"{mpath}: graphs.{name}: {f} is not listed in files (no hash)")
        art = cls(root, manifest)
        if verify:
            art.verify()
        return art

    def verify(self) -> None:
        """Every file listed in the manifest exists and has its recorded sha256 (the manifest's own:
        `load`)."""
        for rel, want in self.manifest["files"].items():
            p = self.root / rel
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise ArtifactError(f"{self.root / MANIFEST}: files: {rel!r} is outside the artifact")
            if not p.is_file():
                raise ArtifactError(f"{p}: missing (listed in the manifest)")
            got = sha256(p)
            if got != want:
                raise ArtifactError(f"{p}: sha256 mismatch (manifest {want[:12]}..., file {got[:12]}...): "
                                    "the file is not the one that was exported and validated")

    def path(self, rel: str) -> Path:
        return self.root / rel

    @property
    def max_batch(self) -> int:
        return int(self.manifest["max_batch"])

    @property
    def version(self) -> str:
        """Model identity for insights: `<name> <version>+<checkpoint sha256[:12]>`."""
        m = self.manifest["model"]
        return f"{m['name']}-{m['version']}+{m['checkpoint_sha256'][:12]}"

    def reference(self) -> dict[str, np.ndarray] | None:
        """Held-out inputs and torch (FP32, CPU) outputs recorded at export, or None."""
        if "reference.npz" not in self.manifest["files"]:
            return None
        with np.load(self.path("reference.npz")) as z:
            return {k: z[k] for k in z.files}
