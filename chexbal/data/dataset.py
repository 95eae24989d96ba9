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
    out = np.empty((len(indices), *images.shape[1:]), np.uint8)
    for positions, block in image_blocks(folder, rows, images):
        out[positions] = block
    return out


def images_on(folder: Path, rows: pd.DataFrame, device, extra: int = 0):
    """The images of `rows` as one uint8 tensor on `device`, copied a store block at a time (on a GPU
    the host holds one block, never the regimen: 8.6 GB at 100% and 224 px, per process), with
    `extra` uninitialised rows after them for the caller to fill."""
    import torch

    size = open_images(folder, 0).shape[1:]
    out = torch.empty((len(rows) + extra, *size), dtype=torch.uint8, device=device)
    for positions, block in image_blocks(folder, rows):
        out[torch.from_numpy(positions).to(device)] = torch.from_numpy(block).to(device)
    return out


def image_blocks(folder: Path, rows: pd.DataFrame, images=None):
    """The images of `rows` one store block at a time: (positions in `rows`, their uint8 images).
    Only one block is decoded and held at once, so a caller that copies each block to a GPU never
    holds the whole regimen in host memory."""
    indices = rows["index"].to_numpy()
    if not len(indices):
        return
    images = images if images is not None else open_images(folder, int(indices.max()) + 1)
    step, hint = images.chunks[0], repair_hint(folder, images.attrs)
    order = np.argsort(indices, kind="stable")
    blocks = indices[order] // step
    bounds = np.flatnonzero(np.diff(blocks)) + 1
    for positions in np.split(order, bounds):
        block = int(indices[positions[0]] // step)
        decoded = store.read(images, slice(block * step, min((block + 1) * step, images.shape[0])), hint)
        yield positions, decoded[indices[positions] - block * step]


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
