"""Chunked uint8 image stores in Zarr: create, find missing blocks, write blocks, mark complete.

A block is one chunk along N. Zarr (>= 3.1.3) writes each chunk file atomically, so a chunk file
that exists holds a whole block: resuming an interrupted write means writing the blocks whose chunk
files are missing. `complete_rows` in the attributes is raised only after every block up to it is on
disk, so readers never trust a row that was not written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from chexbal.errors import ChexbalError

BLOCK = 256


def open_or_create(path: Path, n: int, size: int, settings: dict[str, Any]) -> zarr.Array:
    """The store at `path`, created if absent; an existing store must have the same settings."""
    if (path / "zarr.json").exists():
        store = zarr.open_array(path, mode="r+")
        old = {key: store.attrs.get(key) for key in settings}
        if store.shape != (n, size, size) or old != settings:
            diff = {k: (old[k], v) for k, v in settings.items() if old[k] != v}
            raise ChexbalError(
                f"{path} was made with other settings {diff or store.shape}: choose another --dataset name or delete it"
            )
        return store
    store = zarr.create_array(
        path,
        shape=(n, size, size),
        chunks=(BLOCK, size, size),
        dtype="uint8",
        fill_value=0,
        config={"write_empty_chunks": True},  # an all-black block must still mark itself written
    )
    store.attrs.update({**settings, "complete_rows": 0})
    return store


def block_rows(store: zarr.Array, block: int) -> slice:
    step = store.chunks[0]
    return slice(block * step, min((block + 1) * step, store.shape[0]))


def _block_on_disk(store: zarr.Array, block: int) -> bool:
    key = store.metadata.encode_chunk_key((block, 0, 0))
    return os.path.exists(os.path.join(str(store.store.root), key))


def missing_blocks(store: zarr.Array, n_rows: int) -> list[int]:
    """Blocks covering rows [0, n_rows) that are not yet on disk."""
    n_blocks = -(-n_rows // store.chunks[0])
    return [b for b in range(n_blocks) if not _block_on_disk(store, b)]


def write_block(store: zarr.Array, block: int, images: np.ndarray) -> None:
    rows = block_rows(store, block)
    if images.shape != (rows.stop - rows.start, *store.shape[1:]) or images.dtype != np.uint8:
        raise ValueError(f"block {block} has shape {images.shape} {images.dtype}")
    store[rows] = images


def mark_complete(store: zarr.Array, n_rows: int) -> None:
    if missing_blocks(store, n_rows):
        raise RuntimeError("mark_complete called before every block was written")
    if n_rows > store.attrs.get("complete_rows", 0):
        store.attrs["complete_rows"] = n_rows


def open_complete(path: Path, n_rows: int) -> zarr.Array:
    """A store for reading, checked to hold at least its first `n_rows` rows."""
    if not (path / "zarr.json").exists():
        raise ChexbalError(f"no image store at {path}: run `chexbal prepare` first")
    store = zarr.open_array(path, mode="r")
    if store.attrs.get("complete_rows", 0) < n_rows:
        raise ChexbalError(f"{path} is incomplete (an interrupted run?): run the same `chexbal` command again to finish it")
    return store
