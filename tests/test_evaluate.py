from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from chexbal.analysis.evaluate import auc_per_class, bootstrap_aucs, confidence_interval, delong
from chexbal.data.labels import PATHOLOGIES, TARGETS, label_matrix


def correlated_case(n=600, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.2
    shared = rng.normal(size=n)
    a = y * 0.8 + shared + rng.normal(0, 0.7, n)
    b = y * 1.1 + shared + rng.normal(0, 0.7, n)
    return y, a, b


def test_auc_is_keyed_by_name_and_nan_for_one_label_value():
    labels = np.zeros((10, len(PATHOLOGIES)))
    labels[:5, PATHOLOGIES.index("Fracture")] = 1
    probs = labels * 0.9 + 0.05
    aucs = auc_per_class(labels, probs)
    assert list(aucs) == list(PATHOLOGIES)
    assert aucs["Fracture"] == 1.0 and np.isnan(aucs["Lung Lesion"])


def test_bootstrap_matches_sklearn_on_the_unresampled_data_and_ci_contains_the_estimate(monkeypatch):
    y, a, b = correlated_case()
    a = np.round(a, 1)  # ties must count half, as in sklearn
    samples = bootstrap_aucs(y, [a], n_boot=400)[0]
    point = roc_auc_score(y, a)
    low, high = confidence_interval(samples)
    assert low < point < high and high - low < 0.2
    assert abs(samples.mean() - point) < 0.01

    # A "resample" that keeps every image once is the data itself: the weighted AUC is sklearn's.
    class KeepEveryImage:
        def multinomial(self, n, p, size):
            return np.ones((size, len(p)))

    monkeypatch.setattr(np.random, "default_rng", lambda seed: KeepEveryImage())
    assert bootstrap_aucs(y, [a], n_boot=2)[0] == pytest.approx([point, point])


def test_delong_agrees_with_a_paired_bootstrap():
    y, a, b = correlated_case(n=1500, seed=1)
    result = delong(y, a, b)
    assert result["auc_a"] == pytest.approx(roc_auc_score(y, a))
    assert result["auc_b"] == pytest.approx(roc_auc_score(y, b))
    paired = bootstrap_aucs(y, [a, b], n_boot=2000, seed=2)
    differences = paired[1] - paired[0]
    assert result["diff"] == pytest.approx(differences.mean(), abs=0.005)
    assert result["se"] == pytest.approx(differences.std(), rel=0.15)
    # Identical models: no difference, p = 1.
    same = delong(y, a, a)
    assert same["diff"] == 0 and same["p"] == 1.0


def test_fidelity_aucs_measure_each_target_on_a_test_shaped_mix():
    from chexbal.generators.evaluation import UNIFORM, fidelity_aucs

    groups = [UNIFORM] * 40 + [t for t in TARGETS for _ in range(20)]
    conditions = pd.DataFrame(0.0, index=range(len(groups)), columns=list(PATHOLOGIES)).assign(group=groups)
    for target in TARGETS:
        conditions.loc[conditions["group"] == target, target] = 1.0
    conditions.loc[:9, "Support Devices"] = 1.0
    probs = label_matrix(conditions).astype(float)
    lesion, fracture = PATHOLOGIES.index("Lung Lesion"), PATHOLOGIES.index("Fracture")
    probs[:, fracture] = np.maximum(probs[:, fracture], probs[:, lesion])  # mistakes nodules for calluses
    aucs = fidelity_aucs(conditions, probs)
    # Lung Lesion is absent from the uniform group, as the rare target nearly is from real test sets;
    # scoring the Lung Lesion group as Fracture negatives would sink Fracture's AUC to 0.8.
    assert aucs["Fracture"] == 1.0 and aucs["Lung Lesion"] == 1.0
    assert auc_per_class(label_matrix(conditions), probs)["Fracture"] < 0.9
    assert aucs["Support Devices"] == 1.0 and np.isnan(aucs["Edema"])  # others: uniform group alone
    assert list(aucs) == list(PATHOLOGIES)
