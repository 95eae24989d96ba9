"""Crash-safe files: every table, JSON and checkpoint chexbal writes goes through `replacing`."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path


@contextlib.contextmanager
def replacing(path: Path):
    """A temporary path beside `path`, unique to this process, renamed onto `path` when the block ends
    without error: a crash leaves the old file or the new one, never half of one. The one way chexbal
    writes a file that is read back (tables, JSON, checkpoints, sample grids)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
