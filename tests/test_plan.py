from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chexbal.cli import app
from chexbal.data.labels import PATHOLOGIES, TARGETS
from chexbal.errors import ChexbalError
from chexbal.generators.plan import make_plan


def rows(n=400, seed=0, lesion_carries_fracture=False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, len(PATHOLOGIES))) < 0.03).astype(np.uint8)
    if lesion_carries_fracture:
        lesion = labels[:, PATHOLOGIES.index("Lung Lesion")] == 1
        labels[lesion, PATHOLOGIES.index("Fracture")] = 1
    return pd.DataFrame(labels, columns=list(PATHOLOGIES))


def target_counts(table: pd.DataFrame) -> np.ndarray:
    return table[list(TARGETS)].to_numpy().sum(axis=0)


@pytest.mark.parametrize("share", [0.05, 0.15, 0.3])
def test_every_target_reaches_the_share_with_the_fewest_images(share):
    real = rows()
    plan = make_plan(real, share=share, seed=3)
    counts = target_counts(real) + target_counts(plan.vectors)
    total = len(real) + len(plan.vectors)
    assert plan.augmented == total and plan.real == len(real)
    assert (counts / total >= share - 1e-12).all()
    assert plan.share == pytest.approx(dict(zip(TARGETS, counts / total)))
    # Fewest within one per class: dropping the last image of any class breaks the share.
    for target in TARGETS:
        mine = plan.vectors[plan.vectors["target"] == target]
        if len(mine):
            without = plan.vectors.drop(index=mine.index[-1])
            assert ((target_counts(real) + target_counts(without)) / (total - 1) < share - 1e-12).any()
    assert plan.generate == plan.vectors["target"].value_counts().reindex(list(TARGETS), fill_value=0).to_dict()


def test_vectors_are_drawn_from_real_positives_and_cooccurrence_counts():
    real = rows(lesion_carries_fracture=True)
    plan = make_plan(real, seed=0)
    real_vectors = {tuple(v) for v in real[list(PATHOLOGIES)].to_numpy()}
    for target in TARGETS:
        mine = plan.vectors[plan.vectors["target"] == target]
        assert (mine[target] == 1).all()
        assert all(tuple(v) in real_vectors for v in mine[list(PATHOLOGIES)].to_numpy())
    independent = make_plan(rows(), seed=0)
    # Every Lung Lesion image also adds a Fracture, so Fracture needs fewer images of its own.
    assert plan.generate["Fracture"] < independent.generate["Fracture"]


def test_deterministic_for_a_seed():
    a, b, c = make_plan(rows(), seed=1), make_plan(rows(), seed=1), make_plan(rows(), seed=2)
    pd.testing.assert_frame_equal(a.vectors, b.vectors)
    assert not a.vectors.equals(c.vectors)


def test_plan_json_from_the_bundled_chexpert_labels():
    result = CliRunner().invoke(app, ["plan", "--source", "chexpert-labels", "--frac", "0.01", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert set(summary) == {"real", "generate", "augmented", "share"}
    assert summary["augmented"] == summary["real"] + sum(summary["generate"].values())
    assert min(summary["share"].values()) >= 0.15 and set(summary["generate"]) == set(TARGETS)


@pytest.mark.parametrize("share", [0.4, 0.9])
def test_an_unreachable_share_is_refused_at_once(share):
    """Three targets that never co-occur cannot each be 40% of one set: one clear error, no endless loop."""
    with pytest.raises(ChexbalError, match=f"--share {share:g} cannot be reached") as caught:
        make_plan(rows(), share=share)
    assert caught.value.exit_code == 2


def test_sharing_findings_makes_a_high_share_reachable():
    real = rows(lesion_carries_fracture=True)
    plan = make_plan(real, share=0.3)
    assert min(plan.share.values()) >= 0.3
