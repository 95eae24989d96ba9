"""An arm's training set, assembled in one call: the regimen's real rows split by patient, the extra
images the arm adds (generated, repeated or outside real rows) with their provenance, and its loss
weights, on the device and ready for the training loop."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from chexbal.classify import arms
from chexbal.data.dataset import images_on, locate, open_images, read_subset, split_regimen
from chexbal.data.labels import label_matrix
from chexbal.errors import ChexbalError


@dataclasses.dataclass
class Split:
    """One split on the device: uint8 images, float labels (n, 14, columns in PATHOLOGIES order), and
    the real rows they came from (a training split's extra images follow its rows' images)."""

    images: torch.Tensor
    labels: torch.Tensor
    rows: pd.DataFrame


@dataclasses.dataclass
class TrainingSet:
    """Everything an arm trains and is judged on, ready for the loop: the three splits, what the arm
    added to the training split (with its provenance) and the loss weights it asks for."""

    train: Split
    val: Split
    test: Split
    extra: arms.Extra | None  # what the arm added to the training split
    weights: dict[str, float] | None  # the `weighted` arm's positive weight per class


def load_data(cfg, device: torch.device) -> TrainingSet:
    """Train, validation and test splits of the regimen, on `device`.

    Validation and test are real images of the regimen only; an arm's extra images (generated, or
    real repeats and outside rows) join the training split alone.
    """
    folder = locate(Path(cfg.data_dir), cfg.dataset)
    subset = read_subset(folder, cfg.frac)
    train_rows, val_rows = split_regimen(folder, subset, cfg.frac, cfg.splitting_seed())
    test_rows = subset[subset["split"] == "test"]
    extra = arms.extra_images(cfg.aug, folder, cfg.frac, subset, train_rows, cfg.splitting_seed())
    size = open_images(folder, 0).shape[1:]
    if extra is not None and extra.images.shape[1:] != size:
        raise ChexbalError(f"the extra images are {extra.images.shape[1]} px, the dataset's {size[0]} px")

    def split(rows: pd.DataFrame, added: arms.Extra | None = None) -> Split:
        # Streamed to the device a store block at a time: on a GPU the host never holds the regimen.
        x, y = images_on(folder, rows, device, extra=0 if added is None else len(added.images)), label_matrix(rows)
        if added is not None:
            x[len(rows) :] = torch.from_numpy(np.ascontiguousarray(added.images)).to(device)
            y = np.concatenate([y, added.labels])
        return Split(x, torch.from_numpy(y).to(device), rows)

    weights = arms.positive_weights(label_matrix(train_rows), cfg.pos_weight_cap) if cfg.aug == "weighted" else None
    return TrainingSet(split(train_rows, extra), split(val_rows), split(test_rows), extra, weights)
