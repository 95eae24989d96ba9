"""Where a result came from: the command line, chexbal's version and commit, torch, CUDA and cuDNN,
and the machine. Every run's config.json records it, and so does a published experiment."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from pathlib import Path

from chexbal import __version__


def provenance() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    return {
        "command": " ".join(["chexbal" if Path(sys.argv[0]).name == "chexbal" else sys.argv[0], *sys.argv[1:]]),
        "chexbal": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "machine": torch.cuda.get_device_name(0) if cuda else f"{cpu_model()}, {platform.machine()}",
    }


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout chexbal runs from (an editable install), or None (a wheel)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def cpu_model() -> str:
    try:
        line = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("model name"))
        return line.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"
