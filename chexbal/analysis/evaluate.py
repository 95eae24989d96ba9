"""AUC by class name, patient-level bootstrap intervals, the clustered paired test, and Holm's correction.

For rare classes, AUC on a few hundred positives has a wide confidence interval; two models scored on
the same test images are correlated, so differences are judged by a paired test; and a patient's
images (about three each in CheXpert) are not independent, so intervals and tests resample patients.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from chexbal.data.labels import PATHOLOGIES


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


def resample_weights(y: np.ndarray, n_boot: int, seed: int = 0, clusters: np.ndarray | None = None) -> np.ndarray:
    """(n_boot, n) weights of a bootstrap that resamples clusters (patients), or images where
    `clusters` is None (each image its own cluster). An image weighs as often as its cluster is drawn.

    Clusters are drawn within two strata, those holding a positive image and those holding none, each
    with replacement and as many as it has, so every resample keeps the number of positive patients
    (the class balance, at the patient level) of the test set."""
    y = np.asarray(y).astype(bool)
    clusters = np.arange(len(y)) if clusters is None else pd.factorize(np.asarray(clusters))[0]
    n_clusters = clusters.max() + 1 if len(clusters) else 0
    has_positive = np.zeros(n_clusters, bool)
    has_positive[clusters[y]] = True
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_boot, n_clusters), np.float32)
    for stratum in (has_positive, ~has_positive):
        where = np.flatnonzero(stratum)
        if len(where):
            counts[:, where] = rng.multinomial(len(where), np.full(len(where), 1 / len(where)), size=n_boot)
    return counts[:, clusters]


def weighted_aucs(y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of one score vector under each row of `weights` (n_boot, n): the Mann-Whitney statistic
    with each image counted `weight` times and ties counted half, as sklearn on repeated data."""
    y = np.asarray(y).astype(bool)
    order = np.argsort(score, kind="stable")
    sorted_score = np.asarray(score)[order]
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    w = weights[:, order]
    pos = np.add.reduceat(np.where(y[order], w, 0), starts, axis=1)
    neg = np.add.reduceat(np.where(y[order], 0, w), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def bootstrap_aucs(
    y: np.ndarray, scores: list[np.ndarray], n_boot: int = 1000, seed: int = 0, clusters: np.ndarray | None = None
) -> np.ndarray:
    """AUCs of each score vector on `n_boot` stratified resamples of the same test set (paired: the
    same resample for every vector), resampling patients where `clusters` names each image's patient.
    Returns an array (len(scores), n_boot)."""
    weights = resample_weights(y, n_boot, seed, clusters)
    return np.array([weighted_aucs(y, score, weights) for score in scores])


def confidence_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    return float(np.percentile(samples, tail)), float(np.percentile(samples, 100 - tail))


def delong(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, clusters: np.ndarray | None = None) -> dict[str, float]:
    """The paired test of two correlated AUCs on the same images: DeLong, DeLong & Clarke-Pearson
    (1988), with Obuchowski's (1997) clustered variance where `clusters` names each image's patient
    (images of one patient are not independent). Midranks as in Sun & Xu (2014). Returns both AUCs,
    the difference b - a, its standard error and the two-sided p-value; NaN for the standard error and
    p where there are fewer than two positives or two negatives (or clusters holding them)."""
    y = np.asarray(y).astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    clusters = np.arange(len(y)) if clusters is None else pd.factorize(np.asarray(clusters))[0]
    aucs, v10, v01 = [], [], []
    for score in (score_a, score_b):
        auc, placements_pos, placements_neg = _placements(y, np.asarray(score, float))
        aucs.append(auc)
        v10.append(placements_pos)
        v01.append(placements_neg)
    diff = aucs[1] - aucs[0]
    result = {"auc_a": aucs[0], "auc_b": aucs[1], "diff": float(diff), "se": float("nan"), "p": float("nan")}
    pos_clusters, neg_clusters = np.unique(clusters[y]), np.unique(clusters[~y])
    if m < 2 or n < 2 or len(pos_clusters) < 2 or len(neg_clusters) < 2:
        return result
    var = _clustered_variance(y, clusters, aucs, v10, v01)
    se = math.sqrt(max(var, 0.0))
    result["se"] = se
    result["p"] = math.erfc(abs(diff) / se / math.sqrt(2)) if se > 0 else (1.0 if diff == 0 else 0.0)
    return result


def _placements(y: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The AUC, each positive's share of negatives it out-scores (V10) and each negative's share of
    positives that out-score it (V01), ties counted half."""
    m, n = y.sum(), (~y).sum()
    pos, neg = score[y], score[~y]
    rank_all = _midranks(np.concatenate([pos, neg]))
    auc = (rank_all[:m].sum() - m * (m + 1) / 2) / (m * n) if m and n else float("nan")
    return float(auc), (rank_all[:m] - _midranks(pos)) / max(n, 1), 1 - (rank_all[m:] - _midranks(neg)) / max(m, 1)


def _clustered_variance(y, clusters, aucs, v10, v01) -> float:
    """Var(AUC_b - AUC_a) by Obuchowski's formula: per-cluster sums of the placements, so images of one
    patient vary together. With one image per cluster it is DeLong's variance."""
    m, n, k = y.sum(), (~y).sum(), clusters.max() + 1
    per_pos, per_neg = np.bincount(clusters[y], minlength=k), np.bincount(clusters[~y], minlength=k)
    i10, i01 = (per_pos > 0).sum(), (per_neg > 0).sum()
    # Centred per-cluster sums, one row per model: V_i - m_i * AUC.
    c10 = np.array([np.bincount(clusters[y], weights=v, minlength=k) - per_pos * a for v, a in zip(v10, aucs)])
    c01 = np.array([np.bincount(clusters[~y], weights=v, minlength=k) - per_neg * a for v, a in zip(v01, aucs)])
    s10 = i10 / ((i10 - 1) * m) * (c10 @ c10.T)
    s01 = i01 / ((i01 - 1) * n) * (c01 @ c01.T)
    s11 = k / (k - 1) * (c10 @ c01.T)
    cov = s10 / m + s01 / n + (s11 + s11.T) / (m * n)
    return float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values of one family of tests; NaN stays NaN and does not count."""
    p = np.asarray(pvalues, float)
    adjusted = np.full(len(p), np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def format_p(p: float) -> str:
    """A p-value as a reader should see it: "—" where undefined, "<0.001" rather than 0.000."""
    if p is None or math.isnan(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their mean rank."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks
