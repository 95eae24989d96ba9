"""The life of a run folder, classifier and GAN alike: start it (its settings in config.json), save
checkpoints atomically, and restore the last one to resume."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import torch

from chexbal.errors import ChexbalError
from chexbal.files import read_json, replacing, write_atomic


def start_run(run_dir: Path, settings: dict) -> None:
    """A new run folder with its settings in config.json; refused where a run already is."""
    if (run_dir / "last.pt").exists():
        raise ChexbalError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "config.json", json.dumps(settings, indent=2))


def started_in_bf16(run_dir: Path) -> bool | None:
    """Whether the run in `run_dir` was started with bf16 autocast (its config.json's amp_enabled);
    None where it records none (no run there, or one by an older chexbal)."""
    config = run_dir / "config.json"
    return read_json(config).get("amp_enabled") if config.exists() else None


def save(checkpoint: dict, path: Path) -> None:
    """Written beside `path` and renamed onto it: a save that fails (a full disk) leaves the old file."""
    try:
        with replacing(path) as tmp:
            torch.save(checkpoint, tmp)
    except (OSError, RuntimeError) as err:  # torch reports a full disk as a RuntimeError ("unexpected pos")
        full = (
            getattr(err, "errno", None) == errno.ENOSPC
            or "unexpected pos" in str(err)
            or shutil.disk_usage(path.parent).free < 2**20
        )
        why = "the disk is full" if full else str(err).splitlines()[0]
        raise ChexbalError(
            f"could not write {path} ({why}); the previous {path.name} is intact: free space and run again"
        ) from None


def load_for_resume(run_dir: Path, cfg, keys: tuple[str, ...], device, parts: tuple[str, ...] = ()) -> dict:
    """last.pt of an interrupted run, refused if it lacks a state in `parts` or a setting in `keys` (an
    older layout) or was started with other settings."""
    last = run_dir / "last.pt"
    if not last.exists():
        raise ChexbalError(f"nothing to resume: {last} not found")
    try:
        saved = torch.load(last, map_location=device, weights_only=False)
        if not isinstance(saved, dict) or "config" not in saved:
            raise ValueError("not a chexbal checkpoint")
    except Exception:  # truncated, or not a file chexbal wrote
        raise ChexbalError(
            f"{last} is truncated or not a chexbal checkpoint: delete last.pt to start the run again, or restore it"
        ) from None
    read_json(run_dir / "config.json")  # a damaged config.json would trip the report later
    missing = [part for part in parts if part not in saved] + [k for k in keys if k not in saved["config"]]
    if missing:
        raise ChexbalError(f"{last} was written by an older chexbal without {', '.join(missing)}: start a new run")
    differs = [k for k in keys if saved["config"].get(k) != getattr(cfg, k)]
    if differs:
        raise ChexbalError(f"{run_dir} was started with other settings ({', '.join(differs)}): resume it with the same options")
    return saved
