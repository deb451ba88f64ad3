"""The paper's comparison, WMFM (frozen encoders + heads) against E2E, in one run on a dataset cache
(`wmfm experiment` makes the twin and the cache first: wmfm/pipeline.py).

    cache -> pretrain once -> one embedding pass
    -> for every seed and label fraction (nested, stratified subsets of the train split):
         WMFM heads (fused, csi, image) and the E2E baseline (fused)
    -> report.json, report.md, PNG plots, model.pt (encoders + fused/csi heads on all labels)

Every figure is on the test split; val picks the early-stopping point; test picks nothing.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import wmfm
from wmfm.config import ConfigError, check, from_dict, to_dict

from . import checkpoint, report
from .data import label_subset, load_data
from .heads import MODALITIES
from .hparams import CSIEncoderConfig, ImageEncoderConfig, ModelConfig, PretrainConfig, SupervisedConfig
from .loss import retrieval
from .train import embed, pretrain, train_e2e, train_heads

FRACTIONS = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)
METRICS = ("los_balanced_accuracy", "loc_mean_error_m", "loc_median_error_m", "loc_p90_error_m", "train_time_s")


@dataclass(frozen=True)
class ExperimentConfig:
    scenes: int = 4000                        # twin scenes (ignored with --scenario / --cache)
    twin_seed: int = 0
    # Frames 0.1 s apart are near-duplicates; 0.5 s gives five times more distinct traffic per
    # frame generated, which is what contrastive pretraining needs to generalise (measured).
    scene_period_s: float = 0.5
    ues_per_scene: int = 2                    # connected vehicles per frame (they share the image)
    image_size: tuple[int, int] = (64, 64)    # cache image size
    fractions: tuple[float, ...] = FRACTIONS
    seeds: tuple[int, ...] = (0, 1, 2)
    head_modalities: tuple[str, ...] = MODALITIES
    e2e_modalities: tuple[str, ...] = ("fused",)
    # What the WMFM heads read: the encoders' representations before the projections
    # ("feature", as CLIP's linear probes) or the unit-norm joint embeddings ("embedding").
    head_input: str = "feature"
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    heads: SupervisedConfig = field(default_factory=SupervisedConfig)
    e2e: SupervisedConfig = field(default_factory=SupervisedConfig)

    def validate(self, where: str) -> None:
        check(self.scenes >= 200, f"{where}.scenes", "must be >= 200 (three time blocks with guards)")
        check(len(self.fractions) > 0 and all(0 < f <= 1 for f in self.fractions), f"{where}.fractions",
              "must be in (0, 1]")
        check(1.0 in self.fractions, f"{where}.fractions", "must include 1.0 (the reference E2E)")
        check(len(self.seeds) >= 1, f"{where}.seeds", "need at least one seed")
        check({"fused", "csi"} <= set(self.head_modalities) <= set(MODALITIES), f"{where}.head_modalities",
              f"must include 'fused' and 'csi' (the deployable heads), subset of {list(MODALITIES)}")
        check("fused" in self.e2e_modalities and set(self.e2e_modalities) <= set(MODALITIES),
              f"{where}.e2e_modalities", f"must include 'fused', subset of {list(MODALITIES)}")
        check(self.head_input in ("feature", "embedding"), f"{where}.head_input", "must be 'feature' or 'embedding'")
        check(tuple(self.image_size) == tuple(self.model.image_size), f"{where}.image_size",
              "must equal model.image_size")


def _preset_tiny() -> ExperimentConfig:
    model = ModelConfig(image_size=(32, 32), embed_dim=64,
                        csi=CSIEncoderConfig(channels=(8, 16, 32), feature_dim=128),
                        image=ImageEncoderConfig(channels=(8, 16, 32), feature_dim=128))
    return ExperimentConfig(
        scenes=500, image_size=(32, 32), model=model, seeds=(0, 1, 2),
        pretrain=PretrainConfig(batch_size=128, max_epochs=15, patience=4, warmup_steps=10),
        heads=SupervisedConfig(epochs=50, min_steps=60, max_steps=200, eval_every=20, patience=4),
        e2e=SupervisedConfig(epochs=10, min_steps=40, max_steps=120, eval_every=20, patience=4))


def _preset_cpu() -> ExperimentConfig:
    # Sized for 45 min on 2 cores. E2E: up to 25 passes over its labelled subset (pretraining
    # may make 20 over the unlabelled split), at least 200 steps for the smallest subsets;
    # patience (8 checks = 400 steps without progress) ends most runs before the cap.
    return ExperimentConfig(
        pretrain=PretrainConfig(max_epochs=20, patience=4),
        heads=SupervisedConfig(batch_size=256, epochs=100, min_steps=300, max_steps=1000, eval_every=50, patience=8),
        e2e=SupervisedConfig(epochs=25, min_steps=200, max_steps=2000, eval_every=50, patience=8))


def _preset_gpu() -> ExperimentConfig:
    model = ModelConfig(image_size=(128, 128), csi=CSIEncoderConfig(channels=(32, 64, 128), feature_dim=512),
                        image=ImageEncoderConfig(channels=(32, 64, 128, 192, 256), feature_dim=512))
    return ExperimentConfig(
        scenes=20000, image_size=(128, 128), seeds=(0, 1, 2, 3, 4), e2e_modalities=MODALITIES, model=model,
        pretrain=PretrainConfig(batch_size=512, max_epochs=100, patience=10, warmup_steps=300),
        heads=SupervisedConfig(epochs=300, min_steps=500, max_steps=8000, eval_every=100, patience=10),
        e2e=SupervisedConfig(epochs=100, min_steps=500, max_steps=20000, eval_every=100, patience=10))


PRESETS = {"tiny": _preset_tiny, "cpu": _preset_cpu, "gpu": _preset_gpu}


def preset(name: str, overrides: dict | None = None) -> ExperimentConfig:
    """A preset, optionally with a (partial, nested) dict of overrides on top; validated."""
    if name not in PRESETS:
        raise ValueError(f"preset: expected one of {list(PRESETS)}, got {name!r}")
    base = to_dict(PRESETS[name]())
    return from_dict(ExperimentConfig, _merge(base, overrides or {}), "experiment")


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def run(cfg: ExperimentConfig, out: str | Path, cache: str | Path, device: str = "cpu", progress: bool = True,
        preset_name: str = "custom", t_start: float | None = None) -> dict:
    """The sweep on ``cache`` (a `wmfm dataset build` output); writes everything into ``out``.
    ``t_start``: perf_counter time the whole job started (the report's wall time counts from it)."""
    out, cache = Path(out), Path(cache)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    t_all = time.perf_counter() if t_start is None else t_start
    data = load_data(cache, cfg.model.image_size)
    _check_shapes(data, cfg)
    data = data.to(device)

    encoders, pre = pretrain(data, cfg.model, cfg.pretrain, device=device, progress=progress)
    checkpoint.save(out / "encoders.pt", "encoders", encoders, cfg.model, {"pretrain": to_dict(cfg.pretrain)},
                    meta={"pretrain": {k: v for k, v in pre.items() if k != "history"}})
    t0 = time.perf_counter()
    z_c, z_i = embed(encoders, data, device=device, kind=cfg.head_input)      # the one-off pass the heads use
    embed_s = time.perf_counter() - t0
    e_c, e_i = (z_c, z_i) if cfg.head_input == "embedding" else embed(encoders, data, device=device)

    test = data.index("test").cpu()
    frame = data.frame.cpu()
    retr = retrieval(e_c[test], e_i[test], frame[test])
    train_idx = data.index("train").cpu()

    runs, keep, deploy = [], {}, {}
    jobs = [(s, f) for s in cfg.seeds for f in cfg.fractions]
    bar = tqdm(jobs, desc="heads + e2e", unit="run", disable=not progress)
    for seed, frac in bar:
        sub = label_subset(data.los.cpu(), train_idx, frac, seed).to(data.los.device)
        for mod in cfg.head_modalities:
            bar.set_postfix_str(f"seed {seed} fraction {frac:g} wmfm {mod}")
            heads, res = train_heads(z_c.to(device), z_i.to(device), data, mod, sub, cfg.heads, seed)
            runs.append(_row("wmfm", mod, frac, seed, res, embed_s))
            _keep(keep, runs[-1], res)
            if frac == 1.0 and seed == cfg.seeds[0] and mod in ("fused", "csi"):
                deploy[mod] = heads
        for mod in cfg.e2e_modalities:
            bar.set_postfix_str(f"seed {seed} fraction {frac:g} e2e {mod}")
            res = train_e2e(data, cfg.model, mod, sub, cfg.e2e, cfg.pretrain.augment, seed)
            runs.append(_row("e2e", mod, frac, seed, res, None))
            _keep(keep, runs[-1], res)

    checkpoint.save(out / "model.pt", "model", encoders, cfg.model,
                    {"pretrain": to_dict(cfg.pretrain), "heads": to_dict(cfg.heads)}, heads=deploy,
                    meta={"trained_on": "all labels of the train split", "seed": cfg.seeds[0], "cache": str(cache),
                          "dataset": data.meta.get("source", {}), "wmfm": wmfm.__version__},
                    head_input=cfg.head_input)
    rep = {
        "format": "wmfm-report/1", "preset": preset_name, "created_by": f"wmfm {wmfm.__version__}",
        "config": to_dict(cfg), "dataset": _dataset_summary(data, out), "device": device,
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                        "cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "pretrain": pre, "embedding_pass_s": embed_s, "retrieval_test": retr,
        "runs": [{k: v for k, v in r.items() if not k.startswith("_")} for r in runs],
        "summary": summarize(runs, cfg, pre["seconds"], embed_s),
        "budget": _budget_text(cfg),
    }
    rep["wall_time_s"] = time.perf_counter() - t_all
    (out / "report.json").write_text(json.dumps(rep, indent=2))
    dev_test = test.to(data.los.device)
    report.write(rep, out, keep, {"z_csi": e_c[test], "z_img": e_i[test], "los": data.los[dev_test].cpu(),
                                  "pos": data.position[dev_test].cpu()})
    return rep


def _check_shapes(data, cfg: ExperimentConfig) -> None:
    _, _, a, k = data.csi.shape
    if (a, k) != (cfg.model.n_ant, cfg.model.n_sc):
        raise ConfigError(f"experiment.model.n_ant/n_sc: the cache has CSI {a}x{k}, the model expects "
                          f"{cfg.model.n_ant}x{cfg.model.n_sc}")
    for name in ("train", "val", "test"):
        idx = data.index(name)
        if len(idx) < 10 or len(set(data.los[idx].tolist())) < 2:
            raise ConfigError(f"experiment.scenes: the {name} split has {len(idx)} samples and needs both LoS and "
                              "NLoS ones; use more scenes")


def _row(method: str, modality: str, frac: float, seed: int, res: dict, embed_s: float | None) -> dict:
    row = {"method": method, "modality": modality, "label_fraction": frac, "labelled": res["labelled"], "seed": seed}
    row |= {k: res[k] for k in ("los_balanced_accuracy", "los_accuracy", "los_confusion", "loc_mean_error_m",
                                "loc_median_error_m", "loc_p90_error_m", "train_time_s", "steps", "planned_steps",
                                "best_step_los", "best_step_pos")}
    # the budget, not early stopping, ended the run while a task was still improving
    checks = [h["step"] for h in res["history"]]
    row["stopped_by_budget"] = bool(row["steps"] == row["planned_steps"] and len(checks) >= 2
                                    and max(row["best_step_los"], row["best_step_pos"]) >= checks[-2])
    if embed_s is not None:
        row["train_time_with_embedding_s"] = res["train_time_s"] + embed_s
    row["_history"] = res["history"]
    return row


def _keep(keep: dict, row: dict, res: dict) -> None:
    """Per-sample test predictions and curves of the runs the plots show (seed of the first run, all fractions)."""
    key = (row["method"], row["modality"], row["label_fraction"])
    if key not in keep:
        keep[key] = {"los_prob": res["_los_prob"], "pos": res["_pos"], "history": res["history"],
                     "confusion": res["los_confusion"]}


def _dataset_summary(data, out_dir: Path) -> dict:
    """The dataset the sweep ran on; the scenario path relative to the report (no host's absolute path)."""
    source = dict(data.meta.get("source", {}))
    if source.get("scenario"):
        source["scenario"] = os.path.relpath(source["scenario"], out_dir.resolve())
    out = {"samples": len(data), "source": source, "splits": {}}
    for name in ("train", "val", "test"):
        idx = data.index(name)
        out["splits"][name] = {"samples": len(idx), "nlos_share": round(float(1 - data.los[idx].mean()), 4)}
    return out


def _budget_text(cfg: ExperimentConfig) -> str:
    e, h, p = cfg.e2e, cfg.heads, cfg.pretrain
    return (f"Pretraining: up to {p.max_epochs} epochs of the unlabelled train split, batch {p.batch_size}, "
            f"early stop after {p.patience} epochs without a better val loss. "
            f"E2E: up to {e.epochs} epochs of its labelled subset (clamped to {e.min_steps}..{e.max_steps} steps, "
            f"batch {e.batch_size}), heads: up to {h.epochs} epochs ({h.min_steps}..{h.max_steps} steps, batch "
            f"{h.batch_size}); both validate every {e.eval_every}/{h.eval_every} steps on the full val split and stop "
            f"after {e.patience}/{h.patience} checks without progress, each task keeping its best val point. "
            f"E2E gets the same augmentations as pretraining.")


def summarize(runs: list[dict], cfg: ExperimentConfig, pretrain_s: float, embed_s: float) -> dict:
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["method"], r["modality"], r["label_fraction"]), []).append(r)
    table = []
    for (method, mod, frac), rs in sorted(groups.items()):
        row = {"method": method, "modality": mod, "label_fraction": frac, "seeds": len(rs)}
        for m in METRICS + (("train_time_with_embedding_s",) if method == "wmfm" else ()):
            v = np.array([r[m] for r in rs], float)
            row[f"{m}_mean"], row[f"{m}_std"] = float(v.mean()), float(v.std(ddof=1) if len(v) > 1 else 0.0)
        table.append(row)
    get = {(r["method"], r["modality"], r["label_fraction"]): r for r in table}
    ref = get[("e2e", "fused", 1.0)]
    per_fraction = [{"label_fraction": f} | _gains(get[("wmfm", "fused", f)], get[("e2e", "fused", f)])
                    for f in cfg.fractions]
    per_fraction_csi = [{"label_fraction": f} | _gains(get[("wmfm", "csi", f)], get[("e2e", "fused", f)])
                        for f in cfg.fractions]
    head = get[("wmfm", "fused", 1.0)]

    def smallest(metric: str, better, modality: str = "fused") -> float | None:
        """Smallest f such that WMFM wins at f and at every larger fraction (seed means)."""
        out = None
        for f in sorted(cfg.fractions, reverse=True):
            if not better(get[("wmfm", modality, f)][f"{metric}_mean"], ref[f"{metric}_mean"]):
                break
            out = f
        return out

    e2e_total = sum(r["train_time_s"] for r in runs if r["method"] == "e2e" and r["modality"] == "fused")
    wmfm_total = sum(r["train_time_s"] for r in runs if r["method"] == "wmfm" and r["modality"] == "fused")
    headline = {"modality": "fused", "label_fraction": 1.0} | _gains(head, ref)
    return {
        "los_ba_gain_pct": headline["los_ba_gain_pct"],                 # fused, 100 % labels, seed means
        "loc_error_reduction_pct": headline["loc_error_reduction_pct"],
        "train_time_ratio": headline["train_time_ratio"],
        "train_time_ratio_with_embedding": headline["train_time_ratio_with_embedding"],
        "table": table,
        "headline": headline,
        "per_fraction": per_fraction,
        "per_fraction_csi_only": per_fraction_csi,        # the xApp's fallback heads against the fused E2E
        "smallest_fraction_beating_e2e_full": {
            "los_balanced_accuracy": smallest("los_balanced_accuracy", lambda a, b: a > b),
            "loc_mean_error_m": smallest("loc_mean_error_m", lambda a, b: a < b)},
        "smallest_fraction_beating_e2e_full_csi_only": {
            "los_balanced_accuracy": smallest("los_balanced_accuracy", lambda a, b: a > b, "csi"),
            "loc_mean_error_m": smallest("loc_mean_error_m", lambda a, b: a < b, "csi")},
        "e2e_runs_stopped_by_budget": sum(r.get("stopped_by_budget", False) for r in runs if r["method"] == "e2e"),
        "sweep_time_s": {"pretrain_once": pretrain_s, "embedding_pass_once": embed_s,
                         "wmfm_fused_heads_all_runs": wmfm_total, "e2e_fused_all_runs": e2e_total,
                         "ratio_e2e_over_wmfm_including_pretraining": e2e_total / (wmfm_total + pretrain_s + embed_s)},
    }


def _gains(w: dict, e: dict) -> dict:
    ba_w, ba_e = w["los_balanced_accuracy_mean"], e["los_balanced_accuracy_mean"]
    er_w, er_e = w["loc_mean_error_m_mean"], e["loc_mean_error_m_mean"]
    return {"wmfm_los_ba": ba_w, "e2e_los_ba": ba_e, "los_ba_gain_pct": 100 * (ba_w - ba_e) / ba_e,
            "los_ba_gain_points": 100 * (ba_w - ba_e),
            "wmfm_loc_mean_error_m": er_w, "e2e_loc_mean_error_m": er_e,
            "loc_error_reduction_pct": 100 * (er_e - er_w) / er_e,
            "wmfm_train_time_s": w["train_time_s_mean"], "e2e_train_time_s": e["train_time_s_mean"],
            "train_time_ratio": e["train_time_s_mean"] / w["train_time_s_mean"],
            "train_time_ratio_with_embedding": e["train_time_s_mean"] / w["train_time_with_embedding_s_mean"]}


def load_config(preset_name: str, path: str | Path | None) -> ExperimentConfig:
    """Preset plus an optional YAML/JSON file of overrides (same field names as config.json)."""
    import yaml
    over = {}
    if path:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: config file not found")
        over = yaml.safe_load(path.read_text()) or {}
    return preset(preset_name, over)


__all__ = ["ExperimentConfig", "PRESETS", "preset", "run", "summarize", "load_config"]
