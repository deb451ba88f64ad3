"""Every inference backend through the same parity and error tests (one parametrised fixture).

TensorRT cases run only on a host with TensorRT and an NVIDIA GPU; elsewhere they are
skipped with the reason (nothing is faked).
"""

import numpy as np
import pytest
from wmfm.xapp import inference

from wmfm.artifact import Artifact, InputError

# (backend, options, exact): exact = FP32, held to the export tolerances
CASES = {
    "onnxruntime": ("onnxruntime", {}, True),
    "onnxruntime-fp16": ("onnxruntime", {"precision": "fp16"}, False),
    "torch": ("torch", {}, True),
    "tensorrt": ("tensorrt", {}, True),
    "tensorrt-fp16": ("tensorrt", {"precision": "fp16"}, False),
}


@pytest.fixture(scope="module", params=[pytest.param(c, marks=pytest.mark.gpu) if c.startswith("tensorrt") else c
                                        for c in CASES])
def backend(request, artifact):
    name, opts, exact = CASES[request.param]
    why = inference.available(name)
    if why is not None:
        pytest.skip(f"{name}: {why}")
    with inference.load(name, artifact, **opts) as b:
        yield b, exact


def test_parity_with_torch_on_held_out_samples(backend):
    b, exact = backend
    res = b.self_test()
    assert res["samples"] >= 16
    for mode in ("heads_fused", "heads_csi"):
        if exact:
            assert res[mode]["los_agreement"] == 1.0
            assert res[mode]["position_max_err_m"] <= 0.01          # the same position within 1 cm
        else:                                                     # FP16 encoders
            assert res[mode]["los_agreement"] >= 0.9
            assert res[mode]["position_max_err_m"] <= 0.5
    d = res["max_abs_diff"]
    feat_tol, emb_tol = (1e-3, 1e-4) if exact else (5e-2, 5e-3)
    assert d["csi_encoder.feature"] <= feat_tol and d["image_encoder.feature"] <= feat_tol
    assert d["csi_encoder.embedding"] <= emb_tol and d["image_encoder.embedding"] <= emb_tol


def test_outputs_have_the_manifest_shapes(backend, artifact):
    b, _ = backend
    ref = Artifact.load(artifact).reference()
    csi, img = ref["csi"][:3], ref["image"][:3]
    z, v = b.embed_csi(csi), b.embed_image(img)
    cfg = b.artifact.manifest["model_config"]
    assert z.feature.shape == (3, cfg["csi"]["feature_dim"]) and v.feature.shape == (3, cfg["image"]["feature_dim"])
    assert z.embedding.shape == v.embedding.shape == (3, cfg["embed_dim"])
    assert v.tokens.shape[0] == 3 and v.tokens.shape[2] == cfg["embed_dim"] and v.tokens.shape[1] > 1
    np.testing.assert_allclose(np.linalg.norm(z.embedding, axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(v.tokens, axis=2), 1.0, atol=1e-3)
    for out in (b.heads(z, v.tokens), b.heads(z), b.fused(csi, img)):
        assert out.los_logit.shape == out.p_los.shape == (3,) and out.position.shape == (3, 3)
        assert out.los_logit.dtype == np.float32
        assert np.all((out.p_los >= 0) & (out.p_los <= 1))


def test_batch_one_and_large_batches_agree(backend, artifact):
    """GroupNorm makes the function batch-independent; batches above max_batch are split."""
    b, exact = backend
    ref = Artifact.load(artifact).reference()
    n = b.max_batch + 5
    idx = np.arange(n) % len(ref["csi"])
    csi, img = ref["csi"][idx], ref["image"][idx]
    big = b.fused(csi, img)
    assert big.position.shape == (n, 3)
    one = [b.fused(csi[i:i + 1], img[i:i + 1]) for i in (0, 1, n - 1)]
    tol = 1e-3 if exact else 5e-2
    for k, o in zip((0, 1, n - 1), one):
        np.testing.assert_allclose(o.position[0], big.position[k], atol=tol)
        np.testing.assert_allclose(o.p_los[0], big.p_los[k], atol=tol)


def test_bad_inputs_get_one_clear_error(backend, artifact):
    b, _ = backend
    ref = Artifact.load(artifact).reference()
    csi, img = ref["csi"][:2], ref["image"][:2]
    with pytest.raises(InputError, match=r"csi: expected shape \[.B., 2, 32, 64\], got \[2, 2, 32, 32\]"):
        b.embed_csi(csi[..., :32])
    with pytest.raises(InputError, match="image: expected shape"):
        b.embed_image(img[0])
    with pytest.raises(InputError, match="csi: expected a float array"):
        b.embed_csi(csi.astype(np.int32))
    with pytest.raises(InputError, match="csi: empty batch"):
        b.embed_csi(csi[:0])
    z, tok = b.embed_csi(csi), b.embed_image(img).tokens
    with pytest.raises(InputError, match="disagree on the batch size"):
        b.heads(z, tok[:1])
    with pytest.raises(InputError, match="image_tokens: expected shape"):
        b.heads(z, tok[:, :7])
    # float64 input is accepted (cast to the graph's float32) and gives the same answer
    np.testing.assert_allclose(b.embed_csi(csi.astype(np.float64)).feature, z.feature, atol=1e-5)


def test_unknown_backend_and_auto(artifact):
    with pytest.raises(ValueError, match="backend: expected one of"):
        inference.load("openvino", artifact)
    b = inference.load("auto", artifact)
    want = "tensorrt" if inference.available("tensorrt") is None else "onnxruntime"
    assert b.name == want
    assert b.self_test()["heads_fused"]["los_agreement"] == 1.0
