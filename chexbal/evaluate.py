"""Per-class AUC by class name, NaN where a class has a single label value."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score

from .labels import PATHOLOGIES


def auc_per_class(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """AUC of each column, keyed by its CheXpert name; columns are in PATHOLOGIES order."""
    aucs = {}
    for i, name in enumerate(PATHOLOGIES):
        y = labels[:, i]
        aucs[name] = float(roc_auc_score(y, probs[:, i])) if 0 < y.sum() < len(y) else float("nan")
    return aucs


def mean_auc(aucs: dict[str, float]) -> float:
    values = [v for v in aucs.values() if not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")
