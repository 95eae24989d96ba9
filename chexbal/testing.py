"""Builders of small CheXpert-format folders, made here with no download: the tests' data, and the
speed benchmarks' (scripts/bench_prepare.py). Part of the package so both import it plainly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from chexbal.data.labels import PATHOLOGIES, TARGETS

# Several aspect ratios, as in CheXpert (portrait, landscape, square).
SHAPES = [(320, 390), (390, 320), (300, 300)]


def make_chexpert(root: Path, n_patients: int = 40, seed: int = 0) -> Path:
    """A CheXpert-v1.0-small lookalike: train.csv in the real format plus JPEGs.

    Each frontal image is bright in its central square and black in the margins a center crop
    removes, so a wrong crop shows; lateral rows are mixed in; labels use 1, 0, -1 and blank.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(1, n_patients + 1):
        for study in (1, 2) if p % 3 == 0 else (1,):
            for view, kind in (("view1_frontal", "Frontal"), ("view2_lateral", "Lateral")):
                if kind == "Lateral" and p % 2:
                    continue
                rel = f"train/patient{p:05d}/study{study}/{view}.jpg"
                height, width = SHAPES[(p + study) % len(SHAPES)]
                pixels = np.zeros((height, width), np.uint8)
                side = min(height, width)
                top, left = (height - side) // 2, (width - side) // 2
                pixels[top : top + side, left : left + side] = 200
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(root / rel, quality=95)
                labels = rng.choice([1.0, 0.0, -1.0, np.nan], size=len(PATHOLOGIES), p=[0.2, 0.3, 0.1, 0.4])
                rows.append([f"CheXpert-v1.0-small/{rel}", "Female", 60, kind, "AP" if kind == "Frontal" else "", *labels])
    table = pd.DataFrame(rows, columns=["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *PATHOLOGIES])
    table.to_csv(root / "train.csv", index=False)
    return root


PLANTED = "Fracture"


def make_planted(root, n_patients=240, seed=0, target_rate=None):
    """A CheXpert-format folder where only PLANTED has a visible sign (a bright top-left square);
    every other label is random, so only PLANTED can be learned. `target_rate`: the three targets
    are positive at this rate instead of half the time (rare findings, as in CheXpert)."""
    rng = np.random.default_rng(seed)
    rows = []
    targets = [PATHOLOGIES.index(t) for t in TARGETS]
    for p in range(1, n_patients + 1):
        rel = f"train/patient{p:05d}/study1/view1_frontal.jpg"
        labels = rng.choice([1.0, 0.0], size=len(PATHOLOGIES))
        if target_rate is not None:
            labels[targets] = rng.random(len(targets)) < target_rate
        pixels = rng.integers(60, 100, (48, 48)).astype(np.uint8)
        if labels[PATHOLOGIES.index(PLANTED)] == 1:
            pixels[4:20, 4:20] = 230
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / rel, quality=95)
        rows.append([f"CheXpert-v1.0-small/{rel}", "Male", 50, "Frontal", "PA", *labels])
    pd.DataFrame(rows, columns=["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *PATHOLOGIES]).to_csv(
        root / "train.csv", index=False
    )
    return root
