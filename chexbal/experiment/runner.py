"""Running a plan's tasks: tasks started as their inputs appear, one progress line per task, logs and
wall times under the plan's run folder. One runner per plan: the caller holds the plan's lock
(`files.locked` in experiment/run.py).

Resumable by construction: a task is a `chexbal` command whose finished output is on disk, so a
re-run skips what is done and resumes what was interrupted (each stage resumes itself).

Launchers: `local` runs `parallel` processes on this machine: single-thread processes on a CPU (two
of them out-run one two-thread process on 2 cores, 1.22x measured), and on a GPU machine each task
goes to the least busy GPU (CUDA_VISIBLE_DEVICES), and the generators' trainings share a GPU only
with each other (`next_on_gpu`). `slurm` submits the ready tasks as one submitit
job array, waits for it, and submits the next wave: the generator, then its set, then the trainings
that need it; a re-run resubmits only what is unfinished.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from chexbal.errors import ChexbalError
from chexbal.experiment.tasks import Task
from chexbal.workers import die_with_parent


def run_dir(plan_name: str) -> Path:
    """The plan's own folder: its lock, logs and stages.csv (wall time per task)."""
    return Path("runs") / "experiment" / plan_name


def ready(task: Task, by_name: dict[str, Task]) -> bool:
    return all(by_name[n].done() for n in task.needs if n in by_name)


def run_local(tasks: list[Task], parallel: int, folder: Path, gpus: int = 0) -> list[str]:
    """Start tasks as their inputs appear, `parallel` at a time; on exit (done, Ctrl-C, SIGTERM) the
    running ones are stopped, and they resume on the next run. Returns the names of failed tasks."""
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    count_cut_off_parts(folder)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return _schedule(tasks, parallel, folder, running, gpus)
    finally:
        for process, _ in running.values():
            process.terminate()
        by_name = {t.name: t for t in tasks}
        for name, (process, begun) in running.items():  # each a part of its task's wall time
            finished = process.wait() == 0 and by_name[name].done()  # it may have ended just before the stop
            record_time(folder / "stages.csv", name, "done" if finished else "stopped", time.time() - begun)
        signal.signal(signal.SIGTERM, previous)


def _schedule(tasks: list[Task], parallel: int, folder: Path, running: dict, gpus: int) -> list[str]:
    by_name, failed, gpu_of = {t.name: t for t in tasks}, [], {}
    todo = [t for t in tasks if not t.done()]
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    while todo or running:
        for name, (process, begun) in list(running.items()):
            if process.poll() is None:
                continue
            del running[name]
            ok = process.returncode == 0 and by_name[name].done()
            status = "done" if ok else f"FAILED ({process.returncode})"
            log_line(
                f"{status:>11} {name} in {(time.time() - begun) / 60:.1f} min" + ("" if ok else f", log {log_path(folder, name)}")
            )
            record_time(folder / "stages.csv", name, status, time.time() - begun)
            if not ok:
                failed.append(name)
                todo = [t for t in todo if name not in t.needs]
        startable = [t for t in todo if ready(t, by_name) and not any(n in running for n in t.needs)]
        while startable and len(running) < parallel:
            if gpus:
                picked = next_on_gpu(startable, [(by_name[n], gpu_of[n]) for n in running], gpus, -(-parallel // gpus))
                if picked is None:
                    break
                task, gpu = picked
            else:
                task, gpu = next_task(startable, [by_name[n] for n in running], parallel), None
            startable.remove(task)
            todo.remove(task)
            gpu_of[task.name] = gpu
            running[task.name] = (_start(task, folder, gpu, threads_per_process(parallel, gpus)), time.time())
            record_time(folder / "stages.csv", task.name, "started", 0.0)
            log_line(f"{'start':>11} {task.name}" + (f" on GPU {gpu}" if gpus > 1 else ""))
        if not running and todo:
            log_line(f"{len(todo)} tasks wait on failed ones; see the logs in {folder / 'logs'}")
            return failed + [t.name for t in todo]
        time.sleep(1)
    return failed


def trains_model(task: Task) -> bool:
    """`train-gan` or `train-diffusion`: a generator's training (a classifier's task kind is "train")."""
    return task.kind.startswith("train-")


def next_task(startable: list[Task], running: list[Task], parallel: int) -> Task:
    """On a CPU: the first startable task, except that the generators' trainings (hours each) keep
    one slot free for the others while any other task can start, so results arrive as they are ready
    rather than after every generator."""
    if parallel < 2:
        return startable[0]
    models = sum(trains_model(t) for t in running)
    others = [t for t in startable if not trains_model(t)]
    if others and models >= parallel - 1:
        return others[0]
    return startable[0]


def next_on_gpu(startable: list[Task], busy: list[tuple[Task, int]], gpus: int, per_gpu: int) -> tuple[Task, int] | None:
    """On GPUs: (a task, the GPU to start it on), or None to start nothing now. Generators' trainings
    share a GPU only with each other (crowded by 10 classifier trainings, the GAN slowed to 0.3 s a
    step), and while one waits for a GPU nothing else starts: so the generators train first, then
    their sets are made and the classifiers train, up to `per_gpu` processes on each GPU, least busy first."""
    load = {gpu: [t for t, on in busy if on == gpu] for gpu in range(gpus)}
    for task in startable:
        alike = [g for g in load if len(load[g]) < per_gpu and all(trains_model(t) == trains_model(task) for t in load[g])]
        if alike:
            return task, min(alike, key=lambda g: len(load[g]))
        if trains_model(task):  # it waits for a GPU, and nothing else takes one meanwhile
            return None
    return None


def threads_per_process(parallel: int, gpus: int) -> int:
    """CPU threads per process: one on a CPU (two single-thread processes out-run one two-thread
    process); on a GPU machine its cores shared among the processes."""
    return max(1, (os.cpu_count() or 1) // parallel) if gpus else 1


def _start(task: Task, folder: Path, gpu: int | None, threads: int = 1) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    log = open(log_path(folder, task.name), "a")  # noqa: SIM115 (the child writes it until it ends)
    me = os.getpid()
    return subprocess.Popen(task.argv(), stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=lambda: die_with_parent(me))


def log_path(folder: Path, name: str) -> Path:
    return folder / "logs" / (name.replace(" ", "_") + ".log")


def log_line(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


STAMP = "%Y-%m-%d %H:%M:%S"  # stages.csv's `ended` column: when the row was written (minutes only before 2026-12-06)


def record_time(path: Path, name: str, status: str, seconds: float) -> None:
    """A row of stages.csv: a task's part that ended (done, stopped, FAILED), or `started` (0 minutes)
    when a part begins, so a part that a killed runner could not record is found later."""
    new = not path.exists() or path.stat().st_size == 0  # a runner killed as it created the file left it empty
    with open(path, "a") as out:
        if new:
            out.write("task,status,minutes,machine,ended\n")
        elif ends_mid_line(path):  # a row a killed runner left half written keeps a line of its own
            out.write("\n")
        out.write(f"{name},{status},{seconds / 60:.2f},{this_machine()},{time.strftime(STAMP)}\n")


def this_machine() -> str:
    """stages.csv's `machine` column; the estimate learns only from rows a machine like this one wrote."""
    return f"{os.uname().machine} {os.cpu_count()} cores"


STAGES_COLUMNS = ["task", "status", "minutes", "machine", "ended"]


def read_stages(path: Path) -> pd.DataFrame:
    """stages.csv as written (no rows while it is missing or empty), less the rows a killed runner
    left half written without their minutes or with fields run together."""
    try:
        times = pd.read_csv(path, on_bad_lines="skip", dtype={"minutes": str})
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame({column: pd.Series(dtype=object) for column in STAGES_COLUMNS})
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ChexbalError(f"{path} is unreadable ({error}): move it aside, and the runner starts a new one") from None
    if not {"task", "status", "minutes"} <= set(times.columns):
        raise ChexbalError(f"{path} has columns {list(times.columns)}, not {STAGES_COLUMNS}: move it aside")
    times["minutes"] = pd.to_numeric(times["minutes"], errors="coerce")
    return times[times["minutes"].notna()].reindex(columns=STAGES_COLUMNS)


def finished_here(folder: Path) -> dict[str, float]:
    """Per task finished on this machine, the wall seconds of its last finish (`minutes_per_task`)."""
    times = read_stages(folder / "stages.csv")
    per_task = minutes_per_task(times[times["machine"] == this_machine()])
    return dict(zip(per_task["task"], 60 * per_task["minutes"]))


def minutes_per_task(times: pd.DataFrame) -> pd.DataFrame:
    """Each finished task's wall time: the row that says it is done plus the rows of the parts before
    it that were stopped (SIGTERM), cut off (a killed runner: `count_cut_off_parts`) or failed,
    since a stage resumes where it stopped. `started` rows count 0 minutes."""
    minutes: dict[str, float] = {}
    for task, rows in times.groupby("task", sort=False):
        parts = 0.0
        for status, spent in zip(rows["status"], rows["minutes"]):
            parts += spent
            if status == "done":
                minutes[task], parts = parts, 0.0  # a task run again after it finished counts its last run
    return pd.DataFrame(
        {"task": pd.Series(list(minutes), dtype=object), "minutes": pd.Series(list(minutes.values()), dtype=float)}
    )


def ends_mid_line(path: Path) -> bool:
    with open(path, "rb") as file:
        if file.seek(0, os.SEEK_END) == 0:
            return False
        file.seek(-1, os.SEEK_END)
        return file.read(1) != b"\n"


def count_cut_off_parts(folder: Path) -> None:
    """A runner killed outright (SIGKILL, a machine switched off at a session's end) records nothing
    for the parts it was running, and their wall time would be missing from the publication. Each task
    whose last row is `started` gets a `cut off` row: from its start to its log's last write. A task
    writes a progress line when its bar moves (a GAN's steps, a training's epoch, a generated block),
    at most one every 30 s. So up to an epoch or a block goes uncounted; a training and generation
    save where they log, so that work is lost and done again, and counted, by the part that resumes."""
    path = folder / "stages.csv"
    if not path.exists():
        return
    with open(path, newline="") as rows:
        last = {row["task"]: row for row in csv.DictReader(rows)}
    for name, row in last.items():
        log = log_path(folder, name)
        if row.get("status") != "started" or not log.exists():
            continue
        try:
            begun = time.mktime(time.strptime(row["ended"] or "", STAMP))
        except ValueError:  # a row cut off in the middle of its writing: no start to measure from
            continue
        record_time(path, name, "cut off", max(0.0, log.stat().st_mtime - begun))


def run_slurm(tasks: list[Task], folder: Path, executor) -> list[str]:
    """Waves of ready tasks, each one job array through a submitit executor (Slurm, or submitit's
    local executor in tests); returns the names of tasks that failed or could not start."""
    by_name, failed = {t.name: t for t in tasks}, set()
    while True:
        todo = [t for t in tasks if not t.done() and t.name not in failed and not set(t.needs) & failed]
        wave = [t for t in todo if ready(t, by_name)]
        if not wave:
            return sorted(failed | {t.name for t in todo})
        log_line(f"{'submit':>11} {len(wave)} tasks: {', '.join(t.name for t in wave)}")
        jobs = executor.map_array(_run_command, [t.argv() for t in wave])
        for task, job in zip(wave, jobs):
            code = job.result()
            ok = code == 0 and task.done()
            log_line(f"{'done' if ok else f'FAILED ({code})':>11} {task.name} (job {job.job_id})")
            if not ok:
                failed.add(task.name)


def _run_command(argv: list[str]) -> int:
    return subprocess.run(argv).returncode
