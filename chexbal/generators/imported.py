"""`chexbal import-synthetic`: any generator's images as a regimen's synthetic set (`--aug synthetic:NAME`).

A researcher's own generator (RoentGen, Cheff, a medigan model, theirs) made the images elsewhere;
chexbal puts them through the same fair protocol. The source is a folder of PNG or JPEG files with a
labels CSV (`Path`, relative to the folder, and the 14 label columns by name) or a Zarr array of
uint8 images (N, S, S) with a labels CSV in the array's row order. The regimen's plan says how many
images each target gets (the counts every other arm adds); per target, the first unused images
positive for it fill its count, in the CSV's order. The set is written as a generated set is
(data/<dataset>/synthetic/frac-<F>-import-<NAME>/) with provenance.json holding what the user
declared the generator was trained on, which the report shows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from PIL import Image, UnidentifiedImageError

from chexbal import files
from chexbal.data import store
from chexbal.data.dataset import DEFAULT_DATASET, locate, settings, training_rows
from chexbal.data.labels import PATHOLOGIES, TARGETS
from chexbal.errors import ChexbalError
from chexbal.generators import synthetic
from chexbal.generators.plan import SHARE, make_plan
from chexbal.progress import bar


def import_synthetic(
    source: Path,
    labels: Path,
    frac: float,
    name: str,
    *,
    declared: str,
    declared_rows: Path | None = None,
    resize: bool = False,
    allow_short: bool = False,
    split_seed: int = 0,
    share: float = SHARE,
    data_dir: Path = Path("data"),
    dataset: str = DEFAULT_DATASET,
    quiet: bool = False,
) -> tuple[Path, dict]:
    """Import `source` for regimen `frac`; the set's folder and what was taken per target."""
    if not synthetic.IMPORT_NAME.fullmatch(name):
        raise ChexbalError(f"--name must be letters, digits, - and _ (at most 64), not {name!r}", 2)
    if not declared.strip():
        raise ChexbalError("--trained-on must say what the generator was trained on (free text)", 2)
    folder = locate(Path(data_dir), dataset)
    where = synthetic.folder(folder, frac, synthetic.imported(name))
    if where.exists():
        raise ChexbalError(f"{where} already holds an imported set: delete it or choose another --name")
    seen = declaration(declared, declared_rows)  # every refusal before the images are read
    table = read_labels(Path(labels))
    plan = make_plan(training_rows(folder, frac, split_seed), share, split_seed)
    picked, taken = pick_for_plan(table, plan.generate, allow_short)
    images = read_images(Path(source), picked, settings(folder)["size"], resize, quiet)
    provenance = {
        "kind": "imported",
        "checkpoint_sha256": None,  # no generator checkpoint: the images are what the user brought
        "source": str(source),
        "labels_sha256": files.sha256(Path(labels)),
        "trained_on": seen,
        "resized": resize,
        "per_target": taken,
        "short": {t: c for t, c in taken.items() if c["taken"] < c["planned"]},
        "split_seed": split_seed,
        "share": share,
        "frac": frac,
        "plan": plan.summary(),
        "dataset": dataset,
    }
    write_set(where, images, picked, provenance)
    return where, taken


def read_labels(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise ChexbalError(f"cannot read the labels CSV {path} ({type(err).__name__})") from None
    missing = [t for t in PATHOLOGIES if t not in table.columns]
    if missing:
        raise ChexbalError(f"{path} lacks label columns {', '.join(missing)} (the targets and the other findings, by name)")
    values = table[list(PATHOLOGIES)].fillna(0)
    if not values.isin([0, 1]).all().all():
        raise ChexbalError(f"{path}: label values must be 0, 1 or blank (the vectors the images were generated for)")
    return table.assign(**{name: values[name].astype(np.float32) for name in PATHOLOGIES})


def pick_for_plan(table: pd.DataFrame, planned: dict[str, int], allow_short: bool) -> tuple[pd.DataFrame, dict]:
    """Per target, the plan's count of rows positive for it, first come first taken, each row once."""
    used: set[int] = set()
    picks, taken = [], {}
    for target in TARGETS:
        candidates = [i for i in np.flatnonzero(table[target].to_numpy() == 1) if i not in used][: planned[target]]
        if len(candidates) < planned[target] and not allow_short:
            raise ChexbalError(
                f"the import holds {len(candidates)} unused {target} positives, the plan needs {planned[target]}: "
                "add images, or pass --allow-short (the report will say so)"
            )
        used.update(candidates)
        picks.append(table.iloc[candidates].assign(target=target, source_row=candidates))
        taken[target] = {"planned": int(planned[target]), "taken": len(candidates)}
    return pd.concat(picks, ignore_index=True), taken


def read_images(source: Path, picked: pd.DataFrame, size: int, resize: bool, quiet: bool) -> np.ndarray:
    if source.suffix == ".zarr":
        return read_zarr(source, picked, size, resize)
    if not source.is_dir():
        raise ChexbalError(f"{source} is neither a folder of images nor a .zarr array")
    if "Path" not in picked.columns:
        raise ChexbalError("the labels CSV of a folder of images needs a Path column (relative to the folder)")
    out = np.empty((len(picked), size, size), np.uint8)
    with bar(disable=quiet) as progress:
        task = progress.add_task("import-synthetic", total=len(picked), note=str(source))
        for k, relative in enumerate(picked["Path"]):
            out[k] = read_image(source / str(relative), size, resize)
            progress.update(task, advance=1)
    return out


def read_image(path: Path, size: int, resize: bool) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
    except FileNotFoundError:
        raise ChexbalError(f"{path} not found (Path in the labels CSV is relative to the image folder)") from None
    except (UnidentifiedImageError, OSError):
        raise ChexbalError(f"{path} is not a readable PNG or JPEG image") from None
    if image.mode not in ("L", "I;16", "I"):
        raise ChexbalError(f"{path} has {image.mode} pixels, not single-channel grey: convert the images to greyscale first")
    return fit(np.asarray(image.convert("L") if image.mode == "L" else to_8bit(image)), size, resize, str(path))


def to_8bit(image: Image.Image) -> Image.Image:
    """16-bit greys scaled to 0-255 by their own range (radiographs are often exported this way)."""
    pixels = np.asarray(image, dtype=np.float64)
    low, high = pixels.min(), pixels.max()
    return Image.fromarray(((pixels - low) / max(high - low, 1) * 255).round().astype(np.uint8))


def fit(pixels: np.ndarray, size: int, resize: bool, where: str) -> np.ndarray:
    if pixels.shape == (size, size):
        return pixels
    if not resize:
        raise ChexbalError(f"{where} is {pixels.shape[1]}x{pixels.shape[0]} px, the dataset holds {size}x{size}: pass --resize")
    return np.asarray(Image.fromarray(pixels).resize((size, size), Image.BILINEAR))


def read_zarr(source: Path, picked: pd.DataFrame, size: int, resize: bool) -> np.ndarray:
    try:
        array = zarr.open_array(source, mode="r")
    except Exception as err:  # any unreadable or foreign store
        raise ChexbalError(f"{source} is not a readable Zarr array ({type(err).__name__})") from None
    pixels = np.asarray(array[:])  # a synthetic set is a few thousand images: read it whole
    if pixels.ndim == 4 and pixels.shape[1] == 1:
        pixels = pixels[:, 0]
    if pixels.ndim != 3:
        raise ChexbalError(f"{source} holds images of shape {pixels.shape[1:]}, not single-channel (N, S, S) or (N, 1, S, S)")
    if pixels.dtype != np.uint8:
        raise ChexbalError(f"{source} holds {pixels.dtype} pixels, not uint8")
    rows = picked["source_row"].to_numpy()
    if len(rows) and rows.max() >= len(pixels):
        raise ChexbalError(f"the labels CSV has more rows than {source} has images ({len(pixels)})")
    out = np.empty((len(rows), size, size), np.uint8)
    for k, row in enumerate(rows):
        out[k] = fit(pixels[row], size, resize, f"{source}[{row}]")
    return out


def declaration(text: str, rows: Path | None) -> dict:
    """What the user says the generator saw; the rows file, when given, is counted and hashed."""
    declared = {"declared": text.strip(), "rows": "not declared", "validation_patients_excluded": "unknown"}
    if rows is not None:
        if not Path(rows).is_file():
            raise ChexbalError(f"--trained-on-rows {rows} not found")
        try:
            count = len(pd.read_csv(rows))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            raise ChexbalError(f"--trained-on-rows {rows} is not a readable CSV") from None
        declared.update(rows=count, rows_file=str(rows), rows_sha256=files.sha256(Path(rows)))
    return declared


def write_set(where: Path, images: np.ndarray, picked: pd.DataFrame, provenance: dict) -> None:
    size = images.shape[-1] if len(images) else 1
    recorded = {"kind": "imported", "checkpoint_sha256": None, "frac": provenance["frac"]}
    array = store.open_or_create(where / "images.zarr", max(len(images), 1), size, recorded)
    for block in store.missing_blocks(array, len(images)):
        store.write_block(array, block, images[store.block_rows(array, block)])
    store.mark_complete(array, len(images))
    labels = picked.assign(index=np.arange(len(picked)))[["index", "target", *PATHOLOGIES]]
    files.write_atomic(where / "labels.csv", labels.to_csv(index=False))
    files.write_atomic(where / "provenance.json", json.dumps(provenance, indent=2))
