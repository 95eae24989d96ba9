"""Chunked uint8 image stores in Zarr: create, find missing blocks, write blocks, mark complete.

A block is one chunk along N. Zarr (>= 3.1.3) writes each chunk file atomically, so a chunk file
that exists holds a whole block: resuming an interrupted write means writing the blocks whose chunk
files are missing. `complete_rows` in the attributes is raised only after every block up to it is on
disk, so readers never trust a row that was not written.

Every chunk carries a CRC32C checksum (zarr's own codec), since zstd alone decodes a flipped byte
without complaint: a damaged chunk is found on reading (`read`) or by `damaged_blocks`, and
`prepare --verify` re-draws it. Stores written before checksums are refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from chexbal.errors import ChexbalError

BLOCK = 256


def open_or_create(path: Path, n: int, size: int, settings: dict[str, Any]) -> zarr.Array:
    """The store at `path`, created if absent; an existing store must have the same settings."""
    if (path / "zarr.json").exists():
        store = zarr.open_array(path, mode="r+")
        check_checksummed(store, path)
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
        compressors=[ZstdCodec(), Crc32cCodec()],
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


def block_count(store: zarr.Array, n_rows: int) -> int:
    """How many blocks cover rows [0, n_rows)."""
    return -(-n_rows // store.chunks[0])


def missing_blocks(store: zarr.Array, n_rows: int) -> list[int]:
    """Blocks covering rows [0, n_rows) that are not yet on disk."""
    return [b for b in range(block_count(store, n_rows)) if not _block_on_disk(store, b)]


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
    check_checksummed(store, path)
    if store.attrs.get("complete_rows", 0) < n_rows:
        raise ChexbalError(f"{path} is incomplete (an interrupted run?): run the same `chexbal` command again to finish it")
    return store


def check_checksummed(store: zarr.Array, path: Path) -> None:
    if not any(isinstance(codec, Crc32cCodec) for codec in store.metadata.codecs):
        raise ChexbalError(
            f"{path} was written before chexbal checksummed its stores: delete it and run the command that made it "
            "again (`chexbal prepare` or `chexbal generate`)"
        )


def read(store: zarr.Array, selection, repair: str) -> np.ndarray:
    """`store[selection]`, or one line naming the damaged chunks' rows and the command that repairs them."""
    try:
        return store[selection]
    except (ValueError, RuntimeError) as err:  # a checksum that does not match, a chunk that does not decode
        damaged = damaged_blocks(store, store.attrs.get("complete_rows", store.shape[0]))
        if not damaged:
            raise ChexbalError(f"{store.store.root} could not be read ({err})") from None
        rows = ", ".join(f"{block_rows(store, b).start}-{block_rows(store, b).stop - 1}" for b in damaged[:3])
        raise ChexbalError(
            f"{store.store.root}: {len(damaged)} damaged chunk(s) (rows {rows}{', …' if len(damaged) > 3 else ''}): {repair}"
        ) from None


def damaged_blocks(store: zarr.Array, n_rows: int) -> list[int]:
    """Blocks on disk covering rows [0, n_rows) whose chunk fails its checksum or does not decode."""
    damaged = []
    for block in range(block_count(store, n_rows)):
        if _block_on_disk(store, block):
            try:
                store[block_rows(store, block)]
            except (ValueError, RuntimeError):
                damaged.append(block)
    return damaged


def forget_blocks(store: zarr.Array, blocks: list[int]) -> None:
    """Delete damaged blocks so a resumed write draws them again; the store first stops claiming them."""
    if not blocks:
        return
    store.attrs["complete_rows"] = min(store.attrs.get("complete_rows", 0), block_rows(store, min(blocks)).start)
    for block in blocks:
        os.remove(os.path.join(str(store.store.root), store.metadata.encode_chunk_key((block, 0, 0))))
