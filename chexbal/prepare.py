"""`chexbal prepare`: a source (phantom or CheXpert) into data/<dataset>/.

Only the rows the requested regimen needs are rendered or decoded: the index orders rows so that
every regimen is a prefix (see splits.py), and a later, larger --frac adds the missing blocks only.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from . import store
from .errors import ChexbalError
from .labels import PATHOLOGIES, apply_policy
from .progress import bar
from .sources import chexpert, phantom
from .splits import check_frac, frac_name, order_rows, regimen_length
from .workers import pool as worker_pool

SOURCES = ("phantom", "chexpert")
DEFAULT_SIZE = {"phantom": 64, "chexpert": 224}


def prepare(
    source: str = "phantom",
    root: Path | None = None,
    frac: float = 0.01,
    size: int | None = None,
    seed: int = 0,
    views: str = "frontal",
    uncertain: str = "ones",
    data_dir: Path = Path("data"),
    dataset: str | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
    quiet: bool = False,
) -> Path:
    """Prepare the regimen `frac` of a source and return the dataset folder."""
    check_frac(frac)
    if source not in SOURCES:
        raise ChexbalError(f"--source must be one of {', '.join(SOURCES)}, not {source!r}", 2)
    size = _check_size(size or DEFAULT_SIZE.get(source, 0))
    raw = _read_source(source, root, views)
    ordered = order_rows(raw, seed)
    index = pd.concat([ordered[["Path", "patient", "split"]], apply_policy(ordered, uncertain)], axis=1)
    index.insert(0, "index", np.arange(len(index)))
    out = Path(data_dir) / (dataset or f"{source}-{size}")
    settings = {
        "source": source,
        "size": size,
        "seed": seed,
        "views": views,
        "uncertain": uncertain,
        "rows_crc": zlib.crc32("\n".join(index["Path"]).encode()),
    }
    if source == "phantom":
        settings["renderer_version"] = phantom.RENDERER_VERSION
    out.mkdir(parents=True, exist_ok=True)
    if (out / "images.zarr" / "zarr.json").exists():
        phantom.check_version(store.open_complete(out / "images.zarr", 0).attrs, out)
    images = store.open_or_create(out / "images.zarr", len(index), size, settings)
    if not (out / "index.csv").exists():  # index.csv last: its presence means both tables are whole
        raw_labels = ordered[list(PATHOLOGIES)].assign(index=index["index"])
        store.write_atomic(out / "raw-labels.csv", raw_labels.to_csv(index=False))
        store.write_atomic(out / "index.csv", index.to_csv(index=False))

    n_rows = regimen_length(index, frac)
    _fill(images, ordered, n_rows, source, root, seed, skip_bad, workers, out, quiet)
    store.mark_complete(images, n_rows)
    if source == "phantom":
        _write_signs(out, ordered, n_rows, size, seed)
    skipped = _read_skipped(out)
    subset = index.iloc[:n_rows]
    subset = subset[~subset["index"].isin(skipped["index"])]
    store.write_atomic(out / "subsets" / f"{frac_name(frac)}.csv", subset.to_csv(index=False))
    return out


def _write_signs(out: Path, ordered: pd.DataFrame, n_rows: int, size: int, seed: int) -> None:
    """signs.csv: what the phantom drew in each prepared row (never read by training)."""
    path = out / "signs.csv"
    done = pd.read_csv(path) if path.exists() else None
    if done is not None and len(done) >= n_rows:
        return
    start = 0 if done is None else len(done)
    rows = ordered.iloc[start:n_rows]
    new = phantom.signs(list(rows["Path"]), rows[list(PATHOLOGIES)].to_numpy(float), size, seed)
    new.insert(0, "index", np.arange(start, n_rows))
    table = new if done is None else pd.concat([done, new], ignore_index=True)
    store.write_atomic(path, table.to_csv(index=False))


def _check_size(size: int) -> int:
    if not 16 <= size <= 1024:
        raise ChexbalError(f"--size must be between 16 and 1024 pixels, not {size}", 2)
    return size


def _read_source(source: str, root: Path | None, views: str) -> pd.DataFrame:
    if source == "phantom":
        if root is not None:
            raise ChexbalError("--root is for --source chexpert; the phantom source needs no files", 2)
        return phantom.read_table(views)
    if root is None:
        raise ChexbalError("--source chexpert needs --root, the CheXpert folder holding train.csv", 2)
    return chexpert.read_table(Path(root), views)


def _fill(images, rows: pd.DataFrame, n_rows: int, source, root, seed, skip_bad, workers, out: Path, quiet: bool) -> None:
    """Write the missing blocks covering rows [0, n_rows), in parallel; bad images stop the run
    unless skip_bad. Whole blocks are drawn, so a block may reach a little past n_rows."""
    blocks = store.missing_blocks(images, n_rows)
    tasks = []
    for block in blocks:
        part = rows.iloc[store.block_rows(images, block)]
        tasks.append((source, root, list(part["Path"]), part[list(PATHOLOGIES)].to_numpy(float), images.shape[1], seed))
    bad: list[tuple[str, str]] = []
    with bar(disable=quiet or not tasks) as progress, _executor(workers) as pool:
        task = progress.add_task(f"{source} → {out.name}", total=sum(len(t[2]) for t in tasks), note="")
        for block, (pixels, block_bad) in zip(blocks, pool.map(_render, tasks)):
            if block_bad and not skip_bad:
                bad += block_bad  # leave the block unwritten: a later run retries it
            else:
                if block_bad:
                    _record_skipped(out, images, block, rows, block_bad)
                store.write_block(images, block, pixels)
            progress.update(task, advance=len(pixels), note=f"{len(bad)} bad" if bad else "")
    if bad:
        shown = "; ".join(f"{path} ({why})" for path, why in bad[:3])
        raise ChexbalError(
            f"{len(bad)} images are missing or unreadable, first: {shown}. Fix them, or pass --skip-bad to skip and record them"
        )


def _render(task) -> tuple[np.ndarray, list[tuple[str, str]]]:
    source, root, paths, raw, size, seed = task
    if source == "phantom":
        return phantom.render_block(paths, raw, size, seed), []
    return chexpert.decode_block(Path(root), paths, size)


class _Inline:
    """The executor interface, run in this process: for one worker, and for tests and debugging."""

    def map(self, fn, items):
        return map(fn, items)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _executor(workers: int | None):
    workers = workers or os.cpu_count() or 1
    return _Inline() if workers == 1 else worker_pool(workers)


def _record_skipped(out: Path, images, block: int, rows: pd.DataFrame, bad: list[tuple[str, str]]) -> None:
    start = store.block_rows(images, block).start
    paths = list(rows["Path"].iloc[store.block_rows(images, block)])
    new = pd.DataFrame([(start + paths.index(p), p, why) for p, why in bad], columns=["index", "Path", "reason"])
    skipped = pd.concat([_read_skipped(out), new]).drop_duplicates("index")
    store.write_atomic(out / "skipped.csv", skipped.to_csv(index=False))


def _read_skipped(out: Path) -> pd.DataFrame:
    path = out / "skipped.csv"
    return pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["index", "Path", "reason"])
