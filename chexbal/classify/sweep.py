"""`chexbal sweep`: the paper's grid for one regimen and arm, resumable, and the validation pick.

Each grid point is an ordinary `chexbal train` run in its own folder, for each training seed; a
finished run (metrics.json present) is reused only if it was trained with the settings asked for,
an interrupted one resumed. Per seed, the run with the best mean validation AUC is recorded in
`selected-seed<N>.json` beside the runs, which is what `chexbal report` reads.

Launchers: `local` runs on this machine, one worker per GPU (or a worker count on the CPU);
`slurm` submits the unfinished runs as one job array through submitit, one GPU per job.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import multiprocessing
import os
import subprocess
from pathlib import Path

from chexbal import files
from chexbal.classify.train import RESUME_KEYS, TrainConfig, train
from chexbal.errors import ChexbalError
from chexbal.workers import pool as worker_pool

# The paper's search: learning rate x batch size x optimizer (momentum SGD or Adam).
GRID = {"lr": (1e-2, 5e-3, 1e-3), "batch_size": (16, 32, 64), "optimizer": ("sgd", "adam")}


def grid(base: TrainConfig, lrs=None, batch_sizes=None, optimizers=None, seeds=None) -> list[TrainConfig]:
    points = itertools.product(
        seeds or [base.seed], lrs or GRID["lr"], batch_sizes or GRID["batch_size"], optimizers or GRID["optimizer"]
    )
    configs = [
        dataclasses.replace(base, seed=seed, lr=lr, batch_size=bs, optimizer=opt, run_dir=None) for seed, lr, bs, opt in points
    ]
    return [dataclasses.replace(c, run_dir=str(c.default_run_dir())).check() for c in configs]


@dataclasses.dataclass
class SlurmOptions:
    partition: str | None = None
    gpus: int = 1
    cpus: int = 8
    minutes: int = 240
    parallel: int = 18  # array jobs running at once
    logs: str = "runs/slurm"


def sweep(
    configs: list[TrainConfig], workers: int | None = None, launcher: str = "local", slurm: SlurmOptions | None = None
) -> list[Path]:
    """Train every configuration not yet finished, then record and return the selection file of each seed."""
    if workers is not None and workers < 1:
        raise ChexbalError("--workers must be at least 1", 2)
    pending = [c for c in configs if not finished(c)]
    if launcher == "slurm":
        run_submitit(pending, slurm or SlurmOptions(), cluster="slurm")
    elif launcher == "local":
        run_local(pending, workers)
    else:
        raise ChexbalError(f"--launcher must be local or slurm, not {launcher!r}", 2)
    return [select([c for c in configs if c.seed == seed]) for seed in dict.fromkeys(c.seed for c in configs)]


def finished(cfg: TrainConfig) -> bool:
    """Whether the run folder holds a finished run of exactly these settings; one of other settings is
    refused, so a sweep never reports runs it was not asked for. A run of the same settings that
    trained fewer epochs is not finished: `run_one` extends it (`train.keep_shorter_run`)."""
    run_dir = Path(cfg.run_dir)
    if not (run_dir / "metrics.json").exists():
        return False
    recorded = files.read_json(run_dir / "config.json")
    differs = [k for k in RESUME_KEYS if recorded.get(k) != getattr(cfg, k)]
    if not differs and recorded.get("epochs", cfg.epochs) < cfg.epochs:
        return False
    differs += ["epochs"] if recorded.get("epochs") != cfg.epochs else []
    if differs:
        raise ChexbalError(
            f"{run_dir} holds a finished run with other settings ({', '.join(differs)}): delete that folder to train it afresh"
        )
    return True


def run_local(pending: list[TrainConfig], workers: int | None) -> None:
    """One worker per GPU when there are GPUs, else `workers` processes sharing the CPU threads."""
    import torch

    gpus = torch.cuda.device_count()
    workers = workers or max(gpus, 1)
    if workers == 1 or len(pending) <= 1:
        for cfg in pending:
            run_one(cfg, quiet=False)
        return
    slots = multiprocessing.get_context("spawn").Queue()
    for k in range(workers):
        slots.put(str(k % gpus) if gpus else None)
    threads = max(1, (os.cpu_count() or 1) // workers)
    with worker_pool(workers, _claim_slot, (slots, threads), method="spawn") as pool:
        list(pool.map(run_one, pending))


def _claim_slot(slots, threads: int) -> None:
    """Worker start-up: pin this process to one GPU (before CUDA starts) and its share of CPU threads."""
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    import torch

    torch.set_num_threads(threads)


def run_submitit(pending: list[TrainConfig], options: SlurmOptions, cluster: str) -> None:
    """The unfinished runs as one job array; blocks until they end. Re-running the sweep after an
    interruption submits only what is still unfinished, and interrupted runs resume."""
    if not pending:
        return
    import submitit

    try:
        executor = submitit.AutoExecutor(folder=options.logs, cluster=cluster)
        executor.update_parameters(
            name="chexbal-sweep",
            timeout_min=options.minutes,
            gpus_per_node=options.gpus,
            cpus_per_task=options.cpus,
            slurm_array_parallelism=options.parallel,
            slurm_signal_delay_s=120,  # Slurm warns each job 2 minutes ahead of its time limit...
            **({"slurm_partition": options.partition} if options.partition else {}),
        )
        jobs = executor.map_array(ResumingRun(), pending)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as err:  # no Slurm here, sbatch refused
        raise ChexbalError(f"could not submit to {cluster}: {str(err).strip().splitlines()[-1]}") from None
    for job in jobs:
        try:
            job.result()
        except Exception as err:  # a failed job: name it, keep its log, the others' runs stay
            raise ChexbalError(f"sweep job {job.job_id} failed; log in {options.logs}: {str(err).splitlines()[-1]}") from None


class ResumingRun:
    """A sweep job that submitit requeues when Slurm warns of the time limit or a pre-emption
    (`checkpoint`): the requeued job resumes the run from its last.pt instead of starting it again."""

    def __call__(self, cfg: TrainConfig) -> str:
        return run_one(cfg)

    def checkpoint(self, cfg: TrainConfig):
        import submitit

        return submitit.helpers.DelayedSubmission(ResumingRun(), cfg)  # ...and requeues it to resume


def run_one(cfg: TrainConfig, quiet: bool = True) -> str:
    """One grid point, resumed if it was interrupted; quiet in parallel workers and array jobs."""
    resume = (Path(cfg.run_dir) / "last.pt").exists()
    return str(train(cfg, resume=resume, quiet=quiet))


def selection_path(cfg: TrainConfig) -> Path:
    """Where a sweep records the validation pick of `cfg`'s seed: beside the runs of its arm."""
    return cfg.default_run_dir().parent / f"selected-seed{cfg.seed}.json"


def select(configs: list[TrainConfig]) -> Path:
    candidates = []
    for cfg in configs:
        metrics = files.read_json(Path(cfg.run_dir) / "metrics.json")
        candidates.append(
            {
                "run": cfg.run_dir,
                "lr": cfg.lr,
                "batch_size": cfg.batch_size,
                "optimizer": cfg.optimizer,
                "val_mean_auc": metrics["val"]["mean_auc"],
            }
        )
    scored = [c for c in candidates if not math.isnan(c["val_mean_auc"])]
    if not scored:
        raise ChexbalError("no run of the sweep has a validation AUC (validation too small?)")
    best = max(scored, key=lambda c: c["val_mean_auc"])
    path = selection_path(configs[0])
    files.write_atomic(path, json.dumps({"selected": best, "candidates": candidates}, indent=2))
    return path
