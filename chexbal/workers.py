"""Process pools whose workers end with their parent.

A parent killed outright (SIGKILL, the OOM killer, a cluster's preemption) runs no cleanup, and the
workers of a `ProcessPoolExecutor` then wait for work for ever. Each worker asks the kernel for
SIGKILL when its parent dies (Linux `prctl(PR_SET_PDEATHSIG)`); elsewhere a daemon thread polls for
the parent and exits when it is gone.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1


def pool(workers: int, initializer=None, initargs=(), method: str | None = None) -> ProcessPoolExecutor:
    """A pool of `workers` processes that die with this one; `initializer(*initargs)` runs in each
    after that is arranged. `method`: the start method (spawn where CUDA may start), default the
    platform's."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context(method),
        initializer=_start,
        initargs=(os.getpid(), initializer, initargs),
    )


def _start(parent: int, initializer, initargs) -> None:
    die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) == 0:
            if os.getppid() != parent:  # the parent died before the request was in place
                os._exit(1)
            return
    threading.Thread(target=_watch, args=(parent,), daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)
