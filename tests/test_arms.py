"""The control arms and the regimen generator: what each adds, where it comes from, and what it saw."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from chexbal import files
from chexbal.classify import arms
from chexbal.classify import train as train_module
from chexbal.classify.train import TrainConfig, train
from chexbal.classify.training_set import Split, load_data
from chexbal.data.dataset import read_index, read_subset
from chexbal.data.labels import PATHOLOGIES, TARGETS, label_matrix
from chexbal.data.splits import train_val_split
from chexbal.errors import ChexbalError
from chexbal.generators.gan.train import GanConfig, train_gan
from chexbal.generators.generate import generate
from chexbal.generators.plan import make_plan


def config(base, **overrides) -> TrainConfig:
    options = dict(
        frac=0.5,
        epochs=1,
        batch_size=16,
        data_dir=str(base / "data"),
        dataset="rare",
        run_dir=str(base / "runs" / "default"),
        amp="off",
        split_seed=0,
    )
    return TrainConfig(**{**options, **overrides})


def regimen(base, frac=0.5, split_seed=0):
    subset = read_subset(base / "data" / "rare", frac)
    train_rows, val_rows = train_val_split(subset[subset["split"] == "pool"], split_seed)
    return subset, train_rows, val_rows


def test_oversample_adds_the_plans_counts_from_training_rows_deterministically(rare):
    subset, train_rows, _ = regimen(rare)
    plan = make_plan(train_rows, seed=0)
    assert sum(plan.generate.values()) > 0
    data = load_data(config(rare, aug="oversample"), torch.device("cpu"))
    rows = data.extra.rows
    assert rows["target"].value_counts().to_dict() == {t: n for t, n in plan.generate.items() if n}
    assert rows["index"].isin(train_rows["index"]).all()
    for target in TARGETS:  # each extra image is a real positive of the target it was drawn for
        drawn = train_rows.set_index("index").loc[rows.loc[rows["target"] == target, "index"], target]
        assert (drawn == 1).all()
    assert len(data.train.labels) == len(train_rows) + len(rows)
    again = load_data(config(rare, aug="oversample", seed=3), torch.device("cpu")).extra.rows
    pd.testing.assert_frame_equal(rows, again)


def test_real_extra_rows_lie_outside_the_regimen_and_the_test_set(rare):
    subset, train_rows, val_rows = regimen(rare)
    index = read_index(rare / "data" / "rare")
    data = load_data(config(rare, aug="real-extra"), torch.device("cpu"))
    rows = data.extra.rows
    plan = make_plan(train_rows, seed=0)
    assert rows["target"].value_counts().to_dict() == {t: n for t, n in plan.generate.items() if n}
    test_patients = set(index.loc[index["split"] == "test", "patient"])
    assert not rows["patient"].isin(set(subset["patient"]) | test_patients).any()
    assert not rows["patient"].isin(set(val_rows["patient"])).any()
    with pytest.raises(ChexbalError, match="does not apply at regimen 1"):
        load_data(config(rare, aug="real-extra", frac=1.0), torch.device("cpu"))


class FixedLogits(nn.Module):
    """A model whose logits are one learnable row, whatever the image."""

    def __init__(self, row: torch.Tensor):
        super().__init__()
        self.row = nn.Parameter(row.clone())

    def forward(self, x):
        return self.row.expand(len(x), -1)


def test_weighted_loss_uses_the_stated_positive_weights():
    labels = np.zeros((10, len(PATHOLOGIES)), np.float32)
    labels[:2, 0] = 1  # 2 positives, 8 negatives: weight 4
    labels[:, 1] = 1  # no negatives: weight 0
    weights = arms.positive_weights(labels, cap=3.0)
    assert weights["No Finding"] == 3.0  # 4, capped
    assert weights["Enlarged Cardiomediastinum"] == 0.0 and weights["Fracture"] == 3.0  # no positive: the cap
    logits = torch.linspace(-1, 1, len(PATHOLOGIES))
    part = Split(torch.zeros(4, 8, 8, dtype=torch.uint8), torch.from_numpy(labels[:4]), pd.DataFrame())
    pos_weight = torch.tensor([weights[n] for n in PATHOLOGIES])
    cfg = TrainConfig(batch_size=4, aug="weighted")
    model = FixedLogits(logits)
    step = train_module.Step(torch.device("cpu"), pos_weight=pos_weight)
    _, loss = train_module.train_epoch(model, torch.optim.SGD(model.parameters(), lr=0.0), part, cfg, 0, step)
    p = torch.sigmoid(logits)
    y = part.labels
    by_hand = -(pos_weight * y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    assert loss == pytest.approx(by_hand.item(), rel=1e-5)


@pytest.mark.slow
def test_a_run_records_its_split_extras_and_weights(rare):
    run = train(config(rare, aug="weighted", run_dir=str(rare / "runs" / "weighted")), quiet=True)
    recorded = json.loads((run / "config.json").read_text())
    _, train_rows, val_rows = regimen(rare)
    assert recorded["pos_weight"] == arms.positive_weights(label_matrix(train_rows))
    split = pd.read_csv(run / "split.csv")
    assert set(split.loc[split["split"] == "train", "index"]) == set(train_rows["index"])
    assert set(split.loc[split["split"] == "val", "patient"]) == set(val_rows["patient"])
    run = train(config(rare, aug="oversample", run_dir=str(rare / "runs" / "oversample")), quiet=True)
    extra = pd.read_csv(run / "extra-rows.csv")
    assert (
        list(extra.columns) == ["index", "patient", "target"]
        and len(extra) == json.loads((run / "config.json").read_text())["extra_images"]["images"]
    )


@pytest.fixture(scope="module")
def regimen_generator(rare):
    cfg = GanConfig(
        frac=0.5,
        steps=2,
        batch_size=8,
        checkpoint_every=2,
        sample_every=2,
        data_dir=str(rare / "data"),
        dataset="rare",
        run_dir=str(rare / "gan-0.5"),
    )
    return train_gan(cfg, quiet=True)


def test_the_regimen_generator_sees_exactly_the_classifiers_training_rows(rare, regimen_generator):
    seen = pd.read_csv(regimen_generator / "training-rows.csv")
    data = load_data(config(rare), torch.device("cpu"))
    assert sorted(seen["index"]) == sorted(data.train.rows["index"])
    index = read_index(rare / "data" / "rare")
    forbidden = set(data.val.rows["patient"]) | set(index.loc[index["split"] == "test", "patient"])
    assert not seen["patient"].isin(forbidden).any()
    card = json.loads((regimen_generator / "generator.json").read_text())
    assert card["rows"] == len(seen) and card["frac"] == 0.5 and card["validation_patients_excluded"]
    assert card["sha256"] == files.sha256(regimen_generator / "generator.pt")


def test_both_sets_coexist_and_a_set_from_another_split_is_refused(rare, regimen_generator):
    checkpoint = regimen_generator / "generator.pt"
    kwargs = dict(data_dir=rare / "data", dataset="rare", quiet=True)
    pool_set = generate(0.5, checkpoint, **kwargs)
    regimen_set = generate(0.5, checkpoint, generator="regimen", **kwargs)
    assert pool_set != regimen_set and (pool_set / "labels.csv").exists() and (regimen_set / "labels.csv").exists()
    provenance = json.loads((regimen_set / "provenance.json").read_text())
    assert provenance["trained_on"]["rows"] == json.loads((regimen_generator / "generator.json").read_text())["rows"]
    data = load_data(config(rare, aug="gan-regimen"), torch.device("cpu"))
    assert data.extra.record["checkpoint_sha256"] == files.sha256(checkpoint)
    with pytest.raises(ChexbalError, match="planned from the split of seed 0, this run splits with seed 1"):
        load_data(config(rare, aug="gan-regimen", split_seed=1), torch.device("cpu"))
    with pytest.raises(ChexbalError, match="not on regimen 0.5 split 1"):
        generate(0.5, checkpoint, split_seed=1, generator="regimen", **kwargs)


def test_the_second_regimen_gan_arm_takes_only_a_generator_trained_with_seed_1(rare, regimen_generator):
    kwargs = dict(data_dir=rare / "data", dataset="rare", quiet=True)
    with pytest.raises(ChexbalError, match="trained with seed 0, --generator regimen-seed1 needs seed 1"):
        generate(0.5, regimen_generator / "generator.pt", generator="regimen-seed1", **kwargs)
    cfg = GanConfig(frac=0.5, steps=2, batch_size=8, checkpoint_every=2, sample_every=2, seed=1, data_dir=str(rare / "data"))
    cfg.dataset, cfg.run_dir = "rare", str(rare / "gan-0.5-seed1")
    second = train_gan(cfg, quiet=True)
    assert files.sha256(second / "generator.pt") != files.sha256(regimen_generator / "generator.pt")
    second_set = generate(0.5, second / "generator.pt", generator="regimen-seed1", **kwargs)
    assert second_set.name == "frac-0.5-regimen-seed1" and (second_set / "labels.csv").exists()
    data = load_data(config(rare, aug="gan-regimen-seed1"), torch.device("cpu"))
    assert data.extra.record["checkpoint_sha256"] == files.sha256(second / "generator.pt")
