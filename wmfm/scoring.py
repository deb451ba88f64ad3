"""Test metrics: LoS balanced accuracy and confusion, localisation error statistics."""

from __future__ import annotations

import numpy as np


def balanced_accuracy(y_true, y_pred) -> float:
    """Mean of the per-class recalls (classes present in y_true)."""
    y_true, y_pred = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    recalls = [float((y_pred[y_true == c] == c).mean()) for c in np.unique(y_true)]
    return float(np.mean(recalls))


def confusion(y_true, y_pred) -> list[list[int]]:
    """[[NLoS->NLoS, NLoS->LoS], [LoS->NLoS, LoS->LoS]] (rows: truth, 0 = NLoS)."""
    y_true, y_pred = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    return [[int(((y_true == t) & (y_pred == p)).sum()) for p in (0, 1)] for t in (0, 1)]


def localisation(pred, truth) -> dict[str, float]:
    """Euclidean 3-D error statistics in metres."""
    err = np.linalg.norm(np.asarray(pred, float) - np.asarray(truth, float), axis=-1)
    return {"loc_mean_error_m": float(err.mean()), "loc_median_error_m": float(np.median(err)),
            "loc_p90_error_m": float(np.percentile(err, 90))}


def evaluate(los_logit, pos_pred, los_true, pos_true) -> dict:
    """All test metrics of one run (logit > 0 means LoS)."""
    los_pred = (np.asarray(los_logit) > 0).astype(int)
    out = {"los_balanced_accuracy": balanced_accuracy(los_true, los_pred),
           "los_accuracy": float((los_pred == np.asarray(los_true).astype(int)).mean()),
           "los_confusion": confusion(los_true, los_pred)}
    return out | localisation(pos_pred, pos_true)
