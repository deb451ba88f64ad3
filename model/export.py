"""`wmfm export`: a `model.pt` checkpoint -> ONNX graphs + manifest.json (wmfm.artifact).

Four graphs, each with a dynamic batch axis, so the xApp embeds a camera frame once and
reuses it for every UE of that frame, and falls back to CSI only when no frame matches:

    csi_encoder    csi [B, 2, A, K] f32 (raw channel, real/imag)   -> feature [B, Fc], embedding [B, E]
    image_encoder  image [B, 3, H, W] f32 RGB in [0, 1]            -> feature [B, Fi], embedding [B, E],
                                                                      tokens [B, T, E]
    heads_fused    csi_feature [B, Fc], csi_embedding [B, E],
                   image_tokens [B, T, E]                          -> los_logit [B], p_los [B], position [B, 3] m
    heads_csi      csi_feature [B, Fc]                             -> los_logit [B], p_los [B], position [B, 3] m

All normalisation is inside the graphs (CSI power normalisation, image mean/std, head input
standardisation, position back to metres): a caller only lays out the tensors as the
manifest's `preprocessing` says. Parity with the PyTorch model is measured on held-out
(test split) samples with ONNX Runtime; the export fails when it is outside tolerance.
"""

from __future__ import annotations

import datetime
import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import wmfm
from wmfm import image
from wmfm.artifact import DIGEST, MANIFEST, SCHEMA, Artifact, ArtifactError, seal, sha256
from wmfm.cache import image_decoder
from wmfm.cache import load as load_cache
from wmfm.config import ConfigError

from . import checkpoint
from .graphs import graph_modules
from .heads import FusedHeads, Heads
from .wmfm import WMFM


@dataclass(frozen=True)
class Tolerance:
    """FP32 torch vs ONNX Runtime limits (observed ~2e-6 on features)."""
    feature: float = 1e-3         # max abs, encoder features
    embedding: float = 1e-4       # max abs, unit-norm embeddings
    los_logit: float = 1e-3       # max abs
    position_m: float = 0.01      # max abs per coordinate: "the same position within 1 cm"
    los_agreement: float = 1.0    # fraction of samples with the same LoS decision (p_los > 0.5)


def _to_onnx(module: nn.Module, io: dict, path: Path, opset: int) -> None:
    args = tuple(torch.zeros([2, *s["shape"][1:]]) for s in io["inputs"])
    names_in = [s["name"] for s in io["inputs"]]
    names_out = [s["name"] for s in io["outputs"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # the TorchScript exporter's deprecation notice
        # TorchScript exporter: stable node names ("/transform/...") that the FP16 pass keys on,
        # and ~10x faster than the dynamo exporter on these graphs.
        torch.onnx.export(module.eval(), args, str(path), input_names=names_in, output_names=names_out,
                          opset_version=opset, dynamo=False, do_constant_folding=True,
                          dynamic_axes={n: {0: "batch"} for n in names_in + names_out})


def held_out(cache: str | Path, model_cfg, n: int) -> dict[str, np.ndarray]:
    """Up to `n` test-split samples spread over the whole split: csi [n, 2, A, K], image [n, 3, H, W]."""
    from .data import load_data
    data = load_data(cache, tuple(model_cfg.image_size))
    if tuple(data.csi.shape[2:]) != (model_cfg.n_ant, model_cfg.n_sc):
        raise ConfigError(f"{cache}: csi shape {list(data.csi.shape[1:])} does not match the model's "
                          f"[2, {model_cfg.n_ant}, {model_cfg.n_sc}]")
    idx = data.index("test")
    if len(idx) == 0:
        raise ConfigError(f"{cache}: the test split is empty: no held-out samples for parity")
    idx = idx[np.unique(np.linspace(0, len(idx) - 1, min(n, len(idx))).round().astype(int))]
    return {"csi": data.csi[idx].numpy(), "image": data.image_batch(idx).numpy(), "index": idx.numpy(),
            "source_size": list(data.meta.get("image_size") or model_cfg.image_size)}


def preprocessing_parity(cache: str | Path) -> dict:
    """Training = serving for the pixels: the cache's frames were decoded by this version's
    preprocessing (wmfm.image, which the xApp's codec calls too), and its probe frames, decoded
    again from their files, give exactly the cached pixels (an OpenCV/libjpeg of another build
    would not). ArtifactError otherwise; a probe whose file is gone is counted as missing."""
    meta = json.loads((Path(cache) / "meta.json").read_text())
    used = image_decoder(meta)
    if used != image.DECODER:
        raise ArtifactError(f"{cache}: preprocessing.image.decoder: frames decoded by {used or 'an unrecorded method'}"
                            f", the xApp decodes with {image.DECODER}: rebuild the cache (wmfm dataset build)")
    images = load_cache(cache)["images"]
    size = tuple(meta["image_size"])
    diffs, missing = [], 0
    for probe in meta["preprocessing"]["image"]["probes"]:
        path = Path(probe["file"])
        if not path.is_file():
            missing += 1
            continue
        again = image.decode(path.read_bytes(), size).astype(np.int16)
        diffs.append(int(np.abs(again - images[probe["sample"]]).max()))
    if diffs and max(diffs) > 0:
        raise ArtifactError(f"{cache}: {sum(d > 0 for d in diffs)} of {len(diffs)} probe frames decode to other "
                            f"pixels than the cache holds (max abs diff {max(diffs)}): rebuild the cache with "
                            "this version (OpenCV " + image.cv2.__version__ + ")")
    return {"decoder": image.DECODER, "opencv": image.cv2.__version__, "frames": len(diffs),
            "identical": len(diffs), "missing_files": missing, "max_abs_diff": max(diffs, default=0)}


@torch.no_grad()
def torch_outputs(mods: dict, samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Reference outputs, keyed `<graph>.<output>`."""
    csi, image = torch.from_numpy(samples["csi"]), torch.from_numpy(samples["image"])
    fc, ec = mods["csi_encoder"][0](csi)
    fi, ei, tok = mods["image_encoder"][0](image)
    out = {"csi_encoder.feature": fc, "csi_encoder.embedding": ec,
           "image_encoder.feature": fi, "image_encoder.embedding": ei, "image_encoder.tokens": tok}
    for g, args in (("heads_fused", (fc, ec, tok)), ("heads_csi", (fc,))):
        for name, t in zip(("los_logit", "p_los", "position"), mods[g][0](*args)):
            out[f"{g}.{name}"] = t
    return {k: v.numpy() for k, v in out.items()}


def ort_outputs(files: dict[str, Path], samples: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """The same outputs from ONNX Runtime (CPU, full graph optimisation), run in batches of `batch`."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = {g: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for g, p in files.items()}

    def run(g, feeds):
        names = [o.name for o in sess[g].get_outputs()]
        n = len(next(iter(feeds.values())))
        parts = [sess[g].run(None, {k: v[s:s + batch] for k, v in feeds.items()}) for s in range(0, n, batch)]
        return {f"{g}.{name}": np.concatenate([p[i] for p in parts]) for i, name in enumerate(names)}

    out = {**run("csi_encoder", {"csi": samples["csi"]}), **run("image_encoder", {"image": samples["image"]})}
    if "heads_fused" in sess:
        fc = out["csi_encoder.feature"]
        out.update(run("heads_fused", {"csi_feature": fc, "csi_embedding": out["csi_encoder.embedding"],
                                       "image_tokens": out["image_encoder.tokens"]}))
        out.update(run("heads_csi", {"csi_feature": fc}))
    return out


def parity(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], margin: float = 0.0) -> dict:
    """Max abs differences per output, LoS-decision agreement, position error (m).

    The agreement counts the samples whose torch logit is farther than ``margin`` from the
    decision threshold (logit 0): nearer ones may flip within the logit tolerance itself."""
    res = {"samples": int(len(ref["csi_encoder.feature"])),
           "max_abs_diff": {k: float(np.abs(ref[k] - got[k]).max()) for k in sorted(got)}}
    for g in ("heads_fused", "heads_csi"):
        if f"{g}.p_los" in got:
            clear = np.abs(ref[f"{g}.los_logit"]) > margin
            agree = (ref[f"{g}.p_los"] > 0.5) == (got[f"{g}.p_los"] > 0.5)
            err = np.linalg.norm(ref[f"{g}.position"] - got[f"{g}.position"], axis=-1)
            res[g] = {"los_agreement": float(agree[clear].mean()) if clear.any() else 1.0,
                      "within_margin": int((~clear).sum()), "position_max_err_m": float(err.max()),
                      "position_within_1cm": float((err <= 0.01).mean())}
    return res


def check_parity(par: dict, tol: Tolerance) -> list[str]:
    """Failures as readable lines (empty list: within tolerance)."""
    bad = []
    for k, v in par["max_abs_diff"].items():
        out = k.split(".")[1]
        lim = {"feature": tol.feature, "embedding": tol.embedding, "tokens": tol.embedding, "los_logit": tol.los_logit,
               "p_los": tol.los_logit, "position": tol.position_m}[out]
        if not v <= lim:
            bad.append(f"{k}: max abs diff {v:.3g} > {lim:g}")
    for g in ("heads_fused", "heads_csi"):
        if g in par and not par[g]["los_agreement"] >= tol.los_agreement:
            bad.append(f"{g}: LoS decision agreement {par[g]['los_agreement']:.4f} < {tol.los_agreement}")
        if g in par and not par[g]["position_max_err_m"] <= tol.position_m:
            bad.append(f"{g}: position error up to {par[g]['position_max_err_m']:.3g} m > {tol.position_m} m")
    return bad


def _find_cache(ckpt_path: Path, ckpt: dict, cache: str | Path | None) -> Path:
    if cache is not None:
        if not (Path(cache) / "meta.json").is_file():
            raise FileNotFoundError(f"{cache}: not a wmfm cache (meta.json missing)")
        return Path(cache)
    hint = ckpt.get("meta", {}).get("cache")
    for cand in ([Path(hint), ckpt_path.parent / "data" / "cache"] if hint else [ckpt_path.parent / "data" / "cache"]):
        if (cand / "meta.json").is_file():
            return cand
    raise FileNotFoundError(f"{ckpt_path}: its dataset cache ({hint}) is not here; pass --cache with the cache "
                            "it was trained on (held-out samples are needed for the parity check)")


def synthetic_inputs(model_cfg, n: int, seed: int) -> dict[str, np.ndarray]:
    """Reference inputs for a model without a dataset (`--random-init`): CSI of 1-4 plane waves per
    sample (a few peaks in angle x delay, gains ~1e-6 as DeepVerse6G's), and smooth random images
    (8x8 noise upsampled: they compress like camera content, unlike white noise)."""
    rng = np.random.default_rng(seed)
    a, k = np.arange(model_cfg.n_ant)[:, None], np.arange(model_cfg.n_sc)[None, :]
    csi = np.zeros((n, 2, model_cfg.n_ant, model_cfg.n_sc), np.float32)
    for i in range(n):
        h = np.zeros((model_cfg.n_ant, model_cfg.n_sc), complex)
        for _ in range(rng.integers(1, 5)):
            theta, tau, phase = rng.uniform(-np.pi / 2, np.pi / 2), rng.uniform(0, 0.5), rng.uniform(0, 2 * np.pi)
            gain = 10 ** (rng.uniform(-75, -55) / 20)
            h += gain * np.exp(1j * (phase - np.pi * a * np.sin(theta) - 2 * np.pi * k * tau))
        csi[i, 0], csi[i, 1] = h.real, h.imag
    coarse = torch.from_numpy(rng.uniform(0, 1, (n, 3, 8, 8)).astype(np.float32))
    image = F.interpolate(coarse, size=tuple(model_cfg.image_size), mode="bilinear", align_corners=False)
    return {"csi": csi, "image": image.clamp_(0, 1).numpy(), "index": np.arange(n),
            "source_size": list(model_cfg.image_size), "split": "synthetic"}


def export(ckpt_path: str | Path, out: str | Path, cache: str | Path | None = None, opset: int = 17,
           max_batch: int = 64, fp16: bool = False, samples: int = 256, reference: int = 32,
           tol: Tolerance = Tolerance(), overwrite: bool = False, log=print) -> Artifact:
    """Write the artifact folder `out` (atomically); raises ArtifactError when parity fails."""
    ckpt_path, out = Path(ckpt_path), Path(out)
    _refuse_existing(out, overwrite)
    model, heads, ckpt = checkpoint.load_wmfm(ckpt_path)
    missing = [m for m in ("fused", "csi") if m not in heads]
    if ckpt["kind"] != "model" or missing:
        raise ConfigError(f"{ckpt_path}: heads: a deployable model.pt needs fused and csi heads, missing {missing}")
    if any(h.get("input", "feature") != "feature" for h in ckpt["heads"].values()):
        raise ConfigError(f"{ckpt_path}: heads.input: export supports heads on encoder features only")
    cache = _find_cache(ckpt_path, ckpt, cache)
    held = held_out(cache, model.cfg, samples) | {"split": "test", "cache": str(cache),
                                                    "pixels": preprocessing_parity(cache)}
    return _write(ckpt_path, ckpt, model, heads, held, out, opset, max_batch, fp16, reference, tol, log)


def export_random(preset: str, out: str | Path, seed: int = 0, opset: int = 17, max_batch: int = 64,
                  fp16: bool = False, samples: int = 256, reference: int = 32, tol: Tolerance = Tolerance(),
                  overwrite: bool = False, log=print) -> Artifact:
    """An artifact of ``preset``'s shapes with random weights (seeded), in seconds: the service and
    every latency benchmark run on the deployed model size without training. Its parity is
    checked on synthetic inputs; `checkpoint_meta.random_init` marks it."""
    from wmfm.config import to_dict

    from .experiment import preset as preset_config
    out = Path(out)
    _refuse_existing(out, overwrite)
    cfg = preset_config(preset)
    torch.manual_seed(seed)
    model = WMFM(cfg.model).eval()
    fc = cfg.model.csi.feature_dim
    heads = {"fused": FusedHeads(fc, cfg.model.embed_dim, model.image_encoder.grid, cfg.heads.hidden,
                                 cfg.heads.dropout, cfg.pretrain.pointer_beta).eval(),
             "csi": Heads(fc, cfg.heads.hidden, cfg.heads.dropout).eval()}
    with tempfile.TemporaryDirectory(prefix="wmfm-random-") as tmp:
        ckpt_path = checkpoint.save(Path(tmp) / "model.pt", "model", model, cfg.model,
                                    {"pretrain": to_dict(cfg.pretrain), "heads": to_dict(cfg.heads)}, heads=heads,
                                    meta={"random_init": True, "preset": preset, "seed": seed})
        ckpt = checkpoint.read(ckpt_path)
        held = synthetic_inputs(cfg.model, samples, seed)
        return _write(ckpt_path, ckpt, model, heads, held, out, opset, max_batch, fp16, reference, tol, log)


def _refuse_existing(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass --overwrite to replace it)")


def _write(ckpt_path: Path, ckpt: dict, model: WMFM, heads: dict, held: dict, out: Path, opset: int, max_batch: int,
           fp16: bool, reference: int, tol: Tolerance, log) -> Artifact:
    """ONNX graphs, parity against torch on ``held`` inputs, reference.npz, the checkpoint and the
    manifest, written to a temporary sibling folder and renamed to ``out`` (nothing on failure)."""
    import onnx
    import onnxruntime
    mods = graph_modules(model, heads)
    ref = torch_outputs(mods, held)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        graphs, files = {}, {}
        for g, (mod, io) in mods.items():
            _to_onnx(mod, io, tmp / f"{g}.onnx", opset)
            onnx.checker.check_model(str(tmp / f"{g}.onnx"))
            graphs[g] = {"file": f"{g}.onnx", **io}
            files[g] = tmp / f"{g}.onnx"
        log(f"exported {len(graphs)} ONNX graphs (opset {opset})")
        par = parity(ref, ort_outputs(files, held, max_batch), tol.los_logit)
        failures = check_parity(par, tol)
        par.update(tolerance=vars(tol), passed=not failures, runtime=f"onnxruntime {onnxruntime.__version__} CPU",
                   split=held["split"])
        if "cache" in held:
            par["cache"] = held["cache"]
        if "pixels" in held:
            par["preprocessing"] = held["pixels"]
        if failures:
            raise ArtifactError(f"{ckpt_path}: torch vs ONNX Runtime parity outside tolerance: {'; '.join(failures)}")
        result = {"fp32": par}
        if fp16:
            from .fp16 import to_mixed_fp16
            for g in ("csi_encoder", "image_encoder"):
                onnx.save(to_mixed_fp16(onnx.load(str(files[g]))), str(tmp / f"{g}.fp16.onnx"))
                graphs[g]["fp16_file"] = f"{g}.fp16.onnx"
            p16 = parity(ref, ort_outputs({g: tmp / f"{g}.fp16.onnx" for g in ("csi_encoder", "image_encoder")},
                                          held, max_batch), tol.los_logit)
            # informative: FP16 is for TensorRT; its end-to-end check runs on the GPU (scripts/gpu_check.sh)
            result["fp16_encoders"] = {**p16, "runtime": f"onnxruntime {onnxruntime.__version__} CPU",
                                       "gated": False}
        n_ref = min(reference, len(held["csi"]))
        np.savez_compressed(tmp / "reference.npz", csi=held["csi"][:n_ref], image=held["image"][:n_ref],
                            **{k: v[:n_ref] for k, v in ref.items()})
        shutil.copyfile(ckpt_path, tmp / "model.pt")
        manifest = _manifest(ckpt, ckpt_path, model, heads, graphs, result, opset, max_batch, tmp)
        manifest["preprocessing"]["image"]["source_size"] = held["source_size"]
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        seal(tmp)
        tmp.chmod(0o755)                                  # mkdtemp makes it private
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Artifact.load(out)


def _manifest(ckpt, ckpt_path, model, heads, graphs, parity_res, opset, max_batch, folder: Path) -> dict:
    import onnx
    import onnxruntime
    cfg = model.cfg
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "created_by": f"wmfm {wmfm.__version__}",
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        "model": {"name": "wmfm", "version": wmfm.__version__, "checkpoint": ckpt_path.name,
                  "checkpoint_sha256": sha256(ckpt_path), "head_input": "feature",
                  "parameters": int(sum(p.numel() for m, _ in graph_modules(model, heads).values()
                                        for p in m.parameters()))},
        "model_config": ckpt["model_config"],
        "configs": ckpt["configs"],
        "checkpoint_meta": ckpt["meta"],
        "preprocessing": {
            "csi": {"input": "csi", "layout": ["batch", "re_im", "antenna", "subcarrier"],
                    "shape": [2, cfg.n_ant, cfg.n_sc], "dtype": "float32",
                    "antenna_order": "ue_antenna major, bs_antenna minor (n_ue_ant * n_bs_ant rows)",
                    "subcarriers": cfg.n_sc, "units": "linear channel gain as DeepVerse6G generates it (0 dBm tx)",
                    "normalisation": "per-sample power normalisation inside the graph (absolute scale ignored)"},
            "image": {"input": "image", "layout": ["batch", "rgb", "height", "width"],
                      "size": list(cfg.image_size), "dtype": "float32", "scale": 1 / 255, "range": [0.0, 1.0],
                      "color": "RGB", "decoder": image.DECODER,
                      "resize": "wmfm.image.decode to `source_size` (the training cache's): JPEG decoded at the "
                                "smallest DCT scale (1/2, 1/4, 1/8) still >= it, then area; then area to `size`",
                      "normalisation": "mean 0.45, std 0.25 inside the graph"},
        },
        "opset": opset,
        "max_batch": max_batch,
        "graphs": graphs,
        "modes": {"fused": "heads_fused", "csi_only": "heads_csi"},
        "parity": parity_res,
        "files": {p.name: sha256(p) for p in sorted(folder.iterdir())
                  if p.is_file() and p.name not in (MANIFEST, DIGEST)},
    }
