"""WMFM model: loss, encoders, training loops, determinism, DDP, checkpoints."""

import math

import numpy as np
import pytest
import torch
from model_helpers import SMALL, aligned_set
from wmfm.model import checkpoint
from wmfm.model.data import label_subset, load_data
from wmfm.model.encoders import AngleDelay
from wmfm.model.hparams import PretrainConfig, SupervisedConfig
from wmfm.model.loss import contrastive_loss, retrieval
from wmfm.model.train import embed, pretrain, train_heads
from wmfm.model.wmfm import WMFM

from wmfm.config import ConfigError


def _unit(n, d, seed):
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


def test_loss_equals_direct_reference_with_same_frame_masking():
    zc, zi = _unit(7, 5, 0), _unit(7, 5, 1)
    frame = torch.tensor([0, 0, 1, 2, 2, 2, 3])
    scale = torch.tensor(math.exp(2.0), dtype=torch.float64)
    got = float(contrastive_loss(zc, zi, scale, frame))
    s = (scale * zc @ zi.T).numpy()
    f = frame.numpy()
    total = 0.0
    for i in range(7):
        allowed = [j for j in range(7) if j == i or f[j] != f[i]]
        total += -s[i, i] + math.log(sum(math.exp(s[i, j]) for j in allowed))     # CSI -> image
        total += -s[i, i] + math.log(sum(math.exp(s[j, i]) for j in allowed))     # image -> CSI
    assert got == pytest.approx(total / 14, rel=1e-10)
    # without frame ids every off-diagonal pair is a negative: a different (larger) value
    assert float(contrastive_loss(zc, zi, scale)) > got


def test_gradients_reach_both_encoders_and_the_temperature():
    torch.manual_seed(0)
    model = WMFM(SMALL)
    data = aligned_set(16, 0)
    z_c, z_i, scale = model(data.csi, data.image_batch(torch.arange(16)))
    contrastive_loss(z_c, z_i, scale, data.frame).backward()
    for enc in (model.csi_encoder, model.image_encoder):
        grads = [p.grad for n, p in enc.named_parameters() if not n.startswith("token_proj")]
        assert all(g is not None for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0
        first = next(iter(enc.parameters()))       # the first layer gets gradient too
        assert float(first.grad.abs().sum()) > 0
    assert float(model.logit_scale.grad.abs()) > 0


def test_mil_gradients_reach_the_tokens_the_csi_encoder_and_the_self_supervision_heads():
    """The mil objective trains the image trunk up to the token stage and the token projection
    (the global image head is not in it), the CSI encoder, the temperature, and with the CSI
    self-supervision terms the decoder and the CSI-to-CSI projection."""
    from model_helpers import crowded_set
    from wmfm.model.hparams import AugmentConfig
    from wmfm.model.train import FrameBatches, mil_step_loss
    torch.manual_seed(0)
    model = WMFM(SMALL)
    data = crowded_set(6, 3, seed=1)
    cfg = PretrainConfig(frames_per_batch=6, mask_weight=1.0, csi_contrast_weight=0.5, augment=AugmentConfig())
    loss, parts = mil_step_loss(model, data, FrameBatches(data, torch.arange(18)), torch.arange(6), cfg,
                                torch.Generator().manual_seed(0))
    loss.backward()
    assert set(parts) == {"frame", "region", "mask", "csi_contrast"} and parts["region"] > 0
    got = {n for n, p in model.named_parameters() if p.grad is not None and float(p.grad.abs().sum()) > 0}
    for prefix in ("csi_encoder.stages", "csi_encoder.trunk", "csi_encoder.proj", "image_encoder.body.0",
                   "image_encoder.token_proj", "csi_decoder", "csi_ssl", "logit_scale"):
        assert any(n.startswith(prefix) for n in got), prefix
    assert not any(n.startswith(("image_encoder.trunk", "image_encoder.proj")) for n in got)


def test_logit_scale_init_and_clamp_in_the_loop():
    model = WMFM(SMALL)
    assert float(model.logit_scale.detach()) == pytest.approx(math.log(1 / 0.07))
    model.logit_scale.data.fill_(9.0)
    model.clamp_()
    assert float(model.logit_scale.detach()) == pytest.approx(math.log(100))
    # a learning rate large enough to push the scale past ln(100) in a few steps: the loop clamps
    data = aligned_set(64, 1)
    cfg = PretrainConfig(batch_size=32, lr=3.0, warmup_steps=1, max_epochs=3, patience=3)
    model, res = pretrain(data, SMALL, cfg, progress=False)
    assert all(h["logit_scale"] <= 100 + 1e-3 for h in res["history"])
    assert float(model.logit_scale.detach()) <= math.log(100) + 1e-6


def test_angle_delay_transform_puts_a_plane_wave_in_its_bin():
    n_ant, n_sc = 32, 64
    u, tau = 0.25, 10.0                                    # sin(AoA), delay in bins
    a, k = np.arange(n_ant)[:, None], np.arange(n_sc)[None, :]
    h = np.exp(-1j * math.pi * u * a) * np.exp(-2j * math.pi * tau * k / n_sc) * 3e-7
    x = torch.from_numpy(np.stack([h.real, h.imag])[None].astype(np.float32))
    m = AngleDelay(n_ant, n_sc)(x)[0, 0]                   # linear magnitude map [A, K]
    row, col = divmod(int(m.argmax()), n_sc)
    # DFT over antennas with e^{-j pi u a}: bin = -u * n_ant / 2 (mod n_ant), fftshifted by n_ant/2
    assert col == 10
    assert row == (round(-u * n_ant / 2) + n_ant // 2) % n_ant
    assert float((m ** 2).sum()) == pytest.approx(n_ant * n_sc, rel=1e-4)   # unitary: power-normalised map
    # scale invariance: the encoder never sees the path loss
    assert torch.allclose(AngleDelay(n_ant, n_sc)(x * 1e3), AngleDelay(n_ant, n_sc)(x), atol=1e-4)


def test_retrieval_far_above_chance_on_an_aligned_set():
    data = aligned_set(600, 2)
    cfg = PretrainConfig(objective="global_clip", batch_size=64, lr=2e-3, warmup_steps=20, max_epochs=25, patience=25)
    model, res = pretrain(data, SMALL, cfg, progress=False)
    emb = embed(model, data, kind="embedding")
    test = data.index("test")
    r = retrieval(emb.csi[test], emb.image[test], data.frame[test])
    assert r["candidates"] == 90
    assert r["top5"] > 8 * r["chance_top5"], r          # chance top-5 = 5.6 %
    assert r["top1"] > 10 * r["chance_top1"], r


def test_label_subsets_are_nested_and_keep_both_classes():
    los = torch.tensor([1.0] * 90 + [0.0] * 10)
    train = torch.arange(100)
    prev = set()
    for f in (0.01, 0.05, 0.1, 0.2, 0.5, 1.0):
        sub = label_subset(los, train, f, seed=3)
        assert prev <= set(sub.tolist())
        assert set(los[sub].tolist()) == {0.0, 1.0}
        prev = set(sub.tolist())
    assert prev == set(range(100))
    assert not torch.equal(label_subset(los, train, 0.2, 0), label_subset(los, train, 0.2, 1))


def test_same_seed_same_numbers(twin_cache):
    data = load_data(twin_cache, SMALL.image_size)
    cfg = PretrainConfig(batch_size=32, max_epochs=2, patience=2, warmup_steps=2)
    m1, r1 = pretrain(data, SMALL, cfg, progress=False)
    m2, r2 = pretrain(data, SMALL, cfg, progress=False)
    assert [h["val_loss"] for h in r1["history"]] == [h["val_loss"] for h in r2["history"]]
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    emb = embed(m1, data)
    sub = label_subset(data.los, data.index("train"), 0.5, seed=1)
    sup = SupervisedConfig(min_steps=30, max_steps=60, eval_every=10)
    _, a = train_heads(emb, data, "fused", sub, sup, seed=1)
    _, b = train_heads(emb, data, "fused", sub, sup, seed=1)
    _, c = train_heads(emb, data, "fused", sub, sup, seed=2)
    keys = ("los_balanced_accuracy", "loc_mean_error_m", "loc_p90_error_m")
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert np.array_equal(a["_pos"], b["_pos"]) and not np.array_equal(a["_pos"], c["_pos"])


def test_checkpoint_roundtrip_and_refusals(tmp_path):
    model = WMFM(SMALL).eval()
    data = aligned_set(8, 4)
    path = checkpoint.save(tmp_path / "enc.pt", "encoders", model, SMALL, {"pretrain": {"lr": 1.0}})
    loaded, heads, ckpt = checkpoint.load_wmfm(path)
    assert heads == {} and ckpt["configs"]["pretrain"]["lr"] == 1.0 and loaded.cfg == SMALL
    img = data.image_batch(torch.arange(8))
    assert torch.equal(loaded.encode_csi(data.csi), model.encode_csi(data.csi))
    assert torch.equal(loaded.encode_image(img), model.encode_image(img))
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(ConfigError, match="format"):
        checkpoint.load_wmfm(bad)
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not a readable checkpoint"):
        checkpoint.load_wmfm(tmp_path / "junk.pt")
    # a checkpoint of an earlier model (no image tokens): one clear line, not a traceback
    old = torch.load(path, weights_only=True)
    old["state_dict"] = {k: v for k, v in old["state_dict"].items() if "token_proj" not in k}
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(ConfigError, match=r"state_dict: does not match this version's model \(Missing key"):
        checkpoint.load_wmfm(tmp_path / "old.pt")


def test_bad_experiment_config_names_the_field(tmp_path, capsys):
    from wmfm.cli import main
    (tmp_path / "over.yaml").write_text("pretrain:\n  batch_size: one\n")
    rc = main(["experiment", "--preset", "tiny", "--out", str(tmp_path / "x"), "--config", str(tmp_path / "over.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "experiment.pretrain.batch_size" in err[0]
    (tmp_path / "over.yaml").write_text("fractions: [0.1, 0.5]\n")
    assert main(["experiment", "--preset", "tiny", "--out", str(tmp_path / "x"),
                 "--config", str(tmp_path / "over.yaml")]) == 2
    assert "experiment.fractions" in capsys.readouterr().err


def test_summary_gains_and_smallest_winning_fraction():
    from wmfm.model.experiment import preset, summarize
    cfg = preset("tiny", {"fractions": [0.1, 0.2, 0.5, 1.0], "seeds": [0, 1]})
    e2e_full_ba, e2e_full_err = 0.80, 2.0
    wmfm = {0.1: (0.70, 3.0), 0.2: (0.85, 1.5), 0.5: (0.79, 1.8), 1.0: (0.90, 1.0)}   # loses BA at 50 %
    runs = []
    for seed in (0, 1):
        for f in cfg.fractions:
            for mod in ("fused", "csi", "image"):
                ba, err = wmfm[f]
                runs.append({"method": "wmfm", "modality": mod, "label_fraction": f, "seed": seed,
                             "los_balanced_accuracy": ba, "loc_mean_error_m": err, "loc_median_error_m": err,
                             "loc_p90_error_m": err, "train_time_s": 2.0, "train_time_with_embedding_s": 3.0})
            ba, err = (e2e_full_ba, e2e_full_err) if f == 1.0 else (0.6, 4.0)
            runs.append({"method": "e2e", "modality": "fused", "label_fraction": f, "seed": seed,
                         "los_balanced_accuracy": ba + 0.01 * seed, "loc_mean_error_m": err,
                         "loc_median_error_m": err, "loc_p90_error_m": err, "train_time_s": 40.0})
    s = summarize(runs, cfg, pretrain_s=100.0, embed_s=1.0)
    ref_ba = e2e_full_ba + 0.005
    assert s["los_ba_gain_pct"] == pytest.approx(100 * (0.90 - ref_ba) / ref_ba)
    assert s["loc_error_reduction_pct"] == pytest.approx(50.0)
    assert s["train_time_ratio"] == pytest.approx(20.0)
    assert s["train_time_ratio_with_embedding"] == pytest.approx(40 / 3)
    # a win at 20 % does not count: WMFM loses at 50 %, so it beats the full E2E only from 100 %
    assert s["smallest_fraction_beating_e2e_full"] == {"los_balanced_accuracy": 1.0, "loc_mean_error_m": 0.2}
    row = next(r for r in s["table"] if r["method"] == "e2e" and r["label_fraction"] == 1.0)
    assert row["los_balanced_accuracy_std"] == pytest.approx(np.std([0.80, 0.81], ddof=1))


def test_the_report_says_which_way_the_error_goes():
    from wmfm.model.report import error_change
    assert error_change(-55.1) == "WMFM's error 55.1 % higher"
    assert error_change(12.0) == "WMFM's error 12.0 % lower"


def test_training_threads_leave_room_for_a_neighbour(monkeypatch):
    import os

    import torch
    from wmfm.model.train import set_threads
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
        assert set_threads() == 2 == torch.get_num_threads()          # half the usable cores
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
        assert set_threads() == 1
        assert set_threads(3) == 3 == torch.get_num_threads()         # --threads wins
    finally:
        torch.set_num_threads(before)
