"""Checkpoints of classifier and GAN runs: atomic saves, and loading one to resume a run."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import ChexbalError


def save(checkpoint: dict, path: Path) -> None:
    """torch.save to a temporary file, then rename: a crash leaves the old checkpoint whole."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)


def load_for_resume(run_dir: Path, cfg, keys: tuple[str, ...], device, parts: tuple[str, ...] = ()) -> dict:
    """last.pt of an interrupted run, refused if it lacks a state in `parts` or a setting in `keys` (an
    older layout) or was started with other settings."""
    last = run_dir / "last.pt"
    if not last.exists():
        raise ChexbalError(f"nothing to resume: {last} not found")
    saved = torch.load(last, map_location=device, weights_only=False)
    missing = [part for part in parts if part not in saved] + [k for k in keys if k not in saved["config"]]
    if missing:
        raise ChexbalError(f"{last} was written by an older chexbal without {', '.join(missing)}: start a new run")
    differs = [k for k in keys if saved["config"].get(k) != getattr(cfg, k)]
    if differs:
        raise ChexbalError(f"{run_dir} was started with other settings ({', '.join(differs)}): resume it with the same options")
    return saved
