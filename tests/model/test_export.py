"""`wmfm export` on the tiny experiment's model.pt: manifest, parity, artifact checks, FP16 pass, bench."""

import json
import shutil

import numpy as np
import onnx
import pytest
from wmfm.model.export import Tolerance, export
from wmfm.model.fp16 import to_mixed_fp16
from wmfm.xapp import bench, inference

from wmfm.artifact import SCHEMA, Artifact, ArtifactError, sha256
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
    assert m["configs"]["pretrain"] and m["opset"] == 17
    par = m["parity"]["fp32"]
    assert par["passed"] and par["split"] == "test" and par["samples"] >= 16
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

    art = _copy(artifact, tmp_path / "c")
    m = json.loads((art / "manifest.json").read_text())
    (art / "manifest.json").write_text(json.dumps(m | {"schema": "wmfm-artifact/0"}))
    with pytest.raises(ArtifactError, match="schema: expected 'wmfm-artifact/1', got 'wmfm-artifact/0'"):
        Artifact.load(art)
    del m["files"]["heads_csi.onnx"]
    (art / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="heads_csi.onnx is not listed in files"):
        Artifact.load(art)
    (art / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not readable JSON"):
        Artifact.load(art)
    with pytest.raises(ArtifactError, match="manifest not found"):
        Artifact.load(tmp_path / "nowhere")


def test_export_refuses_what_it_cannot_validate(tiny, tmp_path, artifact):
    out, _ = tiny
    with pytest.raises(FileExistsError, match="already exists"):
        export(out / "model.pt", artifact)
    # parity outside tolerance: the export fails and leaves nothing behind
    with pytest.raises(ArtifactError, match="parity outside tolerance: .*feature: max abs diff"):
        export(out / "model.pt", tmp_path / "strict", tol=Tolerance(feature=1e-12), samples=16, log=lambda *_: None)
    assert not (tmp_path / "strict").exists() and list(tmp_path.iterdir()) == []
    # an encoders-only checkpoint has no heads to deploy
    rc = main(["export", "--checkpoint", str(out / "encoders.pt"), "--out", str(tmp_path / "enc")])
    assert rc == 2 and not (tmp_path / "enc").exists()
    assert main(["export", "--checkpoint", str(out / "model.pt"), "--out", str(tmp_path / "x"),
                 "--cache", str(tmp_path)]) == 2
    if inference.available("tensorrt") is not None:   # asking for engines where they cannot be built
        assert main(["export", "--checkpoint", str(out / "model.pt"), "--out", str(tmp_path / "t"), "--tensorrt"]) == 2
        assert not (tmp_path / "t").exists()


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


def test_bench_model_reports_every_backend_against_torch_eager(artifact, tmp_path, capsys):
    rep = bench.run(artifact, calls=30, batches=(1, 8), rounds=2, progress=False, log=lambda *_: None)
    got = {(r["backend"], r["component"], r["batch"]) for r in rep["results"]}
    for be in ("torch-eager", "onnxruntime"):
        for comp in bench.COMPONENTS:
            assert {(be, comp, 1), (be, comp, 8)} <= got
    for r in rep["results"]:
        assert 0 < r["p50_ms"] <= r["p99_ms"] and r["throughput_per_s"] > 0
        assert r["calls"] >= (30 if r["batch"] == 1 else 50)
    assert rep["speedup_vs_torch_eager"]["onnxruntime"] > 0
    out = tmp_path / "bench.json"
    assert main(["bench", "model", "--artifact", str(artifact), "--calls", "20", "--rounds", "1",
                 "--out", str(out), "--quiet", "--backends", "onnxruntime"]) == 0
    saved = json.loads(out.read_text())
    assert saved["format"] == "wmfm-bench-model/1" and set(saved["speedup_vs_torch_eager"]) == {"onnxruntime"}
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert "speed-up over torch eager" in capsys.readouterr().out
