"""`chexbal experiment PLAN`: check the plan, print its tasks and their estimated time here, run
what is not done, and publish the report."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from chexbal import files
from chexbal.errors import ChexbalError
from chexbal.experiment import runner
from chexbal.experiment.estimate import corrections, measure, regimen_sizes
from chexbal.experiment.plan import read_plan
from chexbal.experiment.publish import publish
from chexbal.experiment.tasks import plan_tasks
from chexbal.progress import console, results

LAUNCHERS = ("local", "slurm")


@dataclasses.dataclass(frozen=True)
class Options:
    dry_run: bool = False
    launcher: str = "local"
    parallel: int | None = None  # processes at once (local); default: processes_at_once
    publish_only: bool = False
    estimate: bool = True  # measure throughput here to price the tasks left (--no-estimate)
    root: Path | None = None  # a CheXpert folder overriding the plan's
    slurm_executor: object = None  # a submitit executor (tests pass a local one); default: Slurm's


def experiment(plan_file: Path, options: Options = Options(), command: str = "") -> list[str]:
    """Returns the names of the tasks that did not finish (failed, or waiting on a failed one)."""
    if options.launcher not in LAUNCHERS:
        raise ChexbalError(f"--launcher must be one of {', '.join(LAUNCHERS)}, not {options.launcher!r}", 2)
    if options.parallel is not None and options.parallel < 1:
        raise ChexbalError("--parallel must be at least 1", 2)
    plan = read_plan(plan_file, options.root)
    sizes = regimen_sizes(plan)
    tasks = plan_tasks(plan, sizes)
    folder = runner.run_dir(plan.name)
    show_plan(plan, tasks, sizes, options)
    if options.dry_run:
        return []
    left: list[str] = []
    if not options.publish_only:
        with files.locked(folder, "experiment runner"):
            left = launch(tasks, folder, options, plan.size)
    # a runner that ends while `--publish-only` renders waits for it, rather than swapping folders under it
    with files.locked(folder, "publication of this plan", lock="publish.lock", wait=True):
        where = publish(plan, tasks, folder, command or f"chexbal experiment {plan_file}")
    console.print(f"report published to {where}")
    return left


def launch(tasks, folder: Path, options: Options, size: int) -> list[str]:
    if options.launcher == "slurm":
        return runner.run_slurm(tasks, folder, options.slurm_executor or slurm_executor(folder))
    gpus = gpu_count()
    return runner.run_local(tasks, processes_at_once(options, gpus, size), folder, gpus)


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def processes_at_once(options: Options, gpus: int, size: int) -> int:
    """--parallel, or two single-thread processes on a CPU; on GPUs as many per GPU as measured
    throughput says pays (docs/benchmarks.md, one H200): at 64 px one DenseNet-121 training is bound
    by launch cost, and 8 processes together train 5.2x as fast as one; at 224 px one process at
    batch 64 already keeps up with the bare model (ratio 0.99), so no more than 2 is measured to pay."""
    return options.parallel or (gpus * (8 if size <= 64 else 2) if gpus else 2)


def slurm_executor(folder: Path):
    import submitit

    executor = submitit.AutoExecutor(folder=folder / "slurm", cluster="slurm")
    executor.update_parameters(gpus_per_node=1, cpus_per_task=8, timeout_min=240, slurm_signal_delay_s=120)
    return executor


def show_plan(plan, tasks, sizes, options: Options) -> None:
    """The tasks left and, measured here, about how long they take."""
    left = [t for t in tasks if not t.done()]
    results.print(f"{plan.path}: {len(tasks)} tasks, {len(tasks) - len(left)} done, {len(left)} to run")
    if not options.estimate or options.publish_only or not left:  # publishing runs nothing: no estimate
        return
    busy = os.getloadavg()[0]  # before measuring: the measurement itself adds to it
    rates = measure(plan)
    seconds, factors = priced_here(plan, tasks, left, rates, next(iter(sizes.values()))[1])
    for task in left:
        results.print(f"  {seconds[task.name] / 60:7.1f} min  {task.name}")
    parallel = processes_at_once(options, gpu_count(), plan.size)
    hours = sum(seconds.values()) / 3600
    results.print(
        f"about {hours:.1f} process-hours here ({hours / parallel:.1f} h with {parallel} at once), plus the report; "
        f"measured: {rates.train:.0f} training img/s per process, {rates.gan_step:.1f} GAN steps/s"
    )
    if factors:
        results.print(
            "corrected by the tasks finished here (took / priced): "
            + ", ".join(f"{kind} x{factor:.2f} ({n})" for kind, (factor, n) in sorted(factors.items()))
        )
    unmeasured = {t.kind for t in left} - set(factors)
    if unmeasured and busy > (os.cpu_count() or 1) / 2:  # rates measured beside other work mislead: say so
        results.print(
            f"the machine was busy while measuring (load {busy:.1f} on {os.cpu_count()} cores): "
            f"the times of {', '.join(sorted(unmeasured))}, which no finished task here corrects, may be far off"
        )


def priced_here(plan, tasks, left, rates, test_images: int) -> tuple[dict[str, float], dict[str, tuple[float, int]]]:
    """Seconds per task left, at the measured rates corrected by the plan's tasks finished here, and
    the corrections (per kind: took / priced, tasks)."""

    def price(task, whole=False):
        return rates.seconds(task, test_images, plan.source == "phantom", whole)

    waiting = {t.name for t in left}
    done = [t for t in tasks if t.name not in waiting]
    factors = corrections(done, runner.finished_here(runner.run_dir(plan.name)), lambda t: price(t, whole=True))
    return {t.name: price(t) * factors.get(t.kind, (1.0, 0))[0] for t in left}, factors
