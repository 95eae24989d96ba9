"""Where the maps point: the pointing game against the phantom's drawn signs.

For each test image whose target sign was drawn (signs.csv holds the sign's box), an arm's Grad-CAM
map scores a hit when its peak lies inside the box. Chance is the box's share of the image: a map
that peaks at a random pixel hits that often. Only the phantom knows where its signs are, so only
its reports have this table; signs.csv is never an input to training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from chexbal.analysis.oracle import read_signs
from chexbal.analysis.results import Runs, first_seed
from chexbal.classify import classifier
from chexbal.classify.arms import arm_order
from chexbal.classify.cam import GradCam
from chexbal.data.dataset import load_images
from chexbal.data.labels import TARGETS

CORNERS = ("x0", "y0", "x1", "y1")


def hits(maps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Whether each map's peak pixel (n, S, S) lies inside its box (n, 4: x0 y0 x1 y1, pixels)."""
    if not len(maps):
        return np.zeros(0, bool)
    rows, cols = np.unravel_index(maps.reshape(len(maps), -1).argmax(axis=1), maps.shape[1:])
    x0, y0, x1, y1 = boxes.T
    return (cols >= x0) & (cols <= x1) & (rows >= y0) & (rows <= y1)


def chance(boxes: np.ndarray, size: int) -> np.ndarray:
    """Each box's share of the image's pixels (clipped to the image): a random peak's hit rate."""
    x0, y0, x1, y1 = np.clip(boxes, 0, size - 1).T
    return (np.floor(x1) - np.ceil(x0) + 1).clip(0) * (np.floor(y1) - np.ceil(y0) + 1).clip(0) / size**2


def drawn_test_rows(predictions: pd.DataFrame, signs: pd.DataFrame, target: str, limit: int) -> pd.DataFrame:
    """Up to `limit` test rows (lowest index first) whose `target` sign was drawn, with its box."""
    drawn = signs.loc[predictions["index"]]
    drawn = drawn[drawn[f"drawn {target}"] == 1].sort_index().head(limit)
    return pd.DataFrame({"index": drawn.index.to_numpy()} | {c: drawn[f"{target} {c}"].to_numpy() for c in CORNERS})


def pointing_table(folder: Path, runs: Runs, frac: float, per_target: int = 100) -> pd.DataFrame:
    """Per arm (lowest seed) and target at regimen `frac`: hits, images and the hit rate with its
    Wilson 95% interval; a last row gives chance. Empty without signs.csv or runs."""
    signs = read_signs(folder)
    arms = sorted((a for f, a in runs if f == frac), key=arm_order)
    if signs is None or not arms:
        return pd.DataFrame()
    predictions = pd.read_csv(first_seed(runs, frac, arms[0]) / "test-predictions.csv")
    cases = {t: drawn_test_rows(predictions, signs, t, per_target) for t in TARGETS}
    images = {t: load_images(folder, rows) for t, rows in cases.items()}
    size = next(iter(images.values())).shape[-1]
    records = []
    for arm in arms:
        cams = GradCam(classifier.load_run(first_seed(runs, frac, arm)), size)
        for target, rows in cases.items():
            maps = cams.maps(images[target], target)
            records.append(_score(arm, target, hits(maps, rows[list(CORNERS)].to_numpy())))
    for target, rows in cases.items():
        rate = chance(rows[list(CORNERS)].to_numpy(), size).mean() if len(rows) else np.nan
        records.append({"arm": "chance (random peak)", "target": target, "rate": rate})
    return pd.DataFrame.from_records(records)


def _score(arm: str, target: str, hit: np.ndarray) -> dict:
    record = {
        "arm": arm,
        "target": target,
        "hits": int(hit.sum()),
        "images": len(hit),
        "rate": hit.mean() if len(hit) else np.nan,
    }
    if len(hit):
        interval = binomtest(int(hit.sum()), len(hit)).proportion_ci(method="wilson")
        record |= {"low": interval.low, "high": interval.high}
    return record


def pointing_grid(table: pd.DataFrame) -> pd.DataFrame:
    """The display table: one row per arm, one column per target, "rate [low, high]" and the images."""

    def cell(row) -> str:
        if pd.isna(row.get("images")):  # the chance row
            return "—" if pd.isna(row["rate"]) else f"{row['rate']:.2f}"
        if row["images"] == 0:
            return "— (no drawn sign)"
        return f"{row['rate']:.2f} [{row['low']:.2f}, {row['high']:.2f}] of {int(row['images'])}"

    cells = table.assign(cell=table.apply(cell, axis=1))
    grid = cells.pivot(index="arm", columns="target", values="cell").reindex(columns=TARGETS)
    order = list(dict.fromkeys(table["arm"]))
    return grid.reindex(order).reset_index()
