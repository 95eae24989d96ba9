"""`chexbal sweep`: the paper's grid for one regimen and arm, resumable, and the validation pick.

Each grid point is an ordinary `chexbal train` run in its own folder; a finished run (metrics.json
present) is skipped, an interrupted one resumed. The run with the best mean validation AUC is
recorded in `selected.json` beside the runs, which is what `chexbal report` reads.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from . import store
from .errors import ChexbalError
from .train import TrainConfig, train

# The paper's search: learning rate x batch size x optimizer (momentum SGD or Adam).
GRID = {"lr": (1e-2, 5e-3, 1e-3), "batch_size": (16, 32, 64), "optimizer": ("sgd", "adam")}


def grid(base: TrainConfig, lrs=None, batch_sizes=None, optimizers=None) -> list[TrainConfig]:
    points = itertools.product(lrs or GRID["lr"], batch_sizes or GRID["batch_size"], optimizers or GRID["optimizer"])
    configs = [dataclasses.replace(base, lr=lr, batch_size=bs, optimizer=opt, run_dir=None) for lr, bs, opt in points]
    return [dataclasses.replace(c, run_dir=str(c.default_run_dir())).check() for c in configs]


def sweep(configs: list[TrainConfig], workers: int = 1) -> Path:
    """Train every configuration not yet finished, then record and return the selection file."""
    if workers < 1:
        raise ChexbalError("--workers must be at least 1", 2)
    pending = [c for c in configs if not (Path(c.run_dir) / "metrics.json").exists()]
    if workers == 1 or len(pending) <= 1:
        for cfg in pending:
            run_one(cfg, threads=None)
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(run_one, pending, [threads] * len(pending)))
    return select(configs)


def run_one(cfg: TrainConfig, threads: int | None) -> str:
    if threads:
        import torch

        torch.set_num_threads(threads)
    resume = (Path(cfg.run_dir) / "last.pt").exists()
    return str(train(cfg, resume=resume, quiet=threads is not None))


def select(configs: list[TrainConfig]) -> Path:
    candidates = []
    for cfg in configs:
        metrics = json.loads((Path(cfg.run_dir) / "metrics.json").read_text())
        candidates.append({"run": cfg.run_dir, "lr": cfg.lr, "batch_size": cfg.batch_size, "optimizer": cfg.optimizer,
                           "val_mean_auc": metrics["val"]["mean_auc"]})
    scored = [c for c in candidates if not math.isnan(c["val_mean_auc"])]
    if not scored:
        raise ChexbalError("no run of the sweep has a validation AUC (validation too small?)")
    best = max(scored, key=lambda c: c["val_mean_auc"])
    path = Path(configs[0].run_dir).parent / "selected.json"
    store.write_atomic(path, json.dumps({"selected": best, "candidates": candidates}, indent=2))
    return path
