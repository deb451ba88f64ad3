"""`wmfm experiment --preset tiny` end to end (twin -> cache -> pretrain -> heads + E2E -> report, model.pt)."""


import numpy as np
import pytest
import torch
from wmfm.model import checkpoint
from wmfm.model.data import load_data
from wmfm.model.experiment import VARIANTS

RUN_KEYS = {"method", "modality", "label_fraction", "seed", "los_balanced_accuracy", "loc_mean_error_m",
            "loc_median_error_m", "loc_p90_error_m", "train_time_s"}

# `tiny` (the tiny experiment, run once per session) is in tests/conftest.py; the tests that need
# a trained model are `slow` (`make test-all`).
pytestmark = pytest.mark.slow


@pytest.mark.timeout(1800)        # the `tiny` experiment runs in its set-up: ~6 min, ~14 on a slow host day
def test_report_has_every_run_and_the_summary(tiny):
    out, rep = tiny
    fractions, seeds = rep["config"]["fractions"], rep["config"]["seeds"]
    assert fractions == [0.01, 0.05, 0.1, 0.2, 0.5, 1.0] and len(seeds) >= 3
    runs = rep["runs"]
    assert all(RUN_KEYS <= set(r) for r in runs)
    combos = {(r["method"], r["modality"], r["label_fraction"], r["seed"]) for r in runs}
    for f in fractions:
        for s in seeds:
            assert {("wmfm", m, f, s) for m in ("fused", "csi", "image")} | {("e2e", "fused", f, s)} <= combos
            assert {("wmfm_random", m, f, s) for m in ("fused", "csi")} <= combos        # the random-encoder control
    # E2E's learning rate: chosen on val per fraction among the configured rates, the same for every seed
    tuning = {t["label_fraction"]: t for t in rep["summary"]["e2e_tuning"]}
    assert set(tuning) == set(fractions)
    for r in runs:
        if r["method"] == "e2e":
            assert r["lr"] == tuning[r["label_fraction"]]["chosen_lr"] in rep["config"]["e2e_lrs"]
    # the objective: every ablation variant scored on val, the chosen one is the val rank-sum best
    ab = rep["ablation"]
    assert [a["variant"] for a in ab] == rep["config"]["ablation"]
    best = min(ab, key=lambda a: (a["val_rank_sum"], a["val"]["fused"]["loc_mean_error_m"]))
    assert rep["objective"]["chosen"] == best["variant"]
    assert rep["pretrain"]["objective"] == VARIANTS[best["variant"]]["objective"]
    # the CSI-to-vehicle association, from the twin's projected boxes (evaluation only)
    a = rep["association_test"]
    assert a["visible"] > 0.5 * a["ues"] and 0 < a["chance_association"] < 1
    assert 0 <= a["association_accuracy"] <= 1 and rep["unseen_world"]["association_test"]["visible"] > 0
    claims = rep["summary"]["claims"]
    assert {c["met"] for c in claims} <= {True, False, None} and len(claims) >= 8
    assert any("20%" in c["claim"] and "E2E on 100 %" in c["claim"] for c in claims)
    s = rep["summary"]
    for k in ("los_ba_gain_pct", "loc_error_reduction_pct", "train_time_ratio", "train_time_ratio_with_embedding"):
        assert np.isfinite(s["headline"][k]) and s[k] == s["headline"][k]
    assert [g["label_fraction"] for g in s["per_fraction_csi_only"]] == fractions
    assert all(isinstance(r["stopped_by_budget"], bool) for r in runs if r["method"] == "e2e")
    assert set(s["smallest_fraction_beating_e2e_full"]) == {"los_balanced_accuracy", "loc_mean_error_m"}
    assert all(r["train_time_s"] > 0 for r in runs)
    # nested subsets: more labels, never fewer samples
    lab = {r["label_fraction"]: r["labelled"] for r in runs if r["seed"] == seeds[0] and r["method"] == "e2e"}
    assert [lab[f] for f in fractions] == sorted(lab[f] for f in fractions)
    for png in ("fractions.png", "loc_cdf.png", "confusion.png", "training_curves.png", "embeddings_pca.png"):
        assert (out / png).stat().st_size > 10_000
    md = (out / "report.md").read_text()
    assert "Headline" in md and "retrieval" in md and "The paper's claims, measured" in md
    assert "Pretraining objective, chosen on val" in md and "association" in md
    # nothing of the machine it ran on: the scenario is named relative to the report
    assert rep["dataset"]["source"]["scenario"] == "data/twin"
    assert str(out.parent) not in (out / "report.json").read_text()
    assert rep["environment"]["threads"] >= 1


def test_heads_beat_chance_on_test(tiny):
    out, rep = tiny
    data = load_data(out / "data" / "cache", (32, 32))
    train, test = data.index("train"), data.index("test")
    # chance: always the training mean position; a coin for LoS (balanced accuracy 0.5)
    chance_err = float((data.position[test] - data.position[train].mean(0)).norm(dim=1).mean())
    full = [r for r in rep["runs"] if r["method"] == "wmfm" and r["label_fraction"] == 1.0
            and r["modality"] in ("fused", "csi")]
    assert all(r["los_balanced_accuracy"] > 0.6 for r in full), full
    assert all(r["loc_mean_error_m"] < 0.7 * chance_err for r in full), (chance_err, full)


def test_model_pt_is_deployable(tiny):
    out, rep = tiny
    model, heads, ckpt = checkpoint.load_wmfm(out / "model.pt")
    assert ckpt["kind"] == "model" and set(heads) == {"fused", "csi"}
    assert "pretrain" in ckpt["configs"] and "heads" in ckpt["configs"]
    data = load_data(out / "data" / "cache", model.cfg.image_size)
    idx = data.index("test")[:16]
    assert {h["input"] for h in ckpt["heads"].values()} == {rep["config"]["head_input"]} == {"feature"}
    assert ckpt["heads"]["fused"]["kind"] == "fused_attention"
    assert ckpt["meta"]["objective"] == rep["objective"]["chosen"]
    with torch.no_grad():
        z_c = model.features_csi(data.csi[idx])
        _, _, tokens = model.encode_image_all(data.image_batch(idx))
        logit, pos = heads["fused"](z_c, model.encode_csi(data.csi[idx]), tokens)
        logit_c, pos_c = heads["csi"](z_c)
    assert logit.shape == (16,) and pos.shape == (16, 3) and pos_c.shape == (16, 3)
    # positions come out in metres, near the road (not standardised units)
    assert float((pos - data.position[idx]).norm(dim=1).mean()) < 30


def test_foundation_protocol_sections(tiny):
    """Corpus pretraining (no target data, no labels), the control, the pool-size curve and the
    unseen world, all in report.json, report.md and pool_curve.png."""
    out, rep = tiny
    cfg, pool = rep["config"], rep["pretrain_pool"]
    assert cfg["pretrain_on"] == "corpus" and pool["source"] == "corpus"
    assert pool["worlds"] == [1, 2] and cfg["unseen_world"] not in pool["worlds"]
    assert pool["train_samples"] > pool["labelled_train_samples"]
    assert rep["pretrain"]["train_samples"] == pool["train_samples"]
    # the control: today's protocol, pretraining on the target's train split
    ctrl = {(r["modality"], r["label_fraction"], r["seed"]) for r in rep["runs"] if r["method"] == "wmfm_target"}
    assert {(m, f, s) for m in ("fused", "csi") for f in cfg["fractions"] for s in cfg["seeds"]} == ctrl
    assert rep["control"]["pretrain"]["train_samples"] == pool["labelled_train_samples"]
    # the curve: nested pools, one budget, the control as its own point
    curve = rep["pool_curve"]
    corpus_pts = [p for p in curve if p["pool"] == "corpus" and "results" in p]
    sizes = [p["pool_samples"] for p in corpus_pts]
    assert sizes == sorted(sizes) and sizes[-1] == pool["train_samples"] and len(sizes) >= 2
    assert all(p["pretrain"]["planned_steps"] <= cfg["pretrain"]["max_steps"] for p in corpus_pts)
    assert [p["pool"] for p in curve].count("target") == 1
    for p in corpus_pts:
        assert {(r["modality"], r["label_fraction"]) for r in p["results"]} == {
            (m, f) for m in ("fused", "csi") for f in cfg["pool_fractions"]}
        assert all(np.isfinite(r["unseen_loc_mean_error_m_mean"]) for r in p["results"])
    # every run is also scored on the unseen world; the few-label transfer has heads and E2E
    u = rep["unseen_world"]
    assert u["world"] == cfg["unseen_world"] and u["dataset"]["splits"]["test"]["samples"] > 0
    assert all(set(r["unseen"]) >= {"los_balanced_accuracy", "loc_mean_error_m"} for r in rep["runs"])
    assert {r["method"] for r in u["few_labels"]} == {"wmfm", "wmfm_target", "e2e"}
    assert any(c["claim"].startswith("unseen world") for c in rep["summary"]["claims"])
    # the unseen world is another street: its positions are not the target's
    unseen = load_data(out / "data" / "unseen" / "cache", (32, 32))
    target = load_data(out / "data" / "cache", (32, 32))
    assert unseen.meta["generator"]["config"]["world"] == cfg["unseen_world"]
    assert unseen.meta["source"]["bs_pose"] != target.meta["source"]["bs_pose"]
    assert (out / "pool_curve.png").stat().st_size > 10_000
    md = (out / "report.md").read_text()
    assert "Pool-size curve" in md and f"Unseen world {cfg['unseen_world']}" in md
