"""`wmfm export`: manifest, parity, artifact checks, FP16 pass; on a random-weight model of the `cpu`
preset's shapes (`--random-init`, every fast test) and on the trained tiny model (slow)."""

import json
import shutil

import numpy as np
import onnx
import pytest
from wmfm.model import checkpoint
from wmfm.model.export import Tolerance, export
from wmfm.model.fp16 import to_mixed_fp16
from wmfm.xapp import inference

from wmfm import image
from wmfm.artifact import SCHEMA, Artifact, ArtifactError, seal, sha256
from wmfm.cli import main


def test_manifest_describes_the_artifact(artifact):
    m = json.loads((artifact / "manifest.json").read_text())
    assert m["schema"] == SCHEMA
    assert set(m["graphs"]) == {"csi_encoder", "image_encoder", "heads_fused", "heads_csi"}
    for rel, digest in m["files"].items():
        assert sha256(artifact / rel) == digest
    assert {f"{g}.onnx" for g in m["graphs"]} | {"model.pt", "reference.npz"} <= set(m["files"])
    cfg = m["model_config"]
    assert m["graphs"]["csi_encoder"]["inputs"] == [{"name": "csi", "shape": ["batch", 2, cfg["n_ant"], cfg["n_sc"]],
                                                     "dtype": "float32"}]
    assert m["preprocessing"]["image"]["size"] == cfg["image_size"]
    # the frame is embedded once into tokens; the fused heads take the UE's CSI and its frame's tokens
    tokens = ["batch", 64, cfg["embed_dim"]]                # 8x8 cells at 64 px
    assert m["graphs"]["image_encoder"]["outputs"][2] == {"name": "tokens", "shape": tokens, "dtype": "float32"}
    assert [i["name"] for i in m["graphs"]["heads_fused"]["inputs"]] == ["csi_feature", "csi_embedding",
                                                                         "image_tokens"]
    assert m["graphs"]["heads_fused"]["inputs"][2]["shape"] == tokens
    assert "image_encoder.tokens" in m["parity"]["fp32"]["max_abs_diff"]
    assert m["configs"]["pretrain"] and m["opset"] == 17
    assert m["checkpoint_meta"] == {"random_init": True, "preset": "cpu", "seed": 0}
    assert m["model"]["parameters"] > 1_000_000 and m["model_config"]["image_size"] == [64, 64]
    par = m["parity"]["fp32"]
    assert par["passed"] and par["split"] == "synthetic" and par["samples"] >= 16
    assert par["heads_fused"]["los_agreement"] == 1.0 and par["heads_fused"]["position_within_1cm"] == 1.0
    assert max(par["max_abs_diff"].values()) < 1e-3
    # every graph has a dynamic batch axis
    for g in m["graphs"].values():
        model = onnx.load(str(artifact / g["file"]))
        assert all(i.type.tensor_type.shape.dim[0].dim_param == "batch" for i in model.graph.input)


def _copy(artifact, tmp_path):
    dst = tmp_path / "art"
    shutil.copytree(artifact, dst, ignore=shutil.ignore_patterns("engines"))
    return dst


def test_tampered_missing_or_foreign_artifacts_are_refused(artifact, tmp_path, capsys):
    art = _copy(artifact, tmp_path)
    with open(art / "heads_fused.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactError, match=r"heads_fused.onnx: sha256 mismatch"):
        inference.load("onnxruntime", art)
    assert main(["bench", "model", "--artifact", str(art), "--calls", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sha256 mismatch" in err[0]

    art = _copy(artifact, tmp_path / "b")
    (art / "model.pt").unlink()
    with pytest.raises(ArtifactError, match=r"model.pt: missing"):
        Artifact.load(art)

    art = _copy(artifact, tmp_path / "c")                  # deliberate edits, sealed again: the checks inside
    m = json.loads((art / "manifest.json").read_text())

    def edit(text: str) -> None:
        (art / "manifest.json").write_text(text)
        seal(art)
    edit(json.dumps(m | {"schema": "wmfm-artifact/0"}))
    with pytest.raises(ArtifactError, match="schema: expected 'wmfm-artifact/2', got 'wmfm-artifact/0'"):
        Artifact.load(art)
    old = json.loads(json.dumps(m))
    old["preprocessing"]["image"].pop("decoder")              # frames of an earlier preprocessing
    edit(json.dumps(old))
    with pytest.raises(ArtifactError, match="preprocessing.image.decoder: .* decoded by an unrecorded method"):
        Artifact.load(art)
    del m["files"]["heads_csi.onnx"]
    edit(json.dumps(m))
    with pytest.raises(ArtifactError, match="heads_csi.onnx is not listed in files"):
        Artifact.load(art)
    edit("{not json")
    with pytest.raises(ArtifactError, match="not readable JSON"):
        Artifact.load(art)
    with pytest.raises(ArtifactError, match="manifest not found"):
        Artifact.load(tmp_path / "nowhere")


def test_the_manifest_itself_is_checked_one_flipped_bit_is_refused(artifact, tmp_path, capsys):
    """The manifest carries the hashes of every other file; manifest.sha256 carries its own, in
    sha256sum's format. One bit of `model_config.n_sc` (64 -> 65) would start an xApp that refuses
    every valid indication as `shape`: the loader refuses the artifact instead, in one line."""
    import subprocess
    art = _copy(artifact, tmp_path / "a")
    assert subprocess.run(["sha256sum", "--check", "--quiet", "manifest.sha256"], cwd=art).returncode == 0
    text = (art / "manifest.json").read_text()
    assert '"n_sc": 64' in text
    (art / "manifest.json").write_text(text.replace('"n_sc": 64', '"n_sc": 65', 1))   # '4' -> '5': one bit
    with pytest.raises(ArtifactError, match=r"manifest.json: sha256 mismatch \(manifest.sha256 "):
        Artifact.load(art)
    assert main(["xapp", "--artifact", str(art), "--set", "http.port=0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "manifest.json: sha256 mismatch" in err[0], err
    (art / "manifest.sha256").unlink()
    with pytest.raises(ArtifactError, match=r"manifest.sha256: missing"):
        Artifact.load(art)


def test_a_checkpoint_exports_with_parity_on_the_test_split_of_its_cache(artifact, twin_cache, tmp_path):
    art = export(artifact / "model.pt", tmp_path / "art", cache=twin_cache, samples=32, log=lambda *_: None)
    par = art.manifest["parity"]["fp32"]
    assert par["passed"] and par["split"] == "test" and par["cache"] == str(twin_cache)
    assert art.manifest["preprocessing"]["image"]["source_size"] == [64, 64]
    pixels = par["preprocessing"]                  # the cache's probe frames decoded again, as the xApp would
    assert pixels["frames"] == pixels["identical"] >= 4 and pixels["max_abs_diff"] == 0
    assert art.manifest["preprocessing"]["image"]["decoder"] == image.DECODER


def test_export_refuses_a_cache_of_other_pixels(artifact, twin_cache, tmp_path):
    """A cache decoded by another preprocessing, or whose frames no longer decode to its pixels."""
    cache = tmp_path / "cache"
    shutil.copytree(twin_cache, cache)
    meta = json.loads((cache / "meta.json").read_text())
    meta["preprocessing"]["image"]["decoder"] = "pil-bilinear"
    (cache / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="decoder: frames decoded by pil-bilinear"):
        export(artifact / "model.pt", tmp_path / "a", cache=cache, samples=16, log=lambda *_: None)
    meta["preprocessing"]["image"]["decoder"] = image.DECODER
    (cache / "meta.json").write_text(json.dumps(meta))
    images = np.load(cache / "images.npy", mmap_mode="r+")
    images[meta["preprocessing"]["image"]["probes"][1]["sample"]] ^= 1      # one probe's pixels off by one
    images.flush()
    del images
    with pytest.raises(ArtifactError, match="1 of .* probe frames decode to other pixels"):
        export(artifact / "model.pt", tmp_path / "a", cache=cache, samples=16, log=lambda *_: None)
    assert not (tmp_path / "a").exists()


def test_export_refuses_what_it_cannot_validate(artifact, twin_cache, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    ckpt = artifact / "model.pt"
    with pytest.raises(FileExistsError, match="already exists"):
        export(ckpt, artifact, cache=twin_cache)
    # parity outside tolerance: the export fails and leaves nothing behind
    with pytest.raises(ArtifactError, match="parity outside tolerance: .*feature: max abs diff"):
        export(ckpt, work / "strict", cache=twin_cache, tol=Tolerance(feature=1e-12), samples=16,
               log=lambda *_: None)
    assert list(work.iterdir()) == []
    # an encoders-only checkpoint has no heads to deploy
    model, _, ck = checkpoint.load_wmfm(ckpt)
    enc = checkpoint.save(tmp_path / "encoders.pt", "encoders", model, model.cfg, ck["configs"])
    rc = main(["export", "--checkpoint", str(enc), "--out", str(work / "enc"), "--cache", str(twin_cache)])
    assert rc == 2 and not (work / "enc").exists()
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(work / "x"), "--cache", str(tmp_path)]) == 2
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(work / "x")]) == 2     # no cache recorded
    assert main(["export", "--random-init", "--out", str(work / "r")]) == 2                # no --preset
    if inference.available("tensorrt") is not None:   # asking for engines where they cannot be built
        assert main(["export", "--random-init", "--preset", "tiny", "--out", str(work / "t"), "--tensorrt"]) == 2
        assert not (work / "t").exists()


@pytest.mark.slow
def test_the_trained_model_exports_with_parity_on_its_test_split(tiny_artifact):
    m = json.loads((tiny_artifact / "manifest.json").read_text())
    par = m["parity"]["fp32"]
    assert par["passed"] and par["split"] == "test" and par["samples"] >= 16
    assert par["heads_fused"]["los_agreement"] == 1.0 and par["heads_fused"]["position_within_1cm"] == 1.0
    assert "random_init" not in m["checkpoint_meta"] and m["checkpoint_meta"]["trained_on"]


def test_fp16_pass_keeps_io_and_csi_normalisation_in_fp32(artifact):
    fp32 = onnx.load(str(artifact / "csi_encoder.onnx"))
    mixed = to_mixed_fp16(fp32)
    elem = [i.type.tensor_type.elem_type for i in (*mixed.graph.input, *mixed.graph.output)]
    assert set(elem) == {onnx.TensorProto.FLOAT}
    ops = {n.name: n for n in mixed.graph.node}
    halves = [n for n in mixed.graph.node if n.op_type == "Cast"
              and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for a in n.attribute)]
    assert halves, "nothing was converted"
    assert not any(n.input[0] == "csi" for n in halves), "the raw CSI (gains ~1e-6) must not be cast to fp16"
    assert any(n.startswith("/transform/") for n in ops)
    # real channel gains through the fp32 graph and the mixed one agree to fp16 accuracy, no overflow
    import onnxruntime as ort
    ref = Artifact.load(artifact).reference()
    a = ort.InferenceSession(fp32.SerializeToString()).run(None, {"csi": ref["csi"]})
    b = ort.InferenceSession(mixed.SerializeToString()).run(None, {"csi": ref["csi"]})
    assert all(np.isfinite(x).all() for x in b)
    assert np.abs(a[0] - b[0]).max() < 0.05 * max(1.0, np.abs(a[0]).max())
