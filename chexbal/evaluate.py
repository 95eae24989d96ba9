"""AUC by class name, stratified bootstrap confidence intervals, and DeLong's paired test.

For rare classes, AUC on a few hundred positives has a wide confidence interval, and two models
scored on the same test images are correlated: differences are judged by a paired test.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score

from .labels import PATHOLOGIES


def auc_per_class(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """AUC of each column, keyed by its CheXpert name; columns are in PATHOLOGIES order.
    NaN where a class has a single label value."""
    aucs = {}
    for i, name in enumerate(PATHOLOGIES):
        y = labels[:, i]
        aucs[name] = float(roc_auc_score(y, probs[:, i])) if 0 < y.sum() < len(y) else float("nan")
    return aucs


def mean_auc(aucs: dict[str, float]) -> float:
    values = [v for v in aucs.values() if not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def bootstrap_aucs(y: np.ndarray, scores: list[np.ndarray], n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """AUCs of each score vector on `n_boot` stratified resamples of the same test images.

    Each resample draws positives and negatives separately, with replacement, so every resample
    keeps the class balance; the same resample is applied to every score vector (paired). Returns
    an array (len(scores), n_boot). Resamples are multinomial weights, and each AUC is a weighted
    Mann-Whitney statistic with ties counted half, so no AUC needs a sort of its own.
    """
    rng = np.random.default_rng(seed)
    y = np.asarray(y).astype(bool)
    weights = np.zeros((n_boot, len(y)), np.float32)
    for mask in (y, ~y):
        where = np.flatnonzero(mask)
        weights[:, where] = rng.multinomial(len(where), np.full(len(where), 1 / len(where)), size=n_boot)
    n_pos, n_neg = y.sum(), (~y).sum()
    out = np.empty((len(scores), n_boot))
    for k, score in enumerate(scores):
        order = np.argsort(score, kind="stable")
        sorted_score = np.asarray(score)[order]
        starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
        w = weights[:, order]
        pos = np.add.reduceat(np.where(y[order], w, 0), starts, axis=1)
        neg = np.add.reduceat(np.where(y[order], 0, w), starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        out[k] = (pos * (below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)
    return out


def confidence_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    return float(np.percentile(samples, tail)), float(np.percentile(samples, 100 - tail))


def delong(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> dict[str, float]:
    """DeLong, DeLong & Clarke-Pearson (1988) for two correlated AUCs on the same images, with the
    midrank computation of Sun & Xu (2014). Returns both AUCs, the difference b - a, its standard
    error and the two-sided p-value."""
    y = np.asarray(y).astype(bool)
    m, n = y.sum(), (~y).sum()
    v10, v01, aucs = [], [], []
    for score in (score_a, score_b):
        score = np.asarray(score, float)
        pos, neg = score[y], score[~y]
        rank_all = _midranks(np.concatenate([pos, neg]))
        rank_pos, rank_neg = _midranks(pos), _midranks(neg)
        aucs.append((rank_all[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10.append((rank_all[:m] - rank_pos) / n)
        v01.append(1 - (rank_all[m:] - rank_neg) / m)
    s10, s01 = np.cov(np.array(v10)), np.cov(np.array(v01))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    diff = aucs[1] - aucs[0]
    se = math.sqrt(max(var, 0.0))
    p = math.erfc(abs(diff) / se / math.sqrt(2)) if se > 0 else (1.0 if diff == 0 else 0.0)
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "diff": float(diff), "se": se, "p": p}


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their mean rank."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks
