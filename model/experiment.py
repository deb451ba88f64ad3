"""The paper's comparison, WMFM (frozen encoders + heads) against E2E, with a foundation-model
protocol (`wmfm experiment` makes the worlds, caches and corpus first: wmfm/pipeline.py).

    pretraining pool (the unlabelled corpus of many worlds; or the target's train split, the control)
    -> ablation: one pretraining per objective variant (VARIANTS), scored on the target's *val*
       split (heads at one label fraction, CSI-to-vehicle association); "auto" keeps the best
    -> one embedding pass of the labelled target world and of the unseen world
    -> for every seed and label fraction (nested, stratified subsets of the target's train split):
         WMFM heads (fused, csi, image) and the E2E baseline (fused; its learning rate chosen on
         val per label fraction), each also applied as trained to the unseen world (positions
         through the serving BS's frame)
    -> controls: the same heads on encoders pretrained on the target's train split only, and on
       frozen random encoders
    -> pool-size curve: heads at a few label fractions after pretraining on 1x, 4x, 16x ... the
       labelled train split's size (nested corpus subsets, one step budget)
    -> unseen world with a few of its own labels: heads on the frozen encoders vs E2E from scratch
    -> the paper's claims, each met or not (summary["claims"])
    -> report.json, report.md, PNG plots, model.pt (encoders + fused/csi heads on all labels)

Every reported figure is on a test split; val picks the early-stopping point, the objective and
E2E's learning rate; test picks nothing. The twin's vehicle boxes (``boxes``) score the
association only: no training reads them.
"""

from __future__ import annotations

import dataclasses
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
from wmfm.cache import CorpusSpec
from wmfm.config import ConfigError, check, from_dict, to_dict

from . import checkpoint, report
from .association import association, pointer
from .data import Data, concat, label_subset, load_data, load_unlabelled
from .encoders import token_cells
from .heads import MODALITIES
from .hparams import CSIEncoderConfig, ImageEncoderConfig, ModelConfig, PretrainConfig, SupervisedConfig
from .train import Embedded, embed, pretrain, seed_all, train_e2e, train_heads
from .wmfm import WMFM

FRACTIONS = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)
METRICS = ("los_balanced_accuracy", "loc_mean_error_m", "loc_median_error_m", "loc_p90_error_m", "train_time_s")


POOLS = ("corpus", "corpus+target", "target")
# The pretraining objectives the ablation compares on val: which terms are on, and their weights.
_OFF = {"region_weight": 0.0, "mask_weight": 0.0, "csi_contrast_weight": 0.0}
VARIANTS = {
    "global_clip": {"objective": "global_clip"} | _OFF,           # one CSI vector vs one whole-frame vector
    "mil": {"objective": "mil"} | _OFF,                           # CSI vs the best-matching token of its frame
    "mil+region": {"objective": "mil"} | _OFF | {"region_weight": 1.0},     # + the frame's other vehicles
    "mil+region+mask": {"objective": "mil"} | _OFF | {"region_weight": 1.0, "mask_weight": 1.0},
    "mil+region+contrast": {"objective": "mil"} | _OFF | {"region_weight": 1.0, "csi_contrast_weight": 0.5},
    "mil+region+mask+contrast": {"objective": "mil", "region_weight": 1.0, "mask_weight": 1.0,
                                 "csi_contrast_weight": 0.5},
}
VAL_CRITERIA = (("fused", "loc_mean_error_m", 1), ("fused", "los_balanced_accuracy", -1),
                ("csi", "loc_mean_error_m", 1), ("csi", "los_balanced_accuracy", -1))


@dataclass(frozen=True)
class ExperimentConfig:
    scenes: int = 1200                        # target-world twin scenes (ignored with --scenario / --cache)
    twin_seed: int = 0
    # Frames 0.1 s apart are near-duplicates; 0.5 s gives five times more distinct traffic per
    # frame generated, which is what contrastive pretraining needs to generalise (measured).
    scene_period_s: float = 0.5
    max_ues: int = 20                         # every vehicle in the coverage zone is a UE, up to this many per frame
    image_size: tuple[int, int] = (64, 64)    # cache image size
    # What pretraining reads: "corpus" (the unlabelled worlds), "corpus+target" (and the target
    # world's train split, without labels) or "target" (the target's train split alone).
    pretrain_on: str = "corpus"
    # The pretraining objective: "auto" (the val-best of `ablation`), a name of VARIANTS, or
    # "custom" (`pretrain` as given).
    objective: str = "auto"
    ablation: tuple[str, ...] = ("global_clip", "mil", "mil+region", "mil+region+mask", "mil+region+contrast")
    ablation_fraction: float = 0.2            # label fraction of the heads that score each variant on val
    control: bool = True                      # also pretrain on the target's train split alone (rows wmfm_target)
    random_control: bool = True               # and heads on frozen, randomly initialised encoders (wmfm_random)
    corpus: CorpusSpec = field(default_factory=lambda: CorpusSpec(worlds=20, scenes_per_world=800, exclude=(1000,)))
    pool_multiples: tuple[float, ...] = (1.0, 4.0, 16.0)   # pool-size curve: pools of m x the labelled train split
    pool_fractions: tuple[float, ...] = (0.05, 0.2)        # label fractions of the curve's heads
    unseen_world: int | None = 1000           # world id in no corpus and no labelled set (None: no unseen test)
    unseen_scenes: int = 600
    unseen_fractions: tuple[float, ...] = (0.05, 0.2)      # few-label transfer on the unseen world
    fractions: tuple[float, ...] = FRACTIONS
    seeds: tuple[int, ...] = (0, 1, 2)
    head_modalities: tuple[str, ...] = MODALITIES
    e2e_modalities: tuple[str, ...] = ("fused",)
    e2e_lrs: tuple[float, ...] = (1e-3, 3e-3)  # E2E's learning rate, chosen on val per label fraction (first seed)
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
        check(self.pretrain_on in POOLS, f"{where}.pretrain_on", f"must be one of {list(POOLS)}")
        check(all(m > 0 for m in self.pool_multiples), f"{where}.pool_multiples", "must be > 0")
        check(all(0 < f <= 1 for f in self.pool_fractions + self.unseen_fractions), f"{where}.pool_fractions",
              "label fractions must be in (0, 1]")
        check(self.unseen_world is None or self.unseen_world not in self.corpus.world_ids(), f"{where}.unseen_world",
              f"world {self.unseen_world} is in the corpus (add it to corpus.exclude)")
        check(self.unseen_scenes >= 200, f"{where}.unseen_scenes", "must be >= 200 (three time blocks with guards)")
        check(self.objective in ("auto", "custom", *VARIANTS), f"{where}.objective",
              f"must be 'auto', 'custom' or one of {list(VARIANTS)}")
        check(all(v in VARIANTS for v in self.ablation), f"{where}.ablation", f"names must be in {list(VARIANTS)}")
        check(self.objective != "auto" or len(self.ablation) > 0, f"{where}.ablation",
              "objective 'auto' needs at least one variant to choose from")
        check(0 < self.ablation_fraction <= 1, f"{where}.ablation_fraction", "must be in (0, 1]")
        check(len(self.e2e_lrs) >= 1 and min(self.e2e_lrs) > 0, f"{where}.e2e_lrs", "need >= 1 positive rate")


def _preset_tiny() -> ExperimentConfig:
    model = ModelConfig(image_size=(32, 32), embed_dim=64,
                        csi=CSIEncoderConfig(channels=(8, 16, 32), feature_dim=128),
                        image=ImageEncoderConfig(channels=(8, 16, 32), feature_dim=128))
    return ExperimentConfig(
        scenes=250, image_size=(32, 32), model=model, seeds=(0, 1, 2), ablation=("global_clip", "mil+region+mask"),
        corpus=CorpusSpec(worlds=2, scenes_per_world=200, image_size=(32, 32), exclude=(1000,)),
        pool_multiples=(1.0, 2.0), pool_fractions=(0.2,), unseen_scenes=200, unseen_fractions=(0.2,),
        pretrain=PretrainConfig(batch_size=128, max_epochs=15, max_steps=150, patience=4, warmup_steps=10),
        heads=SupervisedConfig(epochs=50, min_steps=60, max_steps=200, eval_every=20, patience=4),
        e2e=SupervisedConfig(epochs=10, min_steps=40, max_steps=120, eval_every=20, patience=4))


def _preset_cpu() -> ExperimentConfig:
    # Sized for <= 90 min on 2 cores, the corpus included. Pretraining: one step budget for every
    # pool, at most 20 passes over a small one (1x: 440 steps); early stopping on val may end any.
    # E2E: up to 25 passes over its labelled subset, at least 200 steps for the smallest subsets;
    # patience (8 checks = 400 steps without progress) ends most runs before the cap.
    return ExperimentConfig(
        corpus=CorpusSpec(worlds=20, scenes_per_world=800, exclude=(1000,)),
        pretrain=PretrainConfig(max_epochs=20, max_steps=600, eval_every=100, patience=4),
        heads=SupervisedConfig(batch_size=256, epochs=100, min_steps=300, max_steps=1000, eval_every=50, patience=8),
        e2e=SupervisedConfig(epochs=25, min_steps=200, max_steps=2000, eval_every=50, patience=8))


def _preset_gpu() -> ExperimentConfig:
    # Estimated from the cpu corpus (6.6 UEs per frame, 81 % of the samples in train blocks): ~2 M
    # corpus samples, ~110x the ~14 700 labelled train samples, ~47 GB in host and GPU memory.
    model = ModelConfig(image_size=(128, 128), csi=CSIEncoderConfig(channels=(32, 64, 128), feature_dim=512),
                        image=ImageEncoderConfig(channels=(32, 64, 128, 192, 256), feature_dim=512))
    return ExperimentConfig(
        scenes=3000, image_size=(128, 128), seeds=(0, 1, 2, 3, 4), e2e_modalities=MODALITIES, model=model,
        corpus=CorpusSpec(worlds=150, scenes_per_world=2000, image_size=(128, 128), exclude=(1000,)),
        pool_multiples=(1.0, 4.0, 16.0, 64.0, 100.0),
        pretrain=PretrainConfig(batch_size=512, max_epochs=100, max_steps=30000, eval_every=500, patience=10,
                                warmup_steps=300),
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


def run(cfg: ExperimentConfig, out: str | Path, cache: str | Path, corpus: str | Path | None = None,
        unseen: str | Path | None = None, device: str = "cpu", progress: bool = True, preset_name: str = "custom",
        t_start: float | None = None, boxes: dict | None = None) -> dict:
    """The whole protocol on the target ``cache`` (labelled), the unlabelled ``corpus`` (needed unless
    cfg.pretrain_on == "target") and the ``unseen`` world's cache (optional); writes into ``out``.
    ``t_start``: perf_counter time the whole job started (the report's wall time counts from it).
    ``boxes``: {"target"/"unseen": {"rects" [N, 4] input pixels, "visible" [N]}} the UEs' projected
    vehicle boxes (wmfm.sim.pixels.cache_rects), for the association accuracy only."""
    out, cache = Path(out), Path(cache)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    t_all = time.perf_counter() if t_start is None else t_start
    data = load_data(cache, cfg.model.image_size)
    _check_shapes(data, cfg, "target")
    other = load_data(unseen, cfg.model.image_size) if unseen else None
    if other is not None:
        _check_shapes(other, cfg, "unseen")
    pool, pool_info = _pool(cfg, data, corpus, out)
    data, pool = data.to(device), pool.to(device)
    other = other.to(device) if other is not None else None
    sweep = Sweep(cfg, data, other, device, progress, boxes or {})

    ablation, models = run_ablation(cfg, sweep, pool, pool_info)
    chosen = choose(ablation) if cfg.objective == "auto" else cfg.objective
    pre_cfg = pretrain_config(cfg, chosen)
    if chosen in models:
        encoders, pre = models[chosen]
    else:
        encoders, pre = pretrain(pool, cfg.model, pre_cfg, device=device, progress=progress,
                                 train_idx=pool_info["_order"].to(device), desc=f"pretrain ({cfg.pretrain_on})")
    del models
    checkpoint.save(out / "encoders.pt", "encoders", encoders, cfg.model, {"pretrain": to_dict(pre_cfg)},
                    meta={"pretrain": {k: v for k, v in pre.items() if k != "history"}, "pool": cfg.pretrain_on,
                          "objective": chosen})
    main = sweep.heads(encoders, "wmfm", cfg.fractions, cfg.head_modalities, deploy=True)
    e2e_runs, e2e_tuning = sweep.e2e(main["keep"])
    runs = main["runs"] + e2e_runs
    control = None
    if cfg.control and cfg.pretrain_on != "target":
        enc_t, pre_t = pretrain(data.unlabelled(), cfg.model, pre_cfg, device=device, progress=progress,
                                desc="pretrain (target, control)")
        control = {"pretrain": pre_t, "encoders": enc_t} | sweep.heads(enc_t, "wmfm_target", cfg.fractions,
                                                                         ("fused", "csi"))
        runs += control["runs"]
    random = None
    if cfg.random_control:
        seed_all(cfg.pretrain.seed)
        random = sweep.heads(WMFM(cfg.model).to(device).eval(), "wmfm_random", cfg.fractions, ("fused", "csi"))
        runs += random["runs"]
    curve = pool_curve(cfg, sweep, pool, pool_info, encoders, pre, control, chosen, pre_cfg)
    transfer = sweep.transfer({"wmfm": encoders} | ({"wmfm_target": control["encoders"]} if control else {}))

    checkpoint.save(out / "model.pt", "model", encoders, cfg.model,
                    {"pretrain": to_dict(pre_cfg), "heads": to_dict(cfg.heads)}, heads=main["deploy"],
                    meta={"trained_on": "all labels of the train split", "seed": cfg.seeds[0], "cache": str(cache),
                          "dataset": data.meta.get("source", {}), "pretrain_pool": cfg.pretrain_on,
                          "objective": chosen, "wmfm": wmfm.__version__},
                    head_input=cfg.head_input)
    summary = summarize(runs, cfg, pre["seconds"], main["embed_s"])
    summary["e2e_tuning"] = e2e_tuning
    rep = {
        "format": "wmfm-report/3", "preset": preset_name, "created_by": f"wmfm {wmfm.__version__}",
        "config": to_dict(cfg), "dataset": _dataset_summary(data, out), "device": device,
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                        "cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "pretrain_pool": {k: v for k, v in pool_info.items() if not k.startswith("_")},
        "objective": {"chosen": chosen, "how": "val-best of the ablation (rank sum of " + ", ".join(
            f"{m} {k}" for m, k, _ in VAL_CRITERIA) + ")" if cfg.objective == "auto" else "fixed by the config",
            "pretrain_config": to_dict(pre_cfg)},
        "ablation": ablation,
        "pretrain": pre, "embedding_pass_s": main["embed_s"], "retrieval_test": main["retrieval"],
        "association_test": main["association"],
        "control": None if control is None else {"pretrain": control["pretrain"],
                                                 "retrieval_test": control["retrieval"],
                                                 "association_test": control["association"]},
        "random_control": None if random is None else {"retrieval_test": random["retrieval"],
                                                        "association_test": random["association"]},
        "runs": [{k: v for k, v in r.items() if not k.startswith("_")} for r in runs],
        "summary": summary,
        "pool_curve": curve,
        "unseen_world": None if other is None else {
            "world": cfg.unseen_world, "dataset": _dataset_summary(other, out),
            "position_transfer": "through the serving BS's frame (origin at the array, x along its broadside)",
            "association_test": main.get("association_unseen"),
            "as_trained": unseen_table(runs), "few_labels": transfer},
        "budget": _budget_text(cfg),
    }
    rep["summary"]["claims"] = claims(rep)
    rep["wall_time_s"] = time.perf_counter() - t_all
    (out / "report.json").write_text(json.dumps(rep, indent=2))
    report.write(rep, out, main["keep"], test_embeddings(main["emb"], data, pre_cfg.objective))
    return rep


def test_embeddings(emb: Embedded, data: Data, objective: str) -> dict:
    """What the embeddings plot shows on test: the CSI embeddings and, on the image side, what they
    are aligned with (mil: the token each CSI points at; global_clip: the frame's embedding)."""
    test = data.index("test").cpu()
    e_c = emb.csi_embedding.cpu()[test]
    if objective == "mil":
        frame = emb.frame.cpu()[test]
        pick = pointer(e_c, emb.tokens.cpu(), frame)
        z_img, kind = emb.tokens.cpu()[frame, pick], "the token each CSI points at"
    else:
        z_img, kind = emb.image_embedding.cpu()[test], "the frame's global embedding"
    return {"z_csi": e_c, "z_img": z_img, "image_kind": kind, "los": data.los.cpu()[test],
            "pos": data.position.cpu()[test]}


def pretrain_config(cfg: ExperimentConfig, variant: str) -> PretrainConfig:
    """cfg.pretrain with the loss terms of ``variant`` (VARIANTS; "custom": as given)."""
    return cfg.pretrain if variant == "custom" else dataclasses.replace(cfg.pretrain, **VARIANTS[variant])


def run_ablation(cfg: ExperimentConfig, sweep: Sweep, pool: Data, info: dict) -> tuple[list[dict], dict]:
    """One pretraining per variant of cfg.ablation (same pool, same step budget), each scored on
    the target's val split: fused and csi heads at cfg.ablation_fraction (first seed) and the
    CSI-to-vehicle association. Returns (rows, {variant: (encoders, pretrain result)})."""
    rows, models = [], {}
    for name in cfg.ablation:
        enc, res = pretrain(pool, cfg.model, pretrain_config(cfg, name), device=sweep.device, progress=sweep.progress,
                            train_idx=info["_order"].to(sweep.device), desc=f"pretrain {name}")
        models[name] = (enc, res)
        val = sweep.score_on_val(enc)
        rows.append({"variant": name, "terms": VARIANTS[name], "pretrain": _pre_brief(res)} | val)
    return rows, models


def choose(rows: list[dict]) -> str:
    """The variant with the lowest rank sum over VAL_CRITERIA (ties: lower fused val loc error)."""
    ranks = {r["variant"]: 0 for r in rows}
    for mod, metric, sign in VAL_CRITERIA:
        order = sorted(rows, key=lambda r: sign * r["val"][mod][metric])
        for i, r in enumerate(order):
            ranks[r["variant"]] += i
    for r in rows:
        r["val_rank_sum"] = ranks[r["variant"]]
    return min(rows, key=lambda r: (ranks[r["variant"]], r["val"]["fused"]["loc_mean_error_m"]))["variant"]


def _pool(cfg: ExperimentConfig, data: Data, corpus: str | Path | None, out: Path) -> tuple[Data, dict]:
    """The unlabelled pretraining pool, its description (the corpus named relative to ``out``), and
    its train samples in the order the pool-size curve takes them (``_order``: nested prefixes)."""
    n_lab = len(data.index("train"))
    if cfg.pretrain_on == "target":
        pool, desc = data.unlabelled(), {"source": "target train split"}
    else:
        if corpus is None:
            raise ConfigError("experiment.pretrain_on: needs a corpus (--corpus DIR, or let `wmfm experiment` build "
                              "the preset's)")
        pool = load_unlabelled(corpus, cfg.model.image_size)
        m = pool.meta
        if cfg.unseen_world is not None and cfg.unseen_world in m["worlds"]:
            raise ConfigError(f"experiment.unseen_world: world {cfg.unseen_world} is in the corpus {corpus}")
        desc = {"source": "corpus", "corpus": os.path.relpath(Path(corpus).resolve(), out.resolve()),
                "worlds": m["worlds"], "corpus_samples": m["samples"],
                "corpus_frames": m["frames"], "corpus_bytes": m["bytes"], "corpus_build_s": m["build_seconds"],
                "corpus_nlos_share": m["nlos_share"]}
        if cfg.pretrain_on == "corpus+target":
            pool = concat([pool, data.unlabelled()], meta=m)
            desc["source"] = "corpus + target train split"
    order = pool_order(pool, cfg.pretrain.seed)
    if cfg.pretrain_on == "corpus+target":           # the target's own samples in every pool of the curve
        own = torch.arange(len(pool) - len(data), len(pool))
        own = own[pool.split[own] == 0]
        order = torch.cat([own, order[~torch.isin(order, own)]])
    desc |= {"train_samples": len(order), "val_samples": len(pool.index("val")), "labelled_train_samples": n_lab,
             "pool_over_labelled": round(len(order) / n_lab, 2), "_order": order}
    return pool, desc


def pool_order(pool: Data, seed: int, chunk: int = 256) -> torch.Tensor:
    """The pool's train samples in a seeded order of contiguous chunks (~``chunk`` samples, a few
    seconds of one world): a prefix of any length samples many worlds and time blocks, and the
    pools of the curve are nested (1x within 4x within 16x)."""
    idx = pool.index("train").cpu()
    pieces = list(torch.split(idx, chunk))
    g = torch.Generator().manual_seed(20_000 + seed)
    return torch.cat([pieces[i] for i in torch.randperm(len(pieces), generator=g).tolist()])


class Sweep:
    """Heads and E2E runs on the target world, each also scored on the unseen world."""

    def __init__(self, cfg: ExperimentConfig, data: Data, other: Data | None, device: str, progress: bool,
                 boxes: dict | None = None):
        self.cfg, self.data, self.other, self.device, self.progress = cfg, data, other, device, progress
        self.boxes = boxes or {}
        self.train_idx = data.index("train").cpu()
        self.to_other = bs_frame_map(data.meta, other.meta) if other is not None else None

    def _subset(self, data: Data, frac: float, seed: int) -> torch.Tensor:
        return label_subset(data.los.cpu(), data.index("train").cpu(), frac, seed).to(data.los.device)

    def _embed(self, encoders, data: Data) -> Embedded:
        return embed(encoders, data, device=self.device, kind=self.cfg.head_input).to(self.device)

    def _train_heads(self, emb: Embedded, data: Data, mod: str, sub, seed: int, others=()):
        return train_heads(emb, data, mod, sub, self.cfg.heads, seed, others=others,
                           beta=self.cfg.pretrain.pointer_beta)

    def align(self, encoders, emb: Embedded, data: Data, split: str, which: str) -> tuple[dict, dict | None]:
        """(CSI-to-image retrieval, CSI-to-vehicle association) on ``split`` of ``data`` (``which``:
        "target" or "unseen", the key of its boxes). Retrieval scores a frame by its best token for a
        model pretrained with `mil`, by the global image embedding for `global_clip`."""
        idx = data.index(split).cpu()
        frame, e_c = emb.frame.cpu()[idx], emb.csi_embedding.cpu()[idx]
        ret = emb.retrieval(idx, data.frame, getattr(encoders, "objective", "mil"), self.cfg.pretrain.pointer_beta)
        box = self.boxes.get(which)
        if box is None:
            return ret, None
        pick = pointer(e_c, emb.tokens.cpu(), frame).numpy()
        cells = token_cells(emb.grid, self.cfg.model.image_size).numpy()
        n = idx.numpy()
        return ret, association(pick, data.frame.cpu()[idx].numpy(), box["rects"][n], box["visible"][n], cells)

    def score_on_val(self, encoders) -> dict:
        """Val figures of a pretrained model: fused and csi heads at cfg.ablation_fraction (first
        seed), the val retrieval and association."""
        cfg, data = self.cfg, self.data
        emb = self._embed(encoders, data)
        seed = cfg.seeds[0]
        sub = self._subset(data, cfg.ablation_fraction, seed)
        val = {}
        for mod in ("fused", "csi"):
            _, res = self._train_heads(emb, data, mod, sub, seed)
            val[mod] = {k: res["val"][k] for k in ("los_balanced_accuracy", "loc_mean_error_m", "loc_median_error_m")}
        ret, assoc = self.align(encoders, emb, data, "val", "target")
        return {"val": val, "label_fraction": cfg.ablation_fraction, "retrieval_val": ret, "association_val": assoc}

    def heads(self, encoders, method: str, fractions, modalities, deploy: bool = False,
              align: bool = True) -> dict:
        """Every seed x fraction x modality; with ``align`` also the test retrieval and association,
        with ``deploy`` the deployable heads and the test predictions for the plots."""
        cfg, data = self.cfg, self.data
        t0 = time.perf_counter()
        emb = self._embed(encoders, data)
        embed_s = time.perf_counter() - t0
        out = {"runs": [], "keep": {}, "deploy": {}, "embed_s": embed_s, "emb": emb}
        if align or deploy:
            out["retrieval"], out["association"] = self.align(encoders, emb, data, "test", "target")
        others = []
        if self.other is not None:
            emb_o = self._embed(encoders, self.other)
            others = [("unseen", self.other, emb_o, self.to_other)]
            if deploy:
                out["association_unseen"] = self.align(encoders, emb_o, self.other, "test", "unseen")[1]
        jobs = [(s, f) for s in cfg.seeds for f in fractions]
        bar = tqdm(jobs, desc=f"heads {method}", unit="run", disable=not self.progress)
        for seed, frac in bar:
            sub = self._subset(data, frac, seed)
            for mod in modalities:
                bar.set_postfix_str(f"seed {seed} fraction {frac:g} {mod}")
                heads, res = self._train_heads(emb, data, mod, sub, seed, others=others)
                out["runs"].append(_row(method, mod, frac, seed, res, embed_s))
                if deploy:
                    _keep(out["keep"], out["runs"][-1], res)
                    if frac == 1.0 and seed == cfg.seeds[0] and mod in ("fused", "csi"):
                        out["deploy"][mod] = heads
        return out

    def _e2e(self, data: Data, mod: str, sub, seed: int, lr: float, others=()) -> dict:
        cfg = self.cfg
        return train_e2e(data, cfg.model, mod, sub, dataclasses.replace(cfg.e2e, lr=lr), cfg.pretrain.augment, seed,
                         others=others, beta=cfg.pretrain.pointer_beta)

    def _e2e_tuned(self, data: Data, frac: float, mod: str, others=()) -> tuple[list[tuple[int, dict]], dict]:
        """E2E on ``data``'s nested subsets of ``frac``, every seed, at the rate of cfg.e2e_lrs chosen
        on val with the first seed (the same rank-sum rule as the objective). Returns ([(seed,
        result)], the tuning record)."""
        cfg = self.cfg
        first = cfg.seeds[0]
        sub = self._subset(data, frac, first)
        cands = {lr: self._e2e(data, mod, sub, first, lr, others) for lr in cfg.e2e_lrs}
        lr = _pick_lr(cands)
        record = {"modality": mod, "label_fraction": frac, "chosen_lr": lr,
                  "tuning_time_s": sum(r["train_time_s"] for r in cands.values()),
                  "val": {str(k): {m: r["val"][m] for m in ("los_balanced_accuracy", "loc_mean_error_m")}
                          for k, r in cands.items()}}
        results = [(first, cands[lr])] + [(seed, self._e2e(data, mod, self._subset(data, frac, seed), seed, lr, others))
                                          for seed in cfg.seeds[1:]]
        return results, record

    def e2e(self, keep: dict) -> tuple[list[dict], list[dict]]:
        """Every seed x fraction x E2E modality, each fraction at its val-chosen learning rate; the
        first seed's test predictions go to ``keep``. Returns (rows, the tuning records)."""
        cfg, runs, tuning = self.cfg, [], []
        others = [("unseen", self.other, None, self.to_other)] if self.other is not None else []
        jobs = [(f, m) for f in cfg.fractions for m in cfg.e2e_modalities]
        for frac, mod in tqdm(jobs, desc="e2e (lr tuned on val)", unit="fraction", disable=not self.progress):
            results, record = self._e2e_tuned(self.data, frac, mod, others)
            tuning.append(record)
            for seed, res in results:
                runs.append(_row("e2e", mod, frac, seed, res, None) | {"lr": record["chosen_lr"]})
                _keep(keep, runs[-1], res)
        return runs, tuning

    def transfer(self, encoders: dict) -> list[dict]:
        """The unseen world with a few of its own labels: heads (fused, csi) on each set of frozen
        encoders and E2E (fused, learning rate chosen on the unseen world's val) from scratch, on
        the same nested subsets; scored on its test split."""
        cfg, other = self.cfg, self.other
        if other is None:
            return []
        rows = []
        emb = {name: self._embed(enc, other) for name, enc in encoders.items()}
        jobs = [(s, f) for s in cfg.seeds for f in cfg.unseen_fractions]
        for seed, frac in tqdm(jobs, desc="unseen world, few labels: heads", unit="run", disable=not self.progress):
            sub = self._subset(other, frac, seed)
            for name, e in emb.items():
                for mod in ("fused", "csi"):
                    _, res = self._train_heads(e, other, mod, sub, seed)
                    rows.append(_row(name, mod, frac, seed, res, None))
        for frac in tqdm(cfg.unseen_fractions, desc="unseen world, few labels: e2e", unit="fraction",
                         disable=not self.progress):
            results, record = self._e2e_tuned(other, frac, "fused")
            rows += [_row("e2e", "fused", frac, seed, res, None) | {"lr": record["chosen_lr"]}
                     for seed, res in results]
        return _mean_table([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])


def _pick_lr(cands: dict) -> float:
    """The learning rate whose run has the lowest rank sum of val loc error and val -BA (ties: loc error)."""
    rank = {lr: 0 for lr in cands}
    for metric, sign in (("loc_mean_error_m", 1), ("los_balanced_accuracy", -1)):
        for i, lr in enumerate(sorted(cands, key=lambda k: sign * cands[k]["val"][metric])):
            rank[lr] += i
    return min(cands, key=lambda k: (rank[k], cands[k]["val"]["loc_mean_error_m"]))


def bs_frame_map(src_meta: dict, dst_meta: dict):
    """Positions [n, 3] in the source world's frame -> the destination world's, through the serving
    BS's frame (origin at the array, x along its horizontal broadside, z up): what a RIC knows of
    each cell, so that a head trained in one world answers in another's coordinates."""
    (p0, y0), (p1, y1) = bs_pose(src_meta), bs_pose(dst_meta)

    def rot(deg):
        c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    r = rot(y1) @ rot(-y0)
    return lambda pos: (np.asarray(pos, float) - p0) @ r.T + p1


def bs_pose(meta: dict) -> tuple[np.ndarray, float]:
    """(BS position [3] in metres, broadside yaw [deg]) of a cache, from its source record."""
    pose = meta.get("source", {}).get("bs_pose")
    if pose is None:
        gen = (meta.get("generator") or {}).get("config", {}).get("bs")
        if gen is None:
            raise ConfigError("unseen world: the cache records no BS pose (source.bs_pose): rebuild it with "
                              "`wmfm dataset build`")
        pose = {"position_m": gen["position_m"], "yaw_deg": gen["yaw_deg"]}
    return np.asarray(pose["position_m"], float), float(pose["yaw_deg"])


def pool_curve(cfg: ExperimentConfig, sweep: Sweep, pool: Data, info: dict, encoders, pre: dict,
               control, objective: str, pre_cfg: PretrainConfig) -> list[dict]:
    """Heads at cfg.pool_fractions (fused, csi) after pretraining with ``objective`` (``pre_cfg``) on
    nested pools of m x the labelled train split, one step budget. A pool within 10 % of the whole
    pool is the whole pool (the main pretraining, reused; the point carries its real size); larger
    ones are left out (listed as such); the whole pool is always a point; the control is its own point."""
    n_lab, order = info["labelled_train_samples"], info["_order"]
    points = []
    for m in cfg.pool_multiples:
        n = int(round(m * n_lab))
        point = {"objective": objective, "pool": cfg.pretrain_on, "pool_multiple": m, "pool_samples": n}
        if n > 1.1 * len(order):
            points.append(point | {"skipped": f"the pool holds {len(order)} train samples"})
            continue
        if n >= 0.9 * len(order):
            n = len(order)
            point |= {"pool_multiple": round(n / n_lab, 2), "pool_samples": n}
            enc, res = encoders, pre
        else:
            enc, res = pretrain(pool, cfg.model, pre_cfg, device=sweep.device, progress=sweep.progress,
                                train_idx=order[:n].to(sweep.device), desc=f"pretrain pool {m:g}x")
        rows = sweep.heads(enc, "wmfm", cfg.pool_fractions, ("fused", "csi"), align=False)["runs"]
        points.append(point | {"pretrain": _pre_brief(res), "results": _mean_table(rows)})
    if len(order) not in [p["pool_samples"] for p in points]:
        rows = sweep.heads(encoders, "wmfm", cfg.pool_fractions, ("fused", "csi"), align=False)["runs"]
        points.append({"objective": objective, "pool": cfg.pretrain_on, "pool_multiple": round(len(order) / n_lab, 2),
                       "pool_samples": len(order), "pretrain": _pre_brief(pre), "results": _mean_table(rows)})
    if control is not None:
        rows = [r for r in control["runs"] if r["label_fraction"] in cfg.pool_fractions and r["modality"] != "image"]
        points.append({"objective": objective, "pool": "target", "pool_multiple": 1.0, "pool_samples": n_lab,
                       "pretrain": _pre_brief(control["pretrain"]), "results": _mean_table(rows)})
    return points


def _pre_brief(res: dict) -> dict:
    return {k: res[k] for k in ("best_val_loss", "best_step", "steps", "planned_steps", "seconds", "train_samples")}


UNSEEN_METRICS = ("los_balanced_accuracy", "loc_mean_error_m", "loc_median_error_m")


def _by_run(rows: list[dict]) -> list[tuple[tuple, list[dict]]]:
    """The rows of each (method, modality, label fraction), sorted: one list per seed set."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["modality"], r["label_fraction"]), []).append(r)
    return sorted(groups.items())


def _seed_stats(rs: list[dict], metric: str) -> dict:
    """{metric_mean, metric_std} over the seeds' rows (std 0 for one seed)."""
    v = np.array([r[metric] for r in rs], float)
    return {f"{metric}_mean": float(v.mean()), f"{metric}_std": float(v.std(ddof=1) if len(v) > 1 else 0.0)}


def _mean_table(rows: list[dict]) -> list[dict]:
    """Seed means (and std) per (method, modality, fraction), target test and unseen test metrics."""
    out = []
    for (method, mod, frac), rs in _by_run(rows):
        row = {"method": method, "modality": mod, "label_fraction": frac, "seeds": len(rs),
               "labelled": rs[0]["labelled"]}
        for m in UNSEEN_METRICS:
            row |= _seed_stats(rs, m)
            u = [r["unseen"][m] for r in rs if r.get("unseen")]
            if u:
                row[f"unseen_{m}_mean"] = float(np.mean(u))
        out.append(row)
    return out


def unseen_table(runs: list[dict]) -> list[dict]:
    """Target-trained heads and E2E applied as trained to the unseen world: seed means."""
    return [{k: v for k, v in r.items() if k.startswith("unseen_") or k in ("method", "modality", "label_fraction")}
            for r in _mean_table([r for r in runs if r.get("unseen")])]


def _check_shapes(data, cfg: ExperimentConfig, which: str) -> None:
    _, _, a, k = data.csi.shape
    if (a, k) != (cfg.model.n_ant, cfg.model.n_sc):
        raise ConfigError(f"experiment.model.n_ant/n_sc: the {which} cache has CSI {a}x{k}, the model expects "
                          f"{cfg.model.n_ant}x{cfg.model.n_sc}")
    for name in ("train", "val", "test"):
        idx = data.index(name)
        if len(idx) < 10 or len(set(data.los[idx].tolist())) < 2:
            field_name = "scenes" if which == "target" else "unseen_scenes"
            raise ConfigError(f"experiment.{field_name}: the {which} world's {name} split has {len(idx)} samples "
                              "and needs both LoS and NLoS ones; use more scenes")


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
    if res.get("others", {}).get("unseen"):
        row["unseen"] = {k: res["others"]["unseen"][k] for k in ("los_balanced_accuracy", "los_accuracy",
                                                                  "loc_mean_error_m", "loc_median_error_m",
                                                                  "loc_p90_error_m")}
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
    return (f"Pretraining: up to {p.max_epochs} epochs of the unlabelled pool's train split and at most "
            f"{p.max_steps or 'no'} steps, batches of {p.frames_per_batch} whole frames (mil) or {p.batch_size} "
            f"samples (global_clip), early stop after {p.patience} validations without a better val loss. "
            f"E2E's learning rate: the val-best of {list(cfg.e2e_lrs)} per label fraction. "
            f"E2E: up to {e.epochs} epochs of its labelled subset (clamped to {e.min_steps}..{e.max_steps} steps, "
            f"batch {e.batch_size}), heads: up to {h.epochs} epochs ({h.min_steps}..{h.max_steps} steps, batch "
            f"{h.batch_size}); both validate every {e.eval_every}/{h.eval_every} steps on the full val split and stop "
            f"after {e.patience}/{h.patience} checks without progress, each task keeping its best val point. "
            f"E2E gets the same augmentations as pretraining.")


def summarize(runs: list[dict], cfg: ExperimentConfig, pretrain_s: float, embed_s: float) -> dict:
    table = []
    for (method, mod, frac), rs in _by_run(runs):
        row = {"method": method, "modality": mod, "label_fraction": frac, "seeds": len(rs)}
        for m in METRICS + (("train_time_with_embedding_s",) if method == "wmfm" else ()):
            row |= _seed_stats(rs, m)
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


def _near(table_keys, method: str, modality: str, frac: float) -> float:
    """The label fraction of ``method``/``modality`` nearest ``frac``."""
    have = [f for m, mod, f in table_keys if (m, mod) == (method, modality)]
    return min(have, key=lambda f: abs(f - frac))


def claims(rep: dict) -> list[dict]:
    """The paper's claims (DESIGN.md) on this run's seed means, each met or not.

    Rows: {"claim", "paper", "wmfm", "reference", "met" (True/False; None: informative)[, "unit"]}:
    "reference" is E2E's figure, the other heads' or the paper's target, as the claim says."""
    s = rep["summary"]
    get = {(r["method"], r["modality"], r["label_fraction"]): r for r in s["table"]}
    e100 = get[("e2e", "fused", 1.0)]
    f20 = _near(get, "wmfm", "fused", 0.2)
    w20, c20 = get[("wmfm", "fused", f20)], get.get(("wmfm", "csi", f20))
    ba, err = "los_balanced_accuracy_mean", "loc_mean_error_m_mean"
    rows = [
        {"claim": f"fused heads on {f20:.0%} of the labels vs E2E on 100 %: LoS balanced accuracy",
         "paper": "at or above", "wmfm": w20[ba], "reference": e100[ba], "met": w20[ba] >= e100[ba]},
        {"claim": f"fused heads on {f20:.0%} of the labels vs E2E on 100 %: mean localisation error [m]",
         "paper": "at or below", "wmfm": w20[err], "reference": e100[err], "met": w20[err] <= e100[err]}]
    best_ba = max(s["per_fraction"], key=lambda g: g["los_ba_gain_pct"])
    best_er = max(s["per_fraction"], key=lambda g: g["loc_error_reduction_pct"])
    rows += [
        {"claim": f"best LoS balanced-accuracy gain at equal labels, fused (at {best_ba['label_fraction']:.0%})",
         "paper": ">= +17 %", "wmfm": best_ba["los_ba_gain_pct"], "reference": 17.0,
         "met": best_ba["los_ba_gain_pct"] >= 17.0, "unit": "%"},
        {"claim": f"best localisation-error reduction at equal labels, fused (at {best_er['label_fraction']:.0%})",
         "paper": ">= 48.5 % lower", "wmfm": best_er["loc_error_reduction_pct"], "reference": 48.5,
         "met": best_er["loc_error_reduction_pct"] >= 48.5, "unit": "%"}]
    best_t = max(s["per_fraction"], key=lambda g: g["train_time_ratio"])
    t = s["sweep_time_s"]
    rows += [
        {"claim": f"training time, E2E / heads (best fraction, {best_t['label_fraction']:.0%})", "paper": "up to 90x",
         "wmfm": best_t["train_time_ratio"], "reference": 90.0, "met": best_t["train_time_ratio"] >= 90.0, "unit": "x"},
        {"claim": "training time, E2E / heads with the one-off pretraining and embedding pass (whole sweep)",
         "paper": "(not stated)", "wmfm": t["ratio_e2e_over_wmfm_including_pretraining"], "reference": 1.0,
         "met": None, "unit": "x"}]
    for f in sorted({f20, 1.0}):
        fu, cs, im = get[("wmfm", "fused", f)], get.get(("wmfm", "csi", f)), get.get(("wmfm", "image", f))
        if cs:
            rows.append({"claim": f"fused heads better than csi-only at {f:.0%} labels: loc error [m] / LoS BA",
                         "paper": "fused better", "wmfm": [fu[err], fu[ba]], "reference": [cs[err], cs[ba]],
                         "met": fu[err] < cs[err] and fu[ba] >= cs[ba]})
        if im:
            rows.append({"claim": f"fused heads better than image-only at {f:.0%} labels: loc error [m] / LoS BA",
                         "paper": "fused better", "wmfm": [fu[err], fu[ba]], "reference": [im[err], im[ba]],
                         "met": fu[err] < im[err] and fu[ba] >= im[ba]})
    if c20 is not None:
        rows.append({"claim": f"csi-only heads on {f20:.0%} of the labels vs E2E on 100 % (the xApp's fallback): "
                              "loc error [m] / LoS BA", "paper": "(not stated)", "wmfm": [c20[err], c20[ba]],
                     "reference": [e100[err], e100[ba]], "met": None})
    u = rep.get("unseen_world")
    if u and u.get("few_labels"):
        few = {(r["method"], r["modality"], r["label_fraction"]): r for r in u["few_labels"]}
        fu20 = _near(few, "wmfm", "fused", 0.2)
        w, e = few.get(("wmfm", "fused", fu20)), few.get(("e2e", "fused", fu20))
        if w and e:
            rows += [{"claim": f"unseen world, {fu20:.0%} of its labels: fused heads vs E2E, LoS BA",
                      "paper": "at or above", "wmfm": w[ba], "reference": e[ba], "met": w[ba] >= e[ba]},
                     {"claim": f"unseen world, {fu20:.0%} of its labels: fused heads vs E2E, loc error [m]",
                      "paper": "at or below", "wmfm": w[err], "reference": e[err], "met": w[err] <= e[err]}]
            c = few.get(("wmfm", "csi", fu20))
            if c:
                rows.append({"claim": f"unseen world, {fu20:.0%} of its labels: fused better than csi-only, "
                                      "loc error [m] / LoS BA", "paper": "fused better", "wmfm": [w[err], w[ba]],
                             "reference": [c[err], c[ba]], "met": w[err] < c[err] and w[ba] >= c[ba]})
    return rows


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
