"""report.md and the PNG plots of an experiment (report.json is written by experiment.py)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {("wmfm", "fused"): "tab:blue", ("wmfm", "csi"): "tab:cyan", ("wmfm", "image"): "tab:purple",
          ("e2e", "fused"): "tab:red", ("e2e", "csi"): "tab:orange", ("e2e", "image"): "tab:brown",
          ("wmfm_target", "fused"): "tab:gray", ("wmfm_target", "csi"): "tab:olive",
          ("wmfm_target", "image"): "tab:pink", ("wmfm_random", "fused"): "tab:green",
          ("wmfm_random", "csi"): "yellowgreen"}
NAMES = {"wmfm": "WMFM", "wmfm_target": "WMFM (control: target pretraining)",
         "wmfm_random": "control: frozen random encoders", "e2e": "E2E"}


def _save(fig, out: Path, name: str, rect=(0, 0, 1, 1)) -> str:
    """Lay out (inside ``rect`` of the figure), write `out/name` and free the figure; returns the
    file name for the report."""
    fig.tight_layout(rect=rect)
    fig.savefig(out / name, dpi=120)
    plt.close(fig)
    return name

def write(rep: dict, out: Path, keep: dict, emb: dict) -> None:
    """All plots plus report.md in `out`. `keep`: per-(method, modality, fraction) test outputs of
    the first seed; `emb`: test embeddings, LoS labels and true positions."""
    plots = {"fractions": _fractions(rep, out), "cdf": _cdf(keep, emb["pos"].numpy(), out),
             "confusion": _confusion(keep, out), "curves": _curves(rep, keep, out), "embeddings": _embeddings(emb, out)}
    if rep.get("pool_curve"):
        plots["pool size"] = _pool_curve(rep, out)
    (out / "report.md").write_text(markdown(rep, plots))


def _fractions(rep: dict, out: Path) -> str:
    table = rep["summary"]["table"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for (method, mod), color in COLORS.items():
        rows = sorted((r for r in table if r["method"] == method and r["modality"] == mod),
                      key=lambda r: r["label_fraction"])
        if not rows:
            continue
        f = [100 * r["label_fraction"] for r in rows]
        for ax, m in zip(axes, ("los_balanced_accuracy", "loc_mean_error_m")):
            mean, std = np.array([r[f"{m}_mean"] for r in rows]), np.array([r[f"{m}_std"] for r in rows])
            ax.plot(f, mean, {"wmfm": "o-", "wmfm_target": "^:", "wmfm_random": "v:"}.get(method, "s--"), color=color,
                    label=f"{NAMES[method]} {mod}")
            ax.fill_between(f, mean - std, mean + std, color=color, alpha=0.15)
    for ax, title in zip(axes, ("LoS/NLoS balanced accuracy (test)", "mean localisation error [m] (test)")):
        ax.set_xscale("log")
        ax.set_xlabel("labelled fraction of the train split [%]")
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    return _save(fig, out, "fractions.png")


def _pool_curve(rep: dict, out: Path) -> str:
    """Heads' test figures against the pretraining pool size (x the labelled train split): one line
    per (modality, label fraction) and objective; the control (target pretraining) as hollow marks."""
    pts = [p for p in rep["pool_curve"] if "results" in p]
    metrics = (("loc_mean_error_m_mean", "mean localisation error [m], target test"),
               ("los_balanced_accuracy_mean", "LoS/NLoS balanced accuracy, target test"),
               ("unseen_loc_mean_error_m_mean", "mean localisation error [m], unseen world (heads as trained)"))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    keys = sorted({(r["modality"], r["label_fraction"]) for p in pts for r in p["results"]})
    styles = {"fused": "tab:blue", "csi": "tab:cyan"}
    for ax, (m, title) in zip(axes, metrics):
        for mod, frac in keys:
            for objective in sorted({p["objective"] for p in pts}):
                line = sorted((p["pool_multiple"], r.get(m)) for p in pts if p["pool"] != "target"
                               and p["objective"] == objective for r in p["results"]
                               if (r["modality"], r["label_fraction"]) == (mod, frac) and r.get(m) is not None)
                if line:
                    ax.plot(*zip(*line), "o-" if frac == max(k[1] for k in keys) else "o--",
                            color=styles.get(mod, "k"), label=f"{mod}, {frac:.0%} labels ({objective})")
            ctrl = [(p["pool_multiple"], r.get(m)) for p in pts if p["pool"] == "target" for r in p["results"]
                    if (r["modality"], r["label_fraction"]) == (mod, frac) and r.get(m) is not None]
            if ctrl:
                ax.plot(*zip(*ctrl), "D", mfc="none", color=styles.get(mod, "k"), ms=9,
                        label=f"{mod}, {frac:.0%} labels: control (target train split)")
        ax.set_xscale("log")
        ax.set_xlabel("pretraining pool [x the labelled train split]")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    return _save(fig, out, "pool_curve.png", rect=(0, 0.16, 1, 1))


def _cdf(keep: dict, truth: np.ndarray, out: Path) -> str:
    fig, ax = plt.subplots(figsize=(6, 4))
    for (method, mod, frac), k in sorted(keep.items()):
        if frac != 1.0 and not (method == "wmfm" and mod == "fused" and frac == 0.1):
            continue
        err = np.sort(np.linalg.norm(k["pos"] - truth, axis=1))
        ax.plot(err, np.arange(1, len(err) + 1) / len(err), color=COLORS.get((method, mod), "k"),
                ls="-" if frac == 1.0 else ":", label=f"{method.upper()} {mod} ({frac:.0%} labels)")
    ax.set_xlabel("localisation error [m]")
    ax.set_ylabel("CDF (test)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out, "loc_cdf.png")


def _confusion(keep: dict, out: Path) -> str:
    pick = [("wmfm", "fused", 1.0), ("e2e", "fused", 1.0)]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    for ax, key in zip(axes, pick):
        cm = np.array(keep[key]["confusion"], float)
        norm = cm / cm.sum(axis=1, keepdims=True).clip(1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"{int(cm[i, j])}\n{norm[i, j]:.0%}", ha="center", va="center",
                        color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xticks([0, 1], ["NLoS", "LoS"])
        ax.set_yticks([0, 1], ["NLoS", "LoS"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{key[0].upper()} {key[1]}, 100 % labels")
    return _save(fig, out, "confusion.png")


def _curves(rep: dict, keep: dict, out: Path) -> str:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    hist = rep["pretrain"]["history"]
    ep = [h["epoch"] for h in hist]
    axes[0].plot(ep, [h["train_loss"] for h in hist], label="train (augmented)")
    axes[0].plot(ep, [h["val_loss"] for h in hist], label="val")
    axes[0].axvline(rep["pretrain"]["best_epoch"], color="k", ls=":", label="kept")
    axes[0].set_xlabel("epoch")
    axes[0].set_title("WMFM pretraining: InfoNCE")
    axes[0].legend(fontsize=8)
    for key, ls in ((("wmfm", "fused", 1.0), "-"), (("e2e", "fused", 1.0), "--")):
        h = keep[key]["history"]
        st = [x["step"] for x in h]
        axes[1].plot(st, [x["val_los_bce"] for x in h], ls, color=COLORS[key[:2]], label=key[0].upper())
        axes[2].plot(st, [x["val_loc_error_m"] for x in h], ls, color=COLORS[key[:2]], label=key[0].upper())
    axes[1].set_title("val balanced BCE (LoS), 100 % labels")
    axes[2].set_title("val mean localisation error [m], 100 % labels")
    for ax in axes[1:]:
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    return _save(fig, out, "training_curves.png")


def _embeddings(emb: dict, out: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    los = emb["los"].numpy() > 0.5
    for ax, name in zip(axes, ("z_csi", "z_img")):
        z = emb[name].numpy()
        z = z - z.mean(0)
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        p = z @ vt[:2].T
        ax.scatter(p[los, 0], p[los, 1], s=5, alpha=0.6, color="tab:green", label="LoS")
        ax.scatter(p[~los, 0], p[~los, 1], s=5, alpha=0.6, color="tab:red", label="NLoS")
        var = s[:2] ** 2 / (s ** 2).sum()
        what = "CSI embeddings" if name == "z_csi" else f"image: {emb.get('image_kind', 'frame embeddings')}"
        ax.set_title(f"{what}, test (PCA {var[0]:.0%}/{var[1]:.0%})", fontsize=9)
        ax.legend(fontsize=8)
    return _save(fig, out, "embeddings_pca.png")


def _f(x, nd=3) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def markdown(rep: dict, plots: dict) -> str:
    s = rep["summary"]
    h = s["headline"]
    ds = rep["dataset"]
    lines = [f"# WMFM vs E2E: experiment report (preset `{rep['preset']}`)", "",
             f"{rep['created_by']}, torch {rep['environment']['torch']}, device `{rep['device']}`, "
             f"{rep['environment']['threads']} threads, wall time {rep['wall_time_s'] / 60:.1f} min.", "",
             f"Data: {ds['samples']} samples from `{ds['source'].get('scenario', '?')}`; "
             + ", ".join(f"{k} {v['samples']} (NLoS {v['nlos_share']:.1%})" for k, v in ds["splits"].items())
             + ". Splits are contiguous time blocks with guard gaps; every figure below is on **test** (val chose "
               "the objective, E2E's learning rate and every early-stopping point).", ""]
    lines += _claims(s.get("claims") or [])
    lines += [
             "## Headline (fused, 100 % of the train labels, mean over seeds)", "",
             "| | WMFM (frozen + heads) | E2E | WMFM vs E2E |", "|---|---|---|---|",
             f"| LoS/NLoS balanced accuracy | {h['wmfm_los_ba']:.3f} | {h['e2e_los_ba']:.3f} | "
             f"{h['los_ba_gain_pct']:+.1f} % ({h['los_ba_gain_points']:+.1f} points) |",
             f"| mean localisation error [m] | {h['wmfm_loc_mean_error_m']:.2f} | {h['e2e_loc_mean_error_m']:.2f} | "
             f"{error_change(h['loc_error_reduction_pct'])} |",
             f"| training time [s] | {h['wmfm_train_time_s']:.1f} (heads) | {h['e2e_train_time_s']:.1f} | "
             f"{h['train_time_ratio']:.1f}x less ({h['train_time_ratio_with_embedding']:.1f}x with the "
             "embedding pass) |",
             "", _verdict(s), "",
             "## Against the label fraction (mean ± std over seeds)", "",
             "| method | modality | labels | LoS BA | loc mean [m] | loc median [m] | loc p90 [m] | train time [s] |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(s["table"], key=lambda r: (r["modality"] != "fused", r["modality"], r["label_fraction"],
                                                r["method"])):
        lines.append(f"| {NAMES.get(r['method'], r['method'])} | {r['modality']} | {r['label_fraction']:.0%} | "
                     f"{r['los_balanced_accuracy_mean']:.3f} ± {r['los_balanced_accuracy_std']:.3f} | "
                     f"{r['loc_mean_error_m_mean']:.2f} ± {r['loc_mean_error_m_std']:.2f} | "
                     f"{r['loc_median_error_m_mean']:.2f} | {r['loc_p90_error_m_mean']:.2f} | "
                     f"{r['train_time_s_mean']:.1f} |")
    lines += ["", "WMFM against E2E (fused) at the same label fraction: balanced accuracy, WMFM relative to E2E "
              "(positive: WMFM better); localisation error, WMFM relative to E2E (positive: WMFM's error is higher, "
              "worse):", "",
              "| labels | BA, fused | BA, csi-only | loc error, fused | loc error, csi-only | "
              "training time ratio E2E / WMFM |", "|---|---|---|---|---|---|"]
    csi = {g["label_fraction"]: g for g in s.get("per_fraction_csi_only", [])}
    for g in s["per_fraction"]:
        c = csi.get(g["label_fraction"])
        cba = f"{c['los_ba_gain_pct']:+.1f} %" if c else "n/a"
        cer = f"{-c['loc_error_reduction_pct']:+.1f} %" if c else "n/a"
        lines.append(f"| {g['label_fraction']:.0%} | {g['los_ba_gain_pct']:+.1f} % | {cba} | "
                     f"{-g['loc_error_reduction_pct']:+.1f} % | {cer} | {g['train_time_ratio']:.1f}x |")
    t = s["sweep_time_s"]
    r = rep["retrieval_test"]
    pre = rep["pretrain"]
    lines += ["", "## Pretraining, alignment and cost", "",
              f"- Pretraining ({pre.get('objective', '?')}): {pre['epochs']} epochs ({pre['steps']} steps, global "
              f"batch {pre['global_batch']} {pre.get('batch_unit', 'samples')}, {pre['world_size']} process(es)), "
              f"best val loss {pre['best_val_loss']:.3f} at epoch {pre['best_epoch']}, {pre['seconds']:.0f} s. One-off "
              f"embedding pass: {rep['embedding_pass_s']:.1f} s.",
              f"- CSI-to-image retrieval on test ({r['candidates']} frames, scored by the "
              f"{r.get('scored_by', 'global image embedding')}): top-1 {r['top1']:.1%} "
              f"(chance {r['chance_top1']:.2%}), top-5 {r['top5']:.1%} (chance {r['chance_top5']:.1%}), "
              f"median rank {r['median_rank']:.0f}.",
              *_association_lines(rep),
              f"- Whole sweep: E2E fused {t['e2e_fused_all_runs']:.0f} s in all; WMFM fused heads "
              f"{t['wmfm_fused_heads_all_runs']:.0f} s + pretraining {t['pretrain_once']:.0f} s + embedding "
              f"{t['embedding_pass_once']:.0f} s: E2E / WMFM = {t['ratio_e2e_over_wmfm_including_pretraining']:.2f}x "
              "with the one-off pretraining counted.",
              f"- Budget: {rep['budget']} E2E runs that ended on the step cap while still improving: "
              f"{s['e2e_runs_stopped_by_budget']} of {sum(r['method'] == 'e2e' for r in rep['runs'])}"
              + (" (so the E2E figures are what this budget buys, not E2E's best: a larger budget would widen "
                 "its lead where it leads and may close WMFM's where WMFM leads)." if s["e2e_runs_stopped_by_budget"]
                 else "."), "",
              "## Plots", "",
              "Label-fraction curves: mean ± std over seeds. Localisation CDF, confusion matrices and training "
              "curves: the first seed. Embedding projection: PCA of the test embeddings (unit-norm joint space): the "
              "CSI side, and the image side it is aligned with.", ""]
    lines += [f"![{name}]({png})" for name, png in plots.items()]
    return "\n".join(lines[:lines.index("## Plots")] + _protocol(rep) + lines[lines.index("## Plots"):]) + "\n"


def _claims(claims: list[dict]) -> list[str]:
    """The paper's claims, each met or not, with the figures (seed means, test)."""
    if not claims:
        return []

    def fig(v, unit=""):
        if isinstance(v, list):
            return " / ".join(f"{x:.3f}" if x < 1.5 else f"{x:.2f}" for x in v)
        return f"{v:+.1f} {unit}".strip() if unit == "%" else (f"{v:.1f}{unit}" if unit else
                                                               (f"{v:.3f}" if v < 1.5 else f"{v:.2f}"))
    lines = ["## The paper's claims, measured", "",
             "| claim | paper | WMFM | reference (E2E / other heads / target) | met |", "|---|---|---|---|---|"]
    for c in claims:
        met = {True: "**met**", False: "not met", None: "(informative)"}[c["met"]]
        lines.append(f"| {c['claim']} | {c['paper']} | {fig(c['wmfm'], c.get('unit', ''))} | "
                     f"{fig(c['reference'], c.get('unit', ''))} | {met} |")
    return lines + [""]


def _association_lines(rep: dict) -> list[str]:
    out = []
    for name, a in (("test", rep.get("association_test")),
                    ("unseen world test", (rep.get("unseen_world") or {}).get("association_test"))):
        if a and a.get("visible"):
            out.append(f"- CSI-to-vehicle association on the {name} ({a['visible']} UEs with their vehicle in view, "
                       f"{a['visible_ues_per_frame']} per frame): the token the CSI points at names its own vehicle "
                       f"for **{a['association_accuracy']:.1%}** (chance {a['chance_association']:.1%}; "
                       f"{_f(a['association_accuracy_crowded'], 3)} vs chance "
                       f"{_f(a['chance_association_crowded'], 3)} with >= 2 vehicles in view) and overlaps its box "
                       f"for {a['hit_rate']:.1%} (chance {a['chance_hit_rate']:.1%}).")
    for key, name in (("control", "target-pretrained control"), ("random_control", "random encoders")):
        a = (rep.get(key) or {}).get("association_test")
        if a and a.get("visible"):
            out.append(f"- The same for the {name}: {a['association_accuracy']:.1%} (chance "
                       f"{a['chance_association']:.1%}).")
    return out


def _protocol(rep: dict) -> list[str]:
    """The foundation-model protocol's sections: the objective's ablation, the pool, the pool-size
    curve, E2E's tuning, the unseen world."""
    lines = []
    ab = rep.get("ablation") or []
    if ab:
        o = rep["objective"]
        lines += ["## Pretraining objective, chosen on val", "",
                  f"Each variant pretrained on the same pool with the same step budget, then fused and csi heads on "
                  f"{ab[0]['label_fraction']:.0%} of the target's labels (first seed), scored on the target's **val** "
                  f"split. Chosen: **{o['chosen']}** ({o['how']}).", "",
                  "| variant | best val loss | steps | fused loc [m] | fused BA | csi loc [m] | csi BA | association "
                  "(val) | rank sum |", "|---|---|---|---|---|---|---|---|---|"]
        for r in ab:
            v, a = r["val"], r.get("association_val") or {}
            lines.append(f"| {r['variant']} | {r['pretrain']['best_val_loss']:.3f} | {r['pretrain']['steps']} | "
                         f"{v['fused']['loc_mean_error_m']:.2f} | {v['fused']['los_balanced_accuracy']:.3f} | "
                         f"{v['csi']['loc_mean_error_m']:.2f} | {v['csi']['los_balanced_accuracy']:.3f} | "
                         f"{_f(a.get('association_accuracy'), 3)} | {r.get('val_rank_sum', '')} |")
        lines += ["", "The losses are each variant's own objective (not comparable across variants).", ""]
    tune = (rep.get("summary") or {}).get("e2e_tuning") or []
    if tune:
        lines += ["## E2E learning rate, chosen on val", "",
                  "| labels | chosen | " + " | ".join(f"val loc [m] / BA at {k}" for k in tune[0]["val"]) + " |",
                  "|---|---|" + "---|" * len(tune[0]["val"])]
        for t in tune:
            lines.append(f"| {t['label_fraction']:.0%} | {t['chosen_lr']:g} | " + " | ".join(
                f"{v['loc_mean_error_m']:.2f} / {v['los_balanced_accuracy']:.3f}" for v in t["val"].values()) + " |")
        lines += [""]
    p = rep.get("pretrain_pool") or {}
    lines += ["## Pretraining pool", ""]
    if p.get("source", "").startswith("corpus"):
        b = p["corpus_bytes"]
        lines += [f"Pretraining read {p['train_samples']} unlabelled samples ({p['pool_over_labelled']}x the "
                  f"{p['labelled_train_samples']} labelled train samples) of {p['source']}: {len(p['worlds'])} twin "
                  f"worlds ({p['corpus_samples']} samples, {p['corpus_frames']} frames, NLoS "
                  f"{p['corpus_nlos_share']:.1%}; {b['shards'] / 2**20:.0f} MiB on disk, built in "
                  f"{p['corpus_build_s']:.0f} s), never the target world's test split and no label.", ""]
    else:
        lines += [f"Pretraining read the target world's train split ({p.get('train_samples')} samples, no labels).",
                  ""]
    curve = [c for c in rep.get("pool_curve") or [] if "results" in c]
    if curve:
        lines += ["### Pool-size curve (mean over seeds; target test, and the unseen world with the heads as "
                  "trained)", "",
                  "| objective | pool | x labelled | pretrain best val loss | steps | modality | labels | LoS BA | "
                  "loc mean [m] | unseen loc mean [m] |", "|---|---|---|---|---|---|---|---|---|---|"]
        for c in curve:
            for r in c["results"]:
                lines.append(f"| {c['objective']} | {c['pool']} | {c['pool_multiple']:g} | "
                             f"{c['pretrain']['best_val_loss']:.3f} | {c['pretrain']['steps']} | {r['modality']} | "
                             f"{r['label_fraction']:.0%} | {r['los_balanced_accuracy_mean']:.3f} | "
                             f"{r['loc_mean_error_m_mean']:.2f} | {_f(r.get('unseen_loc_mean_error_m_mean'), 2)} |")
        skipped = [c for c in rep["pool_curve"] if "skipped" in c]
        lines += [""] + [f"Pool {c['pool_multiple']:g}x left out: {c['skipped']}." for c in skipped]
        lines += [""]
    u = rep.get("unseen_world")
    if u:
        lines += [f"## Unseen world {u['world']}", "",
                  f"A street, BS and camera placement in no corpus and no labelled set ({u['dataset']['samples']} "
                  f"samples; test {u['dataset']['splits']['test']['samples']}, NLoS "
                  f"{u['dataset']['splits']['test']['nlos_share']:.1%}). Positions transfer {u['position_transfer']}.",
                  "", "Trained on the target world, applied as they are (all label fractions, seed means):", "",
                  "| method | modality | labels | LoS BA | loc mean [m] | loc median [m] |",
                  "|---|---|---|---|---|---|"]
        for r in u["as_trained"]:
            lines.append(f"| {NAMES.get(r['method'], r['method'])} | {r['modality']} | {r['label_fraction']:.0%} | "
                         f"{r['unseen_los_balanced_accuracy_mean']:.3f} | {r['unseen_loc_mean_error_m_mean']:.2f} | "
                         f"{r['unseen_loc_median_error_m_mean']:.2f} |")
        lines += ["", "Trained on a few of the unseen world's own labels (heads on the frozen encoders; E2E from "
                  "scratch on the same labels):", "",
                  "| method | modality | labels (samples) | LoS BA | loc mean [m] | loc median [m] |",
                  "|---|---|---|---|---|---|"]
        for r in u["few_labels"]:
            lines.append(f"| {NAMES.get(r['method'], r['method'])} | {r['modality']} | {r['label_fraction']:.0%} "
                         f"({r['labelled']}) | {r['los_balanced_accuracy_mean']:.3f} ± "
                         f"{r['los_balanced_accuracy_std']:.3f} | {r['loc_mean_error_m_mean']:.2f} ± "
                         f"{r['loc_mean_error_m_std']:.2f} | {r['loc_median_error_m_mean']:.2f} |")
        lines += [""]
    return lines


def error_change(reduction_pct: float) -> str:
    """'WMFM's error 55.1 % higher' / '... lower' from the reduction (positive: WMFM lower)."""
    return f"WMFM's error {abs(reduction_pct):.1f} % {'lower' if reduction_pct > 0 else 'higher'}"


def _verdict(s: dict) -> str:
    h, small = s["headline"], s["smallest_fraction_beating_e2e_full"]
    parts = []
    for key, name in (("per_fraction", "fused"), ("per_fraction_csi_only", "csi-only")):
        for metric, label in (("los_ba_gain_pct", "LoS balanced accuracy"), ("loc_error_reduction_pct",
                                                                             "localisation error")):
            wins = [f"{g['label_fraction']:.0%}" for g in s.get(key, []) if g[metric] > 0]
            parts.append(f"WMFM {name} beats E2E at the same label fraction on {label} at: "
                         f"{', '.join(wins) if wins else 'no fraction'}.")
    for metric, name, won in (("los_balanced_accuracy", "LoS balanced accuracy", h["los_ba_gain_pct"] > 0),
                              ("loc_mean_error_m", "localisation error", h["loc_error_reduction_pct"] > 0)):
        f = small[metric]
        where = (f"WMFM beats the all-labels E2E from {f:.0%} of the labels on" if f is not None
                 else "WMFM does **not** beat the all-labels E2E at any label fraction on")
        parts.append(f"{where} {name}" + ("" if won else " (and loses to it at 100 %)") + ".")
    return " ".join(parts)
