"""Generated image sets on disk: data/<dataset>/synthetic/frac-<F>/.

`images.zarr` (uint8, like the real store), `labels.csv` (`index` plus the 14 label columns by name,
the vectors each image was conditioned on) and `provenance.json` (generator checkpoint hash, seed,
plan). `chexbal generate` writes it; `chexbal train --aug gan` adds it to the training split only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import store
from .errors import ChexbalError
from .labels import check_label_columns
from .splits import frac_name


def folder(dataset_folder: Path, frac: float) -> Path:
    return dataset_folder / "synthetic" / frac_name(frac)


def load(dataset_folder: Path, frac: float) -> tuple[np.ndarray, pd.DataFrame]:
    """The generated images and their label table for regimen `frac`."""
    where = folder(dataset_folder, frac)
    if not (where / "labels.csv").is_file():
        raise ChexbalError(f"no generated set at {where}: run `chexbal generate --frac {frac:g}` first")
    labels = pd.read_csv(where / "labels.csv")
    check_label_columns(labels, str(where / "labels.csv"))
    images = store.open_complete(where / "images.zarr", len(labels))
    return images[: len(labels)], labels
