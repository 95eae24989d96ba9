"""Publishing a plan's report: `chexbal report` over its runs, copied to the plan's publish folder
with a page saying how it was made (the command, the machine, the code, the wall time per stage and
the tasks still to run). The folder is built beside the old one and swapped in, so a crash part-way
never leaves half a publication, and a report that fails leaves the old one as it was."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd

from chexbal import files
from chexbal.errors import ChexbalError
from chexbal.experiment.plan import Plan
from chexbal.experiment.runner import minutes_per_task, read_stages
from chexbal.experiment.tasks import CHEXBAL, Task
from chexbal.provenance import git_commit, provenance

REPORTS = Path("reports")  # `chexbal report`'s default --out


def publish(plan: Plan, tasks: list[Task], folder: Path, command: str) -> Path:
    made = render_report(plan)
    out = plan.publish
    if out is None:
        return made
    new, old = out.with_name(out.name + ".new"), out.with_name(out.name + ".old")
    shutil.rmtree(new, ignore_errors=True)
    shutil.copytree(made, new)
    stages = folder / "stages.csv"
    if stages.exists():
        plan_stages(stages, tasks).to_csv(new / "stages.csv", index=False)
    shutil.copy(plan.path, new / plan.path.name)  # the plan as it was run, beside its report
    (new / "README.md").write_text(about(plan, tasks, stages, command))
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    new.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def render_report(plan: Plan) -> Path:
    """`chexbal report` in a fresh process. A runner that has run for hours holds the code it loaded
    when it started; the page must be rendered by the code its README names (the commit now)."""
    command = [*CHEXBAL, "report", "--name", plan.name, "--dataset", plan.dataset]
    command += [arg for regimen in plan.regimens for arg in ("--regimen", f"{regimen.frac:g}")]  # unrun: gaps
    for regimen in plan.regimens:  # its runs only: another plan's runs on disk must not join the page
        seeds = ",".join(map(str, regimen.seeds))
        command += [arg for arm in regimen.arms for arg in ("--only", f"{regimen.frac:g}:{arm}:{seeds}")]
    if subprocess.run(command, check=False).returncode != 0:
        raise ChexbalError(f"the report of {plan.name} failed (its error is above): nothing was published")
    return REPORTS / plan.name


def about(plan: Plan, tasks: list[Task], stages: Path, command: str) -> str:
    done = minutes_per_task(plan_stages(stages, tasks))
    done = done.assign(stage=done["task"].str.replace(r" seed \d+$", "", regex=True))
    by_stage = done.groupby("stage", sort=False)["minutes"].agg(["count", "sum", "median"]).round(1)
    left = [t.name for t in tasks if not t.done()]
    git_commit.cache_clear()  # the commit now, which rendered the report, not the one the runner started at
    machine = provenance()
    lines = [
        f"# {plan.name}: how this report was made",
        "",
        f"[report.md](report.md) (or the self-contained [report.html](report.html)) is `chexbal report --name {plan.name}` "
        f"over the runs of `{command}`, the plan [{plan.path.name}]({plan.path.name}) as it stands in `experiments/`:",
        "",
        *[f"- {regimen_line(plan, r)}" for r in plan.regimens],
        f"- training: {training_line(plan)}; generators: {plan.pool_generator} pool generator, regimen generators "
        f"with {', '.join(f'{k} {v}' for k, v in plan.generator.items()) or 'the default recipe'}",
        *(
            [
                f"- diffusion: {plan.pool_diffusion} pool model, regimen models with "
                f"{', '.join(f'{k} {v}' for k, v in plan.diffusion.items()) or 'the default recipe'}"
            ]
            if any(a.startswith("diffusion") for r in plan.regimens for a in r.arms)
            else []
        ),
        "",
        f"Machine: {machine['machine']}; chexbal {machine['chexbal']} at commit {machine['git_commit'] or 'unknown'}; "
        f"torch {machine['torch']}.",
        f"Finished trainings by the machine that ran them: {trainings_by_machine(tasks) or 'none yet'}.",
        "",
        "## Wall time per stage (minutes, from stages.csv; a task stopped and resumed counts all its parts)",
        "",
        "| stage | runs | total | median |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {stage} | {int(r['count'])} | {r['sum']} | {r['median']} |" for stage, r in by_stage.iterrows()],
        "",
        "Tasks still to run (gaps in the report; the same command resumes them): " + (", ".join(left) if left else "none") + ".",
        "",
    ]
    return "\n".join(lines)


def plan_stages(stages: Path, tasks: list[Task]) -> pd.DataFrame:
    """stages.csv's rows of the plan's tasks. Plans of one name share the file (phantom-cpu.toml's part
    counts for phantom.toml); a 10% plan's page once counted the 1% re-run's trainings as its own."""
    times = read_stages(stages)
    return times[times["task"].isin({t.name for t in tasks})]


def trainings_by_machine(tasks: list[Task]) -> str:
    """How many finished trainings each machine ran (a lent GPU's runs join the CPU's), from the
    config.json of each selected run; compiled ones counted apart, since they drop each epoch's
    last partial batch."""
    counts: dict[str, int] = {}
    for task in tasks:
        if task.kind != "train" or not task.done():
            continue
        path = task.output.parent / Path(files.read_json(task.output)["selected"]["run"]).name / "config.json"
        config = files.read_json(path) if path.exists() else {}
        machine = config.get("provenance", {}).get("machine", "an unrecorded machine")
        where = f"{machine} ({config.get('device_used', '?')}{', compiled' if config.get('compile') else ''})"
        counts[where] = counts.get(where, 0) + 1
    return "; ".join(f"{n} on {where}" for where, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def regimen_line(plan: Plan, regimen) -> str:
    return f"{regimen.frac:.0%}: {', '.join(regimen.arms)}; seeds {', '.join(map(str, regimen.seeds))}; {regimen.epochs} epochs"


def training_line(plan: Plan) -> str:
    t = plan.training
    point = "the paper's grid" if t.get("grid") else f"{t['optimizer']}, lr {t['lr']}, batch {t['batch_size']}"
    return f"{point}, split seed {t.get('split_seed', 0)}, initial weights {t.get('weights') or 'the default'}"
