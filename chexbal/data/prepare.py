"""`chexbal prepare`: a source (phantom or CheXpert) into data/<dataset>/.

Only the rows the requested regimen needs are rendered or decoded: the index orders rows so that
every regimen is a prefix (see splits.py), and a later, larger --frac adds the missing blocks only.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from chexbal import files
from chexbal.data import sources, store
from chexbal.data.dataset import subset_path
from chexbal.data.labels import PATHOLOGIES, apply_policy
from chexbal.data.sources import phantom
from chexbal.data.sources.base import Source
from chexbal.data.splits import check_frac, order_rows, patient_of, regimen_length
from chexbal.errors import ChexbalError
from chexbal.progress import bar, console
from chexbal.workers import pool as worker_pool


@dataclasses.dataclass(frozen=True)
class _Job:
    """What filling a store needs besides the rows: where the images come from and how to fill."""

    source: Source
    root: Path | None
    seed: int
    skip_bad: bool
    workers: int | None
    out: Path
    quiet: bool


def prepare(
    source: str = "phantom",
    root: Path | None = None,
    frac: float = 0.01,
    size: int | None = None,
    *,
    seed: int = 0,
    views: str = "frontal",
    uncertain: str = "ones",
    data_dir: Path = Path("data"),
    dataset: str | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
    quiet: bool = False,
    verify: bool = False,
) -> Path:
    """Prepare the regimen `frac` of a source and return the dataset folder. `verify` first reads
    every written chunk and draws the damaged ones again (up to every row written before)."""
    check_frac(frac)
    src = sources.get(source)
    size = _check_size(size or src.default_size)
    ordered = order_rows(src.read_table(root, views), seed)
    index = index_table(ordered, uncertain)
    out = Path(data_dir) / (dataset or f"{source}-{size}")
    settings = {
        "source": source,
        "size": size,
        "seed": seed,
        "views": views,
        "uncertain": uncertain,
        "rows_crc": zlib.crc32("\n".join(index["Path"]).encode()),
        **src.settings,
    }
    out.mkdir(parents=True, exist_ok=True)
    if (out / "images.zarr" / "zarr.json").exists():
        sources.check_store(store.open_complete(out / "images.zarr", 0).attrs, out)
    images = store.open_or_create(out / "images.zarr", len(index), size, settings)
    if not (out / "index.csv").exists():  # index.csv last: its presence means both tables are whole
        raw_labels = ordered[list(PATHOLOGIES)].assign(index=index["index"])
        files.write_atomic(out / "raw-labels.csv", raw_labels.to_csv(index=False))
        files.write_atomic(out / "index.csv", index.to_csv(index=False))

    n_rows = regimen_length(index, frac)
    if verify:
        n_rows = max(n_rows, _forget_damaged(images, quiet))
    _fill(images, ordered, n_rows, _Job(src, root, seed, skip_bad, workers, out, quiet))
    store.mark_complete(images, n_rows)
    if src.truth is not None:
        _write_truth(out, ordered, n_rows, src.truth, (size, seed))
    skipped = _read_skipped(out)
    subset = index.iloc[:n_rows]
    subset = subset[~subset["index"].isin(skipped["index"])]
    files.write_atomic(subset_path(out, frac), subset.to_csv(index=False))
    return out


def _forget_damaged(images, quiet: bool) -> int:
    """Drop the damaged blocks so filling draws them again; returns the rows written before."""
    written = images.attrs.get("complete_rows", 0)
    damaged = store.damaged_blocks(images, written)
    if not quiet:
        rows = [store.block_rows(images, b) for b in damaged]
        found = ", ".join(f"{r.start}-{r.stop - 1}" for r in rows) if rows else "none"
        console.print(f"verify: {written} rows read, damaged blocks: {found}")
    store.forget_blocks(images, damaged)
    return written


def index_table(ordered: pd.DataFrame, uncertain: str) -> pd.DataFrame:
    """index.csv from a source's ordered rows: `index`, Path, patient, split and the 14 labels after
    the uncertain-label policy."""
    index = pd.concat([ordered[["Path", "patient", "split"]], apply_policy(ordered, uncertain)], axis=1)
    index.insert(0, "index", np.arange(len(index)))
    return index


def labels_regimen(frac: float, seed: int, views: str = "frontal", uncertain: str = "ones") -> pd.DataFrame:
    """The rows `prepare` would write to subsets/ for the CheXpert labels torchxrayvision ships,
    without drawing an image (the plan's comparison with the paper's Table 1; laterals allowed)."""
    table = pd.read_csv(phantom.labels_csv())
    if views == "frontal":
        table = table[table["Frontal/Lateral"] == "Frontal"]
    table = table.reset_index(drop=True).assign(patient=lambda t: t["Path"].map(patient_of))
    index = index_table(order_rows(table, seed), uncertain)
    return index.iloc[: regimen_length(index, frac)]


def _write_truth(out: Path, ordered: pd.DataFrame, n_rows: int, truth, size_seed: tuple[int, int]) -> None:
    """signs.csv: what the source drew in each prepared row (never read by training); a larger
    regimen appends the rows it adds."""
    path = out / "signs.csv"
    done = pd.read_csv(path) if path.exists() else None
    if done is not None and len(done) >= n_rows:
        return
    start = 0 if done is None else len(done)
    rows = ordered.iloc[start:n_rows]
    new = truth(list(rows["Path"]), rows[list(PATHOLOGIES)].to_numpy(float), *size_seed)
    new.insert(0, "index", np.arange(start, n_rows))
    table = new if done is None else pd.concat([done, new], ignore_index=True)
    files.write_atomic(path, table.to_csv(index=False))


def _check_size(size: int) -> int:
    if not 16 <= size <= 1024:
        raise ChexbalError(f"--size must be between 16 and 1024 pixels, not {size}", 2)
    return size


def _fill(images, rows: pd.DataFrame, n_rows: int, job: _Job) -> None:
    """Write the missing blocks covering rows [0, n_rows), in parallel; bad images stop the run
    unless skip_bad. Whole blocks are drawn, so a block may reach a little past n_rows."""
    blocks = store.missing_blocks(images, n_rows)
    tasks = []
    for block in blocks:
        part = rows.iloc[store.block_rows(images, block)]
        raw = part[list(PATHOLOGIES)].to_numpy(float)
        tasks.append((job.source.name, job.root, list(part["Path"]), raw, images.shape[1], job.seed))
    bad: list[tuple[str, str]] = []
    with bar(disable=job.quiet or not tasks) as progress, _executor(job.workers) as pool:
        task = progress.add_task(f"{job.source.name} → {job.out.name}", total=sum(len(t[2]) for t in tasks), note="")
        for block, (pixels, block_bad) in zip(blocks, pool.map(_images, tasks)):
            if block_bad and not job.skip_bad:
                bad += block_bad  # leave the block unwritten: a later run retries it
            else:
                if block_bad:
                    _record_skipped(job.out, images, block, rows, block_bad)
                store.write_block(images, block, pixels)
            progress.update(task, advance=len(pixels), note=f"{len(bad)} bad" if bad else "")
    if bad:
        shown = "; ".join(f"{path} ({why})" for path, why in bad[:3])
        raise ChexbalError(
            f"{len(bad)} images are missing or unreadable, first: {shown}. Fix them, or pass --skip-bad to skip and record them"
        )


def _images(task) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """One block's images, in a worker process (the source travels by name: it pickles plainly)."""
    name, root, paths, raw, size, seed = task
    return sources.get(name).images(root, paths, raw, size, seed)


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
    files.write_atomic(out / "skipped.csv", skipped.to_csv(index=False))


def _read_skipped(out: Path) -> pd.DataFrame:
    path = out / "skipped.csv"
    return pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["index", "Path", "reason"])
