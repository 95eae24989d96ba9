"""A real CheXpert download: its train.csv and JPEGs, decoded, center-cropped and resized."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from chexbal.data.labels import check_label_columns
from chexbal.data.sources.base import Source
from chexbal.data.splits import patient_of
from chexbal.errors import ChexbalError

VIEWS = ("frontal", "all")


def read_table(root: Path | None, views: str = "frontal", csv_name: str = "train.csv") -> pd.DataFrame:
    """CheXpert's rows: Path, patient and the raw label columns, lateral views dropped by default."""
    if root is None:
        raise ChexbalError("--source chexpert needs --root, the CheXpert folder holding train.csv", 2)
    root = Path(root)
    if views not in VIEWS:
        raise ChexbalError(f"--views must be one of {', '.join(VIEWS)}, not {views!r}", 2)
    if not root.is_dir():
        raise ChexbalError(f"CheXpert root {root} is not a folder")
    csv = root / csv_name
    if not csv.is_file():
        raise ChexbalError(f"{csv} not found: --root must be the CheXpert folder holding {csv_name}")
    try:
        table = pd.read_csv(csv)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise ChexbalError(f"{csv} is not a readable CSV: {err}") from None
    for column in ("Path", "Frontal/Lateral"):
        if column not in table.columns:
            raise ChexbalError(f"{csv} lacks the column {column!r}")
    check_label_columns(table, str(csv))
    if views == "frontal":
        table = table[table["Frontal/Lateral"] == "Frontal"]
    table = table.reset_index(drop=True)
    table.insert(1, "patient", table["Path"].map(patient_of))
    return table


def image_file(root: Path, path: str) -> Path:
    """CSV paths begin with the dataset folder's name (`CheXpert-v1.0-small/train/...`); --root is
    that folder, whatever the user renamed it to."""
    return root.joinpath(*Path(path).parts[1:])


def decode(file: Path, size: int) -> np.ndarray:
    """A JPEG as uint8 (size, size): the paper's center crop to a square, then resize."""
    with Image.open(file) as image:
        # JPEG decoders can scale by 1/2, 1/4, 1/8 while decoding; draft never goes below `size`,
        # so the crop and resize below see the same picture at a fraction of the decode cost.
        image.draft("L", (size, size))
        image = image.convert("L")
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def decode_block(root: Path, paths: list[str], size: int) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Images of a block of rows, with (Path, reason) for each one that is missing or unreadable."""
    images = np.zeros((len(paths), size, size), dtype=np.uint8)
    bad = []
    for i, path in enumerate(paths):
        file = image_file(root, path)
        try:
            images[i] = decode(file, size)
        except FileNotFoundError:
            bad.append((path, "missing"))
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            bad.append((path, f"unreadable: {err}"))
    return images, bad


def _images(root: Path, paths: list[str], raw_labels, size: int, seed: int):
    return decode_block(Path(root), paths, size)  # labels and seed do not change a decoded image


SOURCE = Source("chexpert", 224, read_table, _images)
