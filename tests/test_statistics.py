"""The statistics behind the report, each against a reference: brute force, a textbook example, or a
simulation whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from chexbal.analysis.evaluate import bootstrap_aucs, confidence_interval, delong, format_p, holm, resample_weights, weighted_aucs
from chexbal.analysis.results import size_changes, with_holm
from chexbal.analysis.stats import SeedBootstrap
from chexbal.analysis.wording import size_line


def clustered_case(n_patients=150, seed=0):
    """About three images per patient; a patient's images share its label and a patient effect."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, n_patients)
    patients = np.repeat(np.arange(n_patients), sizes)
    sick = rng.random(n_patients) < 0.25
    effect = rng.normal(0, 1, n_patients)
    y = sick[patients]
    a = y * 1.0 + effect[patients] + rng.normal(0, 0.5, len(y))
    b = y * 1.3 + effect[patients] + rng.normal(0, 0.5, len(y))
    return y, a, b, patients


def brute_force_obuchowski_se(y, a, b, clusters):
    """Obuchowski (1997) written out with explicit loops over clusters and image pairs."""
    clusters = np.asarray(clusters)
    ids = sorted(set(clusters))
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    m, n = len(pos), len(neg)

    def psi(s):
        return (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])

    parts = []
    for s in (a, b):
        kernel = psi(s)
        auc = kernel.mean()
        v10, v01 = kernel.mean(axis=1), kernel.mean(axis=0)
        c10 = np.array([sum(v10[j] - auc for j, i in enumerate(pos) if clusters[i] == c) for c in ids])
        c01 = np.array([sum(v01[k] - auc for k, i in enumerate(neg) if clusters[i] == c) for c in ids])
        parts.append((c10, c01))
    i10 = len({clusters[i] for i in pos})
    i01 = len({clusters[i] for i in neg})
    k = len(ids)

    def cov(u, v):
        s10 = i10 / ((i10 - 1) * m) * (u[0] @ v[0])
        s01 = i01 / ((i01 - 1) * n) * (u[1] @ v[1])
        s11 = k / (k - 1) * (u[0] @ v[1] + v[0] @ u[1])
        return s10 / m + s01 / n + s11 / (m * n)

    return math.sqrt(cov(parts[0], parts[0]) + cov(parts[1], parts[1]) - 2 * cov(parts[0], parts[1]))


def test_clustered_delong_matches_a_brute_force_obuchowski():
    y, a, b, patients = clustered_case(n_patients=40)
    a = np.round(a, 1)  # ties count half
    result = delong(y, a, b, patients)
    assert result["se"] == pytest.approx(brute_force_obuchowski_se(y, a, b, patients), rel=1e-9)
    assert result["auc_a"] == pytest.approx(roc_auc_score(y, a)) and result["auc_b"] == pytest.approx(roc_auc_score(y, b))
    # One image per cluster: Obuchowski's variance is DeLong's.
    assert delong(y, a, b, np.arange(len(y)))["se"] == pytest.approx(delong(y, a, b)["se"], rel=1e-9)


def test_weighted_auc_is_sklearn_on_repeated_images():
    rng = np.random.default_rng(3)
    y, a, _, _ = clustered_case(n_patients=30)
    a = np.round(a, 1)
    weights = rng.integers(0, 4, (5, len(y))).astype(np.float32)
    for row, auc in zip(weights, weighted_aucs(y, a, weights)):
        keep = row.astype(int)
        assert auc == pytest.approx(roc_auc_score(np.repeat(y, keep), np.repeat(a, keep)))


def test_patient_resampling_keeps_whole_patients_and_the_number_of_positive_patients():
    y, _, _, patients = clustered_case()
    weights = resample_weights(y, 50, 0, patients)
    for row in weights:  # every image of a patient weighs the same
        for p in np.unique(patients):
            assert len(set(row[patients == p])) == 1
    positive_patients = np.unique(patients[y])
    drawn = weights[:, np.searchsorted(patients, positive_patients)].sum(axis=1)
    assert (drawn == len(positive_patients)).all()


def test_duplicating_every_image_leaves_the_clustered_interval_and_shrinks_the_image_level_one():
    y, a, b, patients = clustered_case()
    twice = [np.concatenate([v, v]) for v in (y, a, b, patients)]
    clustered = confidence_interval(bootstrap_aucs(y, [a], 400, 0, patients)[0])
    clustered_twice = confidence_interval(bootstrap_aucs(twice[0], [twice[1]], 400, 0, twice[3])[0])
    assert clustered_twice == pytest.approx(clustered, abs=1e-9)
    images = confidence_interval(bootstrap_aucs(y, [a], 400, 0)[0])
    images_twice = confidence_interval(bootstrap_aucs(twice[0], [twice[1]], 400, 0)[0])
    assert images_twice[1] - images_twice[0] < 0.85 * (images[1] - images[0])
    assert delong(*twice[:3], twice[3])["se"] == pytest.approx(delong(y, a, b, patients)["se"], rel=1e-9)
    assert delong(*twice[:3])["se"] < 0.8 * delong(y, a, b)["se"]


def test_holm_on_a_known_example_and_nan_stays_out():
    adjusted = holm([0.01, 0.04, 0.03, 0.005, float("nan")])
    np.testing.assert_allclose(adjusted[:4], [0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adjusted[4])


def test_delong_with_fewer_than_two_positives_is_undefined_not_significant():
    y = np.array([1, 0, 0, 0, 0], bool)
    result = delong(y, np.arange(5.0), np.arange(5.0)[::-1])
    assert math.isnan(result["p"]) and math.isnan(result["se"])
    assert format_p(result["p"]) == "—" and format_p(0.0004) == "<0.001" and format_p(0.0312) == "0.031"


def simulated_seeds(effect, n_seeds, rng, n_patients=200):
    """Test predictions of two arms over seeds: each seed's run has its own quality (a seed effect)."""
    y, _, _, patients = clustered_case(n_patients, seed=int(rng.integers(1000)))
    noise = rng.normal(0, 1, len(y))
    scores = {}
    for arm, gain in (("none", 0.0), ("other", effect)):
        scores[arm] = {s: y * (1.0 + gain + rng.normal(0, 0.15)) + noise + rng.normal(0, 0.8, len(y)) for s in range(n_seeds)}
    return y, patients, scores


def test_seed_aggregation_finds_a_real_difference():
    y, patients, scores = simulated_seeds(0.6, 5, np.random.default_rng(0))
    bootstrap = SeedBootstrap(y, patients, scores, n_boot=400)
    comparison = bootstrap.compare("other", "none")
    assert comparison.diff > 0 and comparison.ci[0] > 0 and comparison.p < 0.05
    result = bootstrap.arm("other")
    assert result.ci[0] < result.mean < result.ci[1] and result.seeds == list(range(5))


def test_seed_aggregation_without_a_difference_is_rarely_significant():
    rng = np.random.default_rng(1)
    significant = []
    for _ in range(40):
        y, patients, scores = simulated_seeds(0.0, 5, rng, n_patients=120)
        significant.append(SeedBootstrap(y, patients, scores, n_boot=200).compare("other", "none").p < 0.05)
    assert np.mean(significant) <= 0.15, np.mean(significant)


def test_the_report_words_a_claim_only_where_the_adjusted_p_allows_it():
    import pandas as pd
    from scipy.stats import norm

    from chexbal.analysis.results import with_holm
    from chexbal.analysis.wording import answer

    rows = [
        ("gan-regimen", "oversample", "Pleural Other", 0.08, 0.0001),
        ("gan-regimen", "oversample", "Fracture", 0.05, 0.2),
        ("oversample", "none", "Pleural Other", 0.15, 0.0001),
        ("gan-regimen", "none", "Lung Lesion", -0.02, 0.03),
    ]
    comparisons = with_holm(
        pd.DataFrame(
            [
                {
                    "regimen": "1%",
                    "frac": 0.01,
                    "class": c,
                    "arm": a,
                    "against": ref,
                    "seeds": 5,
                    "diff": d,
                    "ci_low": d - 0.03,
                    "ci_high": d + 0.03,
                    "p": p,
                    "se": abs(d) / norm.isf(p / 2),  # the Wald standard error that gives this p
                }
                for a, ref, c, d, p in rows
            ]
        )
    )
    aucs = pd.DataFrame([{"regimen": "1%", "arm": a, "seeds": 5, "epochs": "10"} for a in ("none", "oversample", "gan-regimen")])
    text = " ".join(answer(aucs, comparisons, pd.DataFrame(), phantom=True))
    assert "`gan-regimen` beats `oversample` on Pleural Other (+0.080" in text
    assert "`oversample` beats `none` on Pleural Other" in text
    assert "Fracture no detectable difference" in text  # p 0.2: no claim
    assert "Lung Lesion (-0.020" not in text  # raw p 0.03, but 0.09 after Holm over 4 comparisons
    assert "seeds per arm: none 5" in text and "benchmark of the method" in text


def test_the_answer_speaks_of_a_generated_set_only_where_its_arm_has_runs():
    """A 10% set generated ahead of its trainings is not part of the answer yet."""
    import pandas as pd

    from chexbal.analysis.wording import answer

    aucs = pd.DataFrame([{"regimen": "1%", "arm": a, "seeds": 3, "epochs": "10"} for a in ("none", "oversample", "gan")])
    generator = {"generator trained on regimen": "100%", "rows": 1200, "validation patients excluded": "yes"}
    generators = pd.DataFrame([{"regimen": r, "arm": "gan", **generator} for r in ("1%", "10%")])
    no_comparisons = pd.DataFrame(columns=["regimen", "class", "arm", "against", "verdict"])
    text = " ".join(answer(aucs, no_comparisons, generators, phantom=True))
    assert "At 1%, `gan` used a generator trained on regimen 100% (1,200 rows" in text
    assert "At 10%" not in text


def test_the_adjusted_interval_excludes_zero_exactly_when_the_adjusted_p_is_below_alpha():
    import pandas as pd

    from chexbal.analysis.results import ALPHA, with_holm
    from chexbal.analysis.stats import wald_p

    rng = np.random.default_rng(3)
    diffs, ses = rng.normal(0, 0.03, 60), rng.uniform(0.005, 0.03, 60)
    diffs[:3] = 0.0  # exactly no difference, too
    table = pd.DataFrame({"diff": diffs, "se": ses, "p": [wald_p(d, s) for d, s in zip(diffs, ses)]})
    adjusted = with_holm(table)
    excludes_zero = (adjusted["adj_low"] > 0) | (adjusted["adj_high"] < 0)
    assert (excludes_zero == (adjusted["p_holm"] < ALPHA)).all()
    assert 0 < (adjusted["p_holm"] < ALPHA).sum() < len(table)  # both kinds were tested
    assert ((adjusted["adj_high"] - adjusted["adj_low"]) >= 2 * 1.959 * adjusted["se"]).all()  # never narrower than unadjusted


def two_regimens(effects, rng, n_seeds=5, n_patients=200):
    """Comparison rows and bootstrap values of `other` − `none` at 1% and 10%, on one test set: the
    arm's gain is effects[0] at 1% and effects[1] at 10%."""
    y, _, _, patients = clustered_case(n_patients, seed=int(rng.integers(1000)))
    rows, replicates = [], {}
    for frac, effect in zip((0.01, 0.1), effects):
        scores = {
            arm: {s: y * (1.0 + gain + rng.normal(0, 0.15)) + rng.normal(0, 1.2, len(y)) for s in range(n_seeds)}
            for arm, gain in (("none", 0.0), ("other", effect))
        }
        comparison = SeedBootstrap(y, patients, scores, n_boot=300).compare("other", "none")
        rows.append({"regimen": f"{frac:.0%}", "frac": frac, "class": "Fracture", "arm": "other", "against": "none"})
        rows[-1] |= {"diff": comparison.diff, "p": comparison.p, "se": comparison.se}
        replicates[(frac, "Fracture", "other", "none")] = comparison.replicates
    return size_changes(pd.DataFrame(rows), replicates), replicates


def test_a_gain_that_vanishes_with_data_size_is_found_and_worded():
    changes, _ = two_regimens((0.8, 0.0), np.random.default_rng(3))
    changes = with_holm(changes)
    row = changes.iloc[0]
    assert (row["from"], row["to"]) == ("1%", "10%") and row["diff"] == pytest.approx(row["diff_to"] - row["diff_from"])
    assert row["diff"] < 0 and row["ci_high"] < 0 and row["verdict"] == "hurts"
    assert "falls from" in size_line(changes) and "Fracture" in size_line(changes)


def test_an_unchanged_gain_rarely_changes_detectably_and_another_test_set_is_left_out():
    rng = np.random.default_rng(4)
    detected = [two_regimens((0.4, 0.4), rng, n_patients=120)[0].iloc[0]["p"] < 0.05 for _ in range(30)]
    assert np.mean(detected) <= 0.15, np.mean(detected)
    changes, replicates = two_regimens((0.4, 0.4), rng)
    del replicates[(0.1, "Fracture", "other", "none")]  # as auc_tables does for a regimen on other rows
    rows = pd.DataFrame(
        [
            {"regimen": r, "frac": f, "class": "Fracture", "arm": "other", "against": "none"}
            for r, f in (("1%", 0.01), ("10%", 0.1))
        ]
    )
    assert size_changes(rows.assign(diff=0.0, p=1.0, se=0.0), replicates).empty
