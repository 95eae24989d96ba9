"""Finding and reading a prepared dataset (data/<dataset>/) from any later stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from chexbal.data import sources, store
from chexbal.data.labels import check_label_columns
from chexbal.data.splits import check_frac, frac_name, frac_of, regimen_split, test_patients
from chexbal.errors import ChexbalError

DEFAULT_DATASET = "phantom-64"


def locate(data_dir: Path, dataset: str) -> Path:
    folder = Path(data_dir) / dataset
    if not (folder / "index.csv").is_file():
        raise ChexbalError(f"no prepared dataset at {folder}: run `chexbal prepare` first")
    return folder


def read_index(folder: Path) -> pd.DataFrame:
    return _read_table(folder / "index.csv")


def subset_path(folder: Path, frac: float) -> Path:
    """A regimen's manifest, written last by `prepare`: its presence means the regimen is prepared."""
    return Path(folder) / "subsets" / f"{frac_name(check_frac(frac))}.csv"


def read_subset(folder: Path, frac: float) -> pd.DataFrame:
    path = subset_path(folder, frac)
    if not path.is_file():
        raise ChexbalError(f"{folder.name} has no regimen {frac:g}: run `chexbal prepare --frac {frac:g}` first")
    return _read_table(path)


def training_rows(folder: Path, frac: float, split_seed: int) -> pd.DataFrame:
    """The rows `chexbal train --frac F --split-seed S` trains on (validation patients left out)."""
    return split_regimen(folder, read_subset(folder, frac), frac, split_seed)[0]


def split_regimen(folder: Path, subset: pd.DataFrame, frac: float, split_seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A prepared regimen's training and validation rows, checked against the dataset's test patients."""
    return regimen_split(subset, split_seed, test_patients(read_index(folder)), f"{folder.name}'s regimen {frac:g}")


def settings(folder: Path) -> dict:
    """The dataset's recorded settings (source, size, seed, views, uncertain policy), from its store."""
    return dict(open_images(folder, 0).attrs)


def prepared_fracs(folder: Path) -> list[float]:
    return sorted(frac_of(p.stem) for p in (folder / "subsets").glob("frac-*.csv"))


def load_images(folder: Path, rows: pd.DataFrame) -> np.ndarray:
    """The uint8 images of `rows` (a regimen's rows), in the rows' order."""
    indices = rows["index"].to_numpy()
    images = open_images(folder, int(indices.max()) + 1 if len(indices) else 0)
    if not len(indices):
        return np.zeros((0, *images.shape[1:]), np.uint8)
    return store.read(images, slice(0, int(indices.max()) + 1), repair_hint(folder, images.attrs))[indices]


def repair_hint(folder: Path, attrs) -> str:
    root = " --root <its folder>" if attrs.get("source") != "phantom" else ""
    return f"repair them with `chexbal prepare --verify --source {attrs.get('source')}{root} --dataset {folder.name}`"


def open_images(folder: Path, n_rows: int):
    """The dataset's image store, checked to hold its first `n_rows` rows and, for a phantom, to be
    drawn by this renderer."""
    images = store.open_complete(folder / "images.zarr", n_rows)
    sources.check_store(images.attrs, folder)
    return images


def _read_table(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ChexbalError(f"{path} is not a readable CSV ({str(err).splitlines()[0]}): run `chexbal prepare` again") from None
    for column in ("index", "Path", "patient", "split"):
        if column not in table.columns:
            raise ChexbalError(f"{path} lacks the column {column!r}")
    check_label_columns(table, str(path))
    return table
