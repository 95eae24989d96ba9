"""The fair phantom experiment (`make experiment`): every arm at 1% and 10%, several seeds, one report.

Resumable: each task is a `chexbal` command whose finished output is on disk, so re-running skips
what is done and resumes what was interrupted. Tasks run as single-thread processes, `--parallel` at
a time (two single-thread DenseNet-121 processes out-run one two-thread process on a 2-core CPU).
The plan (tasks, estimated time) is printed first, then one line per task as it ends; everything is
also logged under runs/experiment/logs/.

The train/validation split is fixed (split seed 0) across the training seeds, so one regimen
generator serves every seed: the seeds vary initialisation, batch order and augmentation, not the split.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from chexbal.workers import die_with_parent

CHEXBAL = [sys.executable, "-m", "chexbal.cli"]
DATASET = "phantom-64"
RUN = ["--lr", "0.001", "--batch-size", "32", "--optimizer", "adam", "--split-seed", "0"]
GAN_STEPS = 5250
GAN = ["--steps", str(GAN_STEPS), "--negatives", "Pleural Other", "--negatives-from", "4750"]  # the shipped recipe
ALL_ARMS = ("none", "oversample", "gan", "gan-regimen", "real-extra", "weighted", "affine", "standard")
# Seconds, measured on this project's 2-core AMD EPYC (avx512_bf16, bf16 autocast), one thread per process.
COST = {"image_epoch": 1 / 130, "test_image": 1 / 400, "gan_step": 0.5, "generate": 30, "eval": 120, "report": 120}


@dataclasses.dataclass
class Task:
    name: str
    command: list[str]
    output: Path  # exists once the task is finished
    seconds: float  # estimate
    needs: tuple[str, ...] = ()
    steps: int | None = None  # a GAN task: finished when its generator.json records these steps

    def done(self) -> bool:
        if self.steps is None or not self.output.exists():
            return self.output.exists()
        return json.loads(self.output.read_text()).get("steps") == self.steps

    def seconds_left(self) -> float:
        """The estimate, less the steps a GAN run has already done."""
        if self.steps is None or not self.output.exists():
            return self.seconds
        done = json.loads(self.output.read_text()).get("steps", 0)
        return self.seconds * max(0, self.steps - done) / self.steps

    def argv(self) -> list[str]:
        """The command; a GAN run that was started resumes."""
        started = self.steps is not None and (self.output.parent / "last.pt").exists()
        return [*self.command, "--resume"] if started else self.command


def runs_root() -> Path:
    return Path("runs") / DATASET


def classifier_task(frac: float, arm: str, seed: int, epochs: int, train_images: int, test_images: int) -> Task:
    run = runs_root() / f"frac-{frac:g}" / arm / f"lr0.001-bs32-adam-seed{seed}"
    extra = 0 if arm in ("none", "standard", "affine", "weighted") else 0.45 * train_images  # about the plan's share
    needs = {"gan": (f"generate pool {frac:g}",), "gan-regimen": (f"generate regimen {frac:g}",)}.get(arm, ())
    seconds = (
        epochs * (train_images + extra) * COST["image_epoch"] + (test_images + epochs * 0.06 * train_images) * COST["test_image"]
    )
    command = [*CHEXBAL, "sweep", "--frac", f"{frac:g}", "--aug", arm, "--seed", str(seed), "--epochs", str(epochs), *RUN]
    return Task(f"train {frac:g} {arm} seed {seed}", command, run / "metrics.json", seconds, needs)


def plan(args: argparse.Namespace) -> list[Task]:
    """Every task in the order it should start: the whole 1% part first, then the 10% part."""
    tasks = [
        Task(
            "prepare",
            [*CHEXBAL, "prepare", "--frac", "1", "--workers", str(args.prepare_workers)],
            Path("data") / DATASET / "subsets" / "frac-1.csv",
            240,
        )
    ]
    judges = [runs_root() / "frac-0.01" / "none" / f"lr0.001-bs32-adam-seed{s}" for s in (0, 1)]
    parts = {0.01: (args.seeds_1, ALL_ARMS, 10, 1708), 0.1: (args.seeds_10, args.arms_10, args.epochs_10, 17187)}
    for frac in args.fracs:
        seeds, arms, epochs, train_images = parts[frac]
        tasks += generator_tasks(frac)
        tasks += [classifier_task(frac, arm, seed, epochs, train_images, 9644) for seed in range(seeds) for arm in arms]
        if 0.01 in args.fracs:  # the judges are 1% runs
            evaluated = ("pool", "regimen") if frac == 0.01 else ("regimen",)  # one pool generator for both
            tasks += [gan_eval_task(frac, generator, judges) for generator in evaluated]
    return tasks


def generator_tasks(frac: float) -> list[Task]:
    """The regimen's subset, its pool-generator set, its regimen generator and that one's set."""
    synthetic = Path("data") / DATASET / "synthetic"
    gan_dir = Path("runs") / "gan" / DATASET / f"frac-{frac:g}"
    return [
        Task(
            f"prepare {frac:g}",
            [*CHEXBAL, "prepare", "--frac", f"{frac:g}", "--workers", "1"],
            Path("data") / DATASET / "subsets" / f"frac-{frac:g}.csv",
            10,
            ("prepare",),
        ),
        Task(
            f"generate pool {frac:g}",
            [*CHEXBAL, "generate", "--frac", f"{frac:g}"],
            synthetic / f"frac-{frac:g}" / "provenance.json",
            COST["generate"],
            (f"prepare {frac:g}",),
        ),
        Task(
            f"train-gan {frac:g}",
            [*CHEXBAL, "train-gan", "--frac", f"{frac:g}", *GAN],
            gan_dir / "generator.json",
            GAN_STEPS * COST["gan_step"],
            (f"prepare {frac:g}",),
            GAN_STEPS,
        ),
        Task(
            f"generate regimen {frac:g}",
            [*CHEXBAL, "generate", "--frac", f"{frac:g}", "--generator", "regimen"],
            synthetic / f"frac-{frac:g}-regimen" / "provenance.json",
            COST["generate"],
            (f"train-gan {frac:g}",),
        ),
    ]


def gan_eval_task(frac: float, generator: str, judges: list[Path]) -> Task:
    """A generator's fidelity, judged by two no-augmentation runs of the 1% regimen (seeds 0 and 1)."""
    out = runs_root() / f"gan-eval-{generator}-{frac:g}.json"
    checkpoint = ["--checkpoint", str(Path("runs") / "gan" / DATASET / f"frac-{frac:g}" / "generator.pt")]
    command = [
        *CHEXBAL,
        "gan-eval",
        "--n",
        "2000",
        "--classifier",
        str(judges[0]),
        "--second-judge",
        str(judges[1]),
        "--out",
        str(out),
        *(checkpoint if generator == "regimen" else []),
    ]
    needs = ("train 0.01 none seed 0", "train 0.01 none seed 1", f"train-gan {frac:g}")
    return Task(f"gan-eval {generator} {frac:g}", command, out, COST["eval"], needs)


def ready(task: Task, tasks: dict[str, Task]) -> bool:
    return all(tasks[n].done() for n in task.needs if n in tasks)


def run(tasks: list[Task], parallel: int, logs: Path) -> None:
    """Start tasks as their inputs appear, `parallel` at a time; on exit (done, Ctrl-C, SIGTERM) the
    running tasks are stopped, and they resume on the next run. Tasks die with this process even when
    it is killed outright."""
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        schedule(tasks, parallel, logs, running)
    finally:
        for process, _ in running.values():
            process.terminate()
        for process, _ in running.values():
            process.wait()


def schedule(tasks: list[Task], parallel: int, logs: Path, running: dict) -> None:
    by_name = {t.name: t for t in tasks}
    todo = [t for t in tasks if not t.done()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    me = os.getpid()
    logs.mkdir(parents=True, exist_ok=True)
    while todo or running:
        for name, (process, started) in list(running.items()):
            if process.poll() is None:
                continue
            del running[name]
            status = "done" if process.returncode == 0 and by_name[name].done() else f"FAILED ({process.returncode})"
            print(f"{time.strftime('%H:%M:%S')} {status:>10} {name} in {(time.time() - started) / 60:.1f} min", flush=True)
            record_time(logs.parent / "stages.csv", name, status, time.time() - started)
            if status != "done":
                todo = [t for t in todo if name not in t.needs]
        startable = [t for t in todo if ready(t, by_name) and not any(n in running for n in t.needs)]
        while startable and len(running) < parallel:
            task = startable.pop(0)
            todo.remove(task)
            log = open(logs / (task.name.replace(" ", "_") + ".log"), "a")
            process = subprocess.Popen(
                task.argv(), stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=lambda: die_with_parent(me)
            )
            running[task.name] = (process, time.time())
            print(f"{time.strftime('%H:%M:%S')} {'start':>10} {task.name}", flush=True)
        if not running and todo:
            print("nothing can start: the tasks left wait on failed ones; see the logs", flush=True)
            return
        time.sleep(5)


@contextlib.contextmanager
def exclusive(path: Path):
    """One experiment runner at a time: two would train the same runs side by side."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.exit(f"another experiment runner holds {path}: wait for it, or stop it first")
        yield


def record_time(path: Path, name: str, status: str, seconds: float) -> None:
    new = not path.exists()
    with open(path, "a") as out:
        if new:
            out.write("task,status,minutes,machine,ended\n")
        out.write(
            f"{name},{status},{seconds / 60:.2f},{os.uname().machine} {os.cpu_count()} cores,{time.strftime('%Y-%m-%d %H:%M')}\n"
        )


def main() -> None:
    args = parse_args(sys.argv[1:])
    tasks = plan(args)
    left = [t for t in tasks if not t.done()]
    hours = sum(t.seconds_left() for t in left) / 3600
    print(
        f"experiment: {len(tasks)} tasks, {len(tasks) - len(left)} done, {len(left)} to run, "
        f"about {hours:.1f} CPU-hours ({hours / args.parallel:.1f} h with {args.parallel} at once)"
    )
    for t in left:
        print(f"  {t.seconds_left() / 60:6.1f} min  {t.name}")
    if args.plan_only:
        return
    if not args.publish_only:
        with exclusive(Path("runs") / "experiment" / ".lock"):
            run(tasks, args.parallel, Path("runs") / "experiment" / "logs")
    publish(tasks, args)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fracs", type=fractions, default=(0.01, 0.1), help="regimens to run: 0.01, 0.1 or both (0.01,0.1)")
    parser.add_argument("--seeds-1", type=int, default=5, help="training seeds at 1%% (every arm)")
    parser.add_argument("--seeds-10", type=int, default=3, help="training seeds at 10%%")
    parser.add_argument("--arms-10", type=arms, default=("none", "oversample", "weighted", "gan", "gan-regimen", "real-extra"))
    parser.add_argument("--epochs-10", type=int, default=5, help="epochs at 10%% (the same for every arm)")
    parser.add_argument("--parallel", type=int, default=2, help="single-thread processes at once")
    parser.add_argument("--prepare-workers", type=int, default=1, help="processes rendering the phantom")
    parser.add_argument("--publish-to", type=Path, default=Path("docs") / "experiment", help="where the report is copied")
    parser.add_argument("--plan-only", action="store_true")
    parser.add_argument("--publish-only", action="store_true", help="report what is done into --publish-to, run nothing")
    return parser.parse_args(argv)


def fractions(text: str) -> tuple[float, ...]:
    fracs = tuple(float(x) for x in text.split(","))
    if not fracs or not set(fracs) <= {0.01, 0.1}:
        raise argparse.ArgumentTypeError(f"{text!r}: the experiment has the regimens 0.01 and 0.1")
    return fracs


def arms(text: str) -> tuple[str, ...]:
    names = tuple(text.split(","))
    unknown = [a for a in names if a not in ALL_ARMS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown arm {unknown[0]!r}: the arms are {', '.join(ALL_ARMS)}")
    return names


def publish(tasks: list[Task], args: argparse.Namespace) -> None:
    """The report of what is done, copied to --publish-to with a page of how it was made: the command,
    the machine, the code, the wall time of each stage, and the tasks still to run (marked gaps)."""
    out = args.publish_to
    if subprocess.run([*CHEXBAL, "report", "--name", "experiment"]).returncode != 0:
        sys.exit(f"the report failed (its message is above); {out} is left as it was")
    # Built beside `out`, then swapped in: a crash part-way never leaves a half-published folder.
    new, old = out.with_name(out.name + ".new"), out.with_name(out.name + ".old")
    shutil.rmtree(new, ignore_errors=True)
    shutil.copytree(Path("reports") / "experiment", new)
    stages = Path("runs") / "experiment" / "stages.csv"
    if stages.exists():
        shutil.copy(stages, new / "stages.csv")
    (new / "README.md").write_text(about(tasks, stages, args))
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    new.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    print(f"published to {out}")


def about(tasks: list[Task], stages: Path, args: argparse.Namespace) -> str:
    times = pd.read_csv(stages) if stages.exists() else pd.DataFrame(columns=["task", "status", "minutes"])
    done = times[times["status"] == "done"].assign(stage=lambda t: t["task"].str.replace(r" seed \d+$", "", regex=True))
    by_stage = done.groupby("stage", sort=False)["minutes"].agg(["count", "sum", "median"]).round(1)
    left = [t.name for t in tasks if not t.done()]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    command = " ".join(["python", *(a for a in sys.argv if a != "--publish-only")])  # the run that made the runs
    lines = [
        "# The fair phantom experiment",
        "",
        "What it found, and checks of the conclusion: [../experiment.md](../experiment.md).",
        "",
        "[report.md](report.md) (or the self-contained [report.html](report.html)) is `chexbal report --name experiment` "
        f"over the runs of `{command}` (`scripts/experiment.py`): {regimens(args)}; Adam, lr 1e-3, "
        "batch 32, split seed 0 for every run. The seeds vary initialisation, batch order and augmentation, not the "
        "train/validation split, so one regimen generator (the shipped recipe: 5,250 steps, Pleural Other denied from "
        "step 4,750) serves every seed.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores ({cpu_model()}){accelerator()}; code at commit {commit}; "
        f"tasks ran as single-thread processes, {args.parallel} at a time.",
        "",
        "## Wall time per stage (minutes, from stages.csv)",
        "",
        "| stage | runs | total | median |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {stage} | {int(r['count'])} | {r['sum']} | {r['median']} |" for stage, r in by_stage.iterrows()],
        "",
        "Tasks still to run (gaps in the report; `make experiment` resumes them): " + (", ".join(left) if left else "none") + ".",
        "",
    ]
    return "\n".join(lines)


def regimens(args: argparse.Namespace) -> str:
    parts = []
    if 0.01 in args.fracs:
        parts.append(f"every arm at 1% over {args.seeds_1} training seeds, 10 epochs")
    if 0.1 in args.fracs:
        parts.append(f"{', '.join(args.arms_10)} at 10% over {args.seeds_10} training seeds, {args.epochs_10} epochs")
    return "; ".join(parts) + " (the same epochs for every arm of a regimen)"


def accelerator() -> str:
    """The GPU the tasks trained on (`--device auto` picks it), or nothing on a CPU-only machine."""
    import torch

    return f", trained on one {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""


def cpu_model() -> str:
    try:
        line = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("model name"))
        return line.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
