"""Generated image sets on disk: data/<dataset>/synthetic/frac-<F>/ and frac-<F>-regimen/.

Two sets per regimen can coexist: the pool generator's (`frac-<F>`, the `gan` arm) and the regimen
generator's (`frac-<F>-regimen`, the `gan-regimen` arm). Each holds `images.zarr` (uint8, like the
real store), `labels.csv` (`index`, `target` and the 14 label columns by name, the vectors each image
was conditioned on) and `provenance.json` (generator checkpoint hash, what the generator was trained
on, the split seed the plan was drawn from, the plan). Training adds a set to the training split only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from chexbal.data import store
from chexbal.data.labels import check_label_columns
from chexbal.data.splits import frac_name
from chexbal.errors import ChexbalError

GENERATORS = ("pool", "regimen")


def folder(dataset_folder: Path, frac: float, generator: str = "pool") -> Path:
    suffix = "" if generator == "pool" else f"-{generator}"
    return dataset_folder / "synthetic" / f"{frac_name(frac)}{suffix}"


def make_command(frac: float, generator: str) -> str:
    """The commands that make a regimen's set of this generator."""
    if generator == "pool":
        return f"`chexbal generate --frac {frac:g}`"
    return f"`chexbal train-gan --frac {frac:g}` then `chexbal generate --frac {frac:g} --generator regimen`"


def load(dataset_folder: Path, frac: float, generator: str = "pool") -> tuple[np.ndarray, pd.DataFrame, dict]:
    """The generated images, their label table and provenance for regimen `frac`."""
    where = folder(dataset_folder, frac, generator)
    if not (where / "labels.csv").is_file() or not (where / "provenance.json").is_file():
        raise ChexbalError(f"no generated set at {where}: run {make_command(frac, generator)} first")
    labels = pd.read_csv(where / "labels.csv")
    check_label_columns(labels, str(where / "labels.csv"))
    images = store.open_complete(where / "images.zarr", len(labels))
    return images[: len(labels)], labels, json.loads((where / "provenance.json").read_text())
