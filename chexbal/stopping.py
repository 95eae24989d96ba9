"""SIGTERM, which Slurm sends ahead of a time limit or a pre-emption, as a clean stop.

Inside `graceful()`, SIGTERM only raises a flag; the training loops (classifier, GAN) and `generate`
look at it between steps, write what they have (last.pt, or the finished blocks), and raise
`Stopped`: one line with the resume hint, exit code 143. Resuming gives the uninterrupted result.
A step that itself takes minutes (a block of diffusion samples on a CPU) looks at the flag inside
itself, through `check()`, where its caller has allowed it to be dropped (`droppable()`).
"""

from __future__ import annotations

import contextlib
import signal
import threading

from chexbal.errors import ChexbalError

_requested = threading.Event()
_droppable = threading.Event()


class Stopped(ChexbalError):
    def __init__(self, where: str, resume: str = "run the same command with --resume"):
        super().__init__(f"stopped by SIGTERM; {where} is saved: {resume} to continue", 143)


class Dropped(Exception):
    """A step given up part-way after SIGTERM (inside `droppable()`): its caller discards it."""


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Inside a long step: give it up (raise `Dropped`) if SIGTERM came and its caller allows that."""
    if _droppable.is_set() and _requested.is_set():
        raise Dropped


@contextlib.contextmanager
def droppable():
    """Steps begun in here may be given up part-way (`check`); the caller catches `Dropped` and
    discards the unfinished step, which a resumed run redoes whole."""
    _droppable.set()
    try:
        yield
    finally:
        _droppable.clear()


@contextlib.contextmanager
def graceful():
    """Turn SIGTERM into a request to stop at the next step (the main thread only; elsewhere, and
    where a handler is already set by an outer block, nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: _requested.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _requested.clear()
