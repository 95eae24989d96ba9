"""Crash-safe files: every table, JSON and checkpoint chexbal writes goes through `replacing`."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
from pathlib import Path

from chexbal.errors import ChexbalError


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


@contextlib.contextmanager
def locked(folder: Path, what: str = "run", *, lock: str = "runner.lock", wait: bool = False):
    """Hold `folder`'s lock file for the block: one runner per folder, since two would spend the
    compute twice or overwrite each other's checkpoints. The kernel drops the lock when its holder
    dies, so a crash never leaves a stale one. A second holder is refused naming the first's pid, or
    with `wait` (work that must follow, not replace, the other: a publication) waits for it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / lock, "a+") as held:
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.seek(0)
            holder = held.read().strip() or "unknown"
            if not wait:
                raise ChexbalError(
                    f"another {what} (pid {holder}) is running in {folder}: wait for it, or stop it first"
                ) from None
            print(f"waiting for another {what} (pid {holder}) in {folder} to finish", file=sys.stderr, flush=True)
            fcntl.flock(held, fcntl.LOCK_EX)
        held.truncate(0)
        held.write(str(os.getpid()))
        held.flush()
        yield


def read_json(path: Path) -> dict:
    """A JSON file chexbal wrote, or one line naming it when it is not readable JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ChexbalError(
            f"{path} is not readable JSON ({err}): restore it, or delete its folder and run the stage again"
        ) from None
