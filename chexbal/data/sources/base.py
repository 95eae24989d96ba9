"""The interface every source fills in: how to read its table and turn a block of rows into images."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

Bad = list[tuple[str, str]]  # (Path, why) of each image that could not be read


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    default_size: int
    # (root, views) -> rows with Path, patient and the raw CheXpert label columns (1/0/-1/blank)
    read_table: Callable[[Path | None, str], pd.DataFrame]
    # (root, paths, raw labels, size, seed) -> uint8 (n, size, size) images and the bad rows
    images: Callable[[Path | None, list[str], np.ndarray, int, int], tuple[np.ndarray, Bad]]
    settings: dict = dataclasses.field(default_factory=dict)  # recorded in the store, checked on reopening
    # (paths, raw labels, size, seed) -> what each row shows (signs.csv), for a source that knows it
    truth: Callable[[list[str], np.ndarray, int, int], pd.DataFrame] | None = None
