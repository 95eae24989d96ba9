"""`chexbal experiment PLAN`: the plan files, their refusals, and a whole plan run on data made here."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from chexbal.cli import app
from chexbal.errors import ChexbalError
from chexbal.experiment.plan import read_plan
from chexbal.experiment.run import Options, experiment
from chexbal.experiment.tasks import Task, plan_tasks
from chexbal.progress import bar
from chexbal.testing import make_planted

REPO = Path(__file__).resolve().parents[1]


def sizes_for(plan):
    return {f: (1000, 100) for f in {r.frac for r in plan.regimens} | {1.0}}


def tasks_of(path: Path, root: Path | None = None):
    plan = read_plan(path, root)
    return plan_tasks(plan, sizes_for(plan))


def test_the_version_1_plan_is_what_its_publication_ran(monkeypatch):
    from chexbal.data.sources import phantom

    monkeypatch.setattr(phantom, "RENDERER_VERSION", 1)  # it names version 1, and is refused on any other
    tasks = tasks_of(REPO / "docs" / "experiment-v1" / "phantom.toml")
    table2 = pd.read_csv(REPO / "docs" / "experiment-v1" / "table2.csv").drop_duplicates(["regimen", "arm"])
    published = {(f"{frac:g}", arm, seeds) for frac, arm, seeds in zip(table2["frac"], table2["arm"], table2["seeds"])}
    planned = pd.Series([tuple(t.name.split()[1:3]) for t in tasks if t.name.startswith("train ")]).value_counts()
    assert {(frac, arm, count) for (frac, arm), count in planned.items()} == published
    epochs = table2.groupby("regimen")["epochs"].first().astype(int)
    commands = {t.name: t.command for t in tasks}
    for regimen, frac in (("1%", "0.01"), ("10%", "0.1")):
        command = commands[f"train {frac} none seed 0"]
        assert command[command.index("--epochs") + 1] == str(epochs[regimen])
    assert {t.name for t in tasks if t.name.startswith("gan-eval")} == {
        "gan-eval pool 0.01",
        "gan-eval regimen 0.01",
        "gan-eval regimen 0.1",
    }


def test_a_plan_made_for_another_renderer_version_is_refused(tmp_path):
    """A published part names the phantom it was drawn by; run on another version it would overwrite
    that publication with another benchmark's numbers."""
    from chexbal.data.sources.phantom import RENDERER_VERSION

    path = tmp_path / "plan.toml"
    text = (REPO / "experiments" / "phantom.toml").read_text()
    assert f"renderer_version = {RENDERER_VERSION}" in text
    path.write_text(text.replace(f"renderer_version = {RENDERER_VERSION}", "renderer_version = 3"))
    result = CliRunner().invoke(app, ["experiment", str(path), "--dry-run"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (
        f"dataset.renderer_version 3: this plan's publication was drawn by phantom renderer version 3 and this chexbal draws {RENDERER_VERSION}"
        in result.output
    )


def test_the_chexpert_plan_is_the_fair_protocol_at_every_regimen(tmp_path):
    root = make_planted(tmp_path / "CheXpert-v1.0-small", n_patients=20)
    plan = read_plan(REPO / "experiments" / "chexpert.toml", root)
    assert [r.frac for r in plan.regimens] == [0.01, 0.1, 0.5, 1.0] and all(len(r.seeds) == 5 for r in plan.regimens)
    assert plan.training["weights"] == "imagenet" and plan.pool_generator == "train"
    names = {t.name for t in plan_tasks(plan, sizes_for(plan))}
    assert {"train-gan 1", "train-gan 0.01", "train-gan 0.1", "train-gan 0.5"} <= names
    assert {"train-diffusion 1", "train-diffusion 0.01", "train-diffusion 0.5", "train 1 diffusion-regimen seed 4"} <= names
    assert "train 1 real-extra seed 0" not in names and "train 1 gan-regimen seed 4" in names


def test_what_a_lent_gpu_runs_counts_as_done_in_the_published_plan(tmp_path, monkeypatch):
    """A lent GPU runs experiments/phantom-gpu.toml and returns its runs; merged into the CPU's
    runs/, each must be the task of the same name in phantom.toml, or the publication would train it
    again (or miss it). Its generator checks are its own: judged by its 50% `none` runs."""
    monkeypatch.chdir(tmp_path)
    gpu = tasks_of(REPO / "experiments" / "phantom-gpu.toml")
    published = {t.name: t for t in tasks_of(REPO / "experiments" / "phantom.toml")}
    shared = [t for t in gpu if not t.kind.startswith("gan-eval")]
    assert {t.name for t in shared} >= {"train 0.5 none seed 0", "train 1 diffusion seed 2", "generate diffusion 0.5"}
    assert {float(t.name.split()[1]) for t in shared if t.kind == "train"} == {0.5, 1.0}  # whole regimens, no CPU one
    assert not [t.name for t in shared if t.kind.startswith("train-")]  # a bare GPU trains no generator
    for task in shared:
        assert task.output == published[task.name].output and task.epochs == published[task.name].epochs, task.name
    assert all("--compile" in t.command for t in shared if t.kind == "train")
    assert not any("--compile" in t.command for t in published.values())


def test_the_cpu_plan_runs_the_published_plans_cpu_part_1_percent_first(tmp_path, monkeypatch):
    """experiments/phantom-cpu.toml runs phantom.toml's 1% and 10% regimens on a CPU, 1% first: every
    task must be phantom.toml's, with the same output and command, so what it runs is published by
    phantom.toml, and it must publish nothing itself (its report would lack 50% and 100% and name
    another plan than the published one)."""
    monkeypatch.chdir(tmp_path)
    cpu = read_plan(REPO / "experiments" / "phantom-cpu.toml")
    published = {t.name: t for t in tasks_of(REPO / "experiments" / "phantom.toml")}
    tasks = plan_tasks(cpu, sizes_for(cpu))
    assert cpu.publish is None and cpu.name == "experiment"  # its wall times join the published plan's
    on_gpu = {n for n in published if re.search(r"(?<!seed) (0\.5|1)( |$)", n)} - {"prepare 1"}  # real-extra's pool
    assert {t.name for t in tasks} == set(published) - on_gpu
    trainings = [t.name.split()[1] for t in tasks if t.kind == "train"]
    assert trainings.index("0.1") == trainings.count("0.01")  # every 1% training is queued before 10%
    for task in tasks:
        assert (task.output, task.command) == (published[task.name].output, published[task.name].command), task.name


def test_the_10_percent_publication_runs_nothing_the_cpu_plan_does_not(tmp_path, monkeypatch):
    """experiments/phantom-10pct.toml publishes the 10% regimen alone, from the runs phantom-cpu.toml
    makes: every task must be one of those, with the same output and command (else publishing it
    would wait on, or train, something else), and it must publish apart from the whole plan's page."""
    monkeypatch.chdir(tmp_path)
    interim = read_plan(REPO / "experiments" / "phantom-10pct.toml")
    cpu = {t.name: t for t in tasks_of(REPO / "experiments" / "phantom-cpu.toml")}
    tasks = plan_tasks(interim, sizes_for(interim))
    assert interim.name == "experiment" and interim.publish == Path("docs/experiment-v5-10pct")
    assert {t.name for t in tasks if t.kind == "train"} == {n for n in cpu if n.startswith("train 0.1 ")} | {
        "train 0.01 none seed 0",
        "train 0.01 none seed 1",
    }  # at 1% only the judges of its generators
    for task in tasks:
        assert (task.output, task.command) == (cpu[task.name].output, cpu[task.name].command), task.name


def test_trainings_finished_here_travel_to_a_gpu_as_markers_it_skips(tmp_path, monkeypatch):
    """scripts/gpu_state.py packs each finished training's selection and metrics (no checkpoint);
    unpacked on a bare machine they make the GPU plan skip those tasks, and only those."""
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    monkeypatch.chdir(here)
    tasks = {t.name: t for t in tasks_of(REPO / "experiments" / "phantom-gpu.toml")}
    for name, epochs in (("train 0.5 none seed 0", 10), ("train 0.5 oversample seed 0", None)):
        run = tasks[name].output.parent / "lr0.001-bs32-adam-seed0"
        run.mkdir(parents=True)
        (run / "best.pt").write_bytes(b"weights")
        tasks[name].output.write_text(json.dumps({"selected": {"run": str(run)}}))
        if epochs:  # the other run is still training: no metrics.json yet
            (run / "metrics.json").write_text(json.dumps({"epochs": epochs}))
    state = tmp_path / "done.tar.gz"
    packed = subprocess.run(
        [sys.executable, REPO / "scripts" / "gpu_state.py", "pack", here, state], capture_output=True, text=True
    )
    assert packed.returncode == 0 and "1 finished trainings" in packed.stdout, packed.stderr
    subprocess.run(["tar", "xzf", state], cwd=there, check=True)
    monkeypatch.chdir(there)
    assert [name for name, task in tasks.items() if task.done()] == ["train 0.5 none seed 0"]
    assert not list(there.rglob("*.pt"))


def test_runs_a_gpu_returns_are_added_without_touching_any_run_here(tmp_path, monkeypatch):
    """A run this machine had started (no metrics.json yet) must not receive the GPU's files of the
    same run: its folder and the GPU's selection of it are skipped whole; a run only the GPU made
    arrives with its selection, and then counts as done."""
    gpu, here = tmp_path / "gpu", tmp_path / "here"
    tasks = {t.name: t for t in tasks_of(REPO / "experiments" / "phantom-gpu.toml")}
    for root, names in ((gpu, ("train 0.5 none seed 0", "train 0.5 oversample seed 0")), (here, ("train 0.5 none seed 0",))):
        root.mkdir()
        monkeypatch.chdir(root)
        for name in names:
            run = tasks[name].output.parent / "lr0.001-bs32-adam-seed0"
            run.mkdir(parents=True)
            (run / "history.csv").write_text(f"made on {root.name}")
            if root == gpu:
                tasks[name].output.write_text(json.dumps({"selected": {"run": str(run)}}))
                (run / "metrics.json").write_text(json.dumps({"epochs": 10}))
    archive = tmp_path / "runs.tar.gz"
    subprocess.run(["tar", "czf", archive, "runs"], cwd=gpu, check=True)
    merged = subprocess.run(
        [sys.executable, REPO / "scripts" / "gpu_state.py", "merge", archive, here], capture_output=True, text=True
    )
    assert merged.returncode == 0 and "1 run folders added" in merged.stdout and "1 skipped" in merged.stdout, merged.stderr
    assert [name for name, task in tasks.items() if task.done()] == ["train 0.5 oversample seed 0"]
    started = tasks["train 0.5 none seed 0"].output.parent / "lr0.001-bs32-adam-seed0"
    assert (
        sorted(p.name for p in started.iterdir()) == ["history.csv"] and (started / "history.csv").read_text() == "made on here"
    )
    assert not tasks["train 0.5 none seed 0"].output.exists()
    (tmp_path / "broken.tar.gz").write_bytes(b"not a tar")
    broken = subprocess.run(
        [sys.executable, REPO / "scripts" / "gpu_state.py", "merge", tmp_path / "broken.tar.gz", here],
        capture_output=True,
        text=True,
    )
    assert broken.returncode == 1 and "not a readable runs archive" in broken.stderr and "Traceback" not in broken.stderr


def test_a_compiled_plan_compiles_its_trainings(tmp_path, monkeypatch):
    """training.compile = true reaches every training's config through `chexbal sweep`; anything but
    true or false is refused in one line."""
    from chexbal.classify import sweep

    monkeypatch.chdir(tmp_path)
    task = next(t for t in tasks_of(REPO / "experiments" / "phantom-gpu.toml") if t.kind == "train")
    seen = []
    monkeypatch.setattr(sweep, "sweep", lambda configs, **_: seen.extend(configs) or [])
    assert CliRunner().invoke(app, task.command).exit_code == 0
    assert [c.compile for c in seen] == [True]
    path = tmp_path / "plan.toml"
    path.write_text((REPO / "experiments" / "phantom-gpu.toml").read_text().replace("compile = true", 'compile = "yes"'))
    result = CliRunner().invoke(app, ["experiment", str(path), "--dry-run"])
    assert result.exit_code == 2 and "training.compile: true" in result.output and "Traceback" not in result.output


def test_a_task_waits_for_what_it_needs():
    needs = {t.name: t.needs for t in tasks_of(REPO / "experiments" / "phantom.toml")}
    assert needs["train 0.1 gan seed 2"] == ("prepare 0.1", "generate pool 0.1")
    assert needs["train 0.1 real-extra seed 0"] == ("prepare 0.1", "prepare 1")
    assert needs["generate regimen 0.1"] == ("prepare 0.1", "train-gan 0.1")
    assert needs["gan-eval regimen 0.1"] == ("train 0.01 none seed 0", "train 0.01 none seed 1", "train-gan 0.1")


def test_the_smallest_regimen_comes_first_with_its_generator_checks():
    """On a CPU, tasks start in this order: the 1% results and checks must not wait behind the 10%
    regimen's generators (its diffusion set alone takes hours)."""
    order = [t.name for t in tasks_of(REPO / "experiments" / "phantom.toml")]
    last_of_1pct = max(order.index(n) for n in order if n.startswith(("train 0.01", "gan-eval")) and n.endswith("0.01"))
    first_of_10pct = min(order.index(n) for n in order if n.endswith(" 0.1") and not n.startswith("prepare"))
    assert last_of_1pct < first_of_10pct
    assert order.index("train-diffusion 0.01") < order.index("train 0.01 none seed 0")
    assert order.index("train 0.01 diffusion seed 4") < order.index("gan-eval diffusion 0.01") < order.index("train-gan 0.1")


PLAN = """
name = "tiny"
[dataset]
source = "chexpert"
root = "{root}"
size = 32
name = "tiny"
[training]
lr = 0.001
batch_size = 16
optimizer = "adam"
[generator]
pool = "train"
steps = 3
batch_size = 8
base = 8
[evaluation]
judge_frac = 1
judge_seeds = [0, 1]
images = 40
[[regimen]]
frac = 1
arms = {arms}
seeds = 2
epochs = 1
"""


def write_plan(where: Path, root: Path, arms=("none", "gan-regimen")) -> Path:
    text = PLAN.format(root=root, arms=json.dumps(list(arms)))
    path = where / "plan.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("arms", "old", "new", "message"),
    [
        (("none", "flip"), "", "", "unknown arm 'flip'"),
        (("none", "real-extra"), "", "", "real-extra cannot run at frac 1"),
        (("none",), "optimizer = ", "colour = ", "training.colour: unknown key"),
        (("none",), 'root = "', 'root = "/nowhere" # "', "dataset.root /nowhere is not a folder"),
        (("gan-regimen",), "judge_seeds = [0, 1]", "judge_seeds = [7]", "the judges (none at 1, seeds [7]) are not runs"),
        (
            ("none", "gan-regimen-seed1"),
            "[generator]",
            "[generator]\nseed = 1",
            "generator.seed 1 is the second regimen GAN's",
        ),
        (
            ("none", "diffusion"),
            "[evaluation]",
            "[diffusion]\nwidths = [8, 16, 32, 64, 128]\n[evaluation]",
            "diffusion.widths: 32 px",
        ),
    ],
)
def test_an_impossible_plan_is_refused_before_anything_runs(tmp_path, monkeypatch, arms, old, new, message):
    monkeypatch.chdir(tmp_path)
    path = write_plan(tmp_path, make_planted(tmp_path / "CheXpert-v1.0-small", n_patients=20), arms)
    path.write_text(path.read_text().replace(old, new, 1) if old else path.read_text())
    result = CliRunner().invoke(app, ["experiment", str(path), "--dry-run"])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


def test_a_dry_run_lists_the_tasks_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_plan(tmp_path, make_planted(tmp_path / "CheXpert-v1.0-small", n_patients=20))
    monkeypatch.setattr("chexbal.experiment.run.os.getloadavg", lambda: (9.0, 9.0, 9.0))
    result = CliRunner().invoke(app, ["experiment", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "8 to run" in result.output and "train 1 gan-regimen seed 1" in result.output
    assert "the machine was busy while measuring (load 9.0" in result.output  # so the times read as too long
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


def test_publishing_only_measures_nothing(tmp_path, monkeypatch, capsys):
    from chexbal.experiment import run

    monkeypatch.chdir(tmp_path)
    plan = read_plan(write_plan(tmp_path, make_planted(tmp_path / "CheXpert-v1.0-small", n_patients=20)))
    monkeypatch.setattr(run, "measure", lambda plan: pytest.fail("--publish-only measured throughput"))
    run.show_plan(plan, plan_tasks(plan, sizes_for(plan)), sizes_for(plan), Options(publish_only=True))
    assert "8 to run" in capsys.readouterr().out


def test_a_report_that_fails_publishes_nothing_and_leaves_the_old_publication(tmp_path, monkeypatch, capfd):
    from chexbal.experiment.publish import publish

    monkeypatch.chdir(tmp_path)
    path = write_plan(tmp_path, make_planted(tmp_path / "CheXpert-v1.0-small", n_patients=20))
    path.write_text(path.read_text().replace('name = "tiny"\n', 'name = "tiny"\npublish = "published"\n', 1))
    plan = read_plan(path)
    (tmp_path / "published").mkdir()
    (tmp_path / "published" / "report.md").write_text("the last good report")
    with pytest.raises(ChexbalError, match="the report of tiny failed"):
        publish(
            plan, plan_tasks(plan, sizes_for(plan)), tmp_path / "runs" / "experiment" / "tiny", "chexbal experiment plan.toml"
        )
    assert "error: no prepared dataset at data/tiny" in capfd.readouterr().err  # the report's own line, from its process
    assert (tmp_path / "published" / "report.md").read_text() == "the last good report"


def test_the_published_report_is_told_the_plans_regimens_so_unrun_ones_are_gaps(monkeypatch):
    """The report sees only what ran; the publication passes it the plan's regimens (`--regimen`), so
    50% and 100% before a GPU has run them are named as gaps on the page, not left out silently."""
    from chexbal.experiment import publish

    commands = []
    monkeypatch.setattr(
        publish.subprocess, "run", lambda command, check: commands.append(command) or types.SimpleNamespace(returncode=0)
    )
    publish.render_report(read_plan(REPO / "experiments" / "phantom.toml"))
    asked = [commands[0][i + 1] for i, arg in enumerate(commands[0]) if arg == "--regimen"]
    assert asked == ["0.01", "0.1", "0.5", "1"]


def test_the_diffusion_arms_train_their_models_with_the_plans_recipe_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_plan(
        tmp_path, make_planted(tmp_path / "CheXpert-v1.0-small", n_patients=20), ("none", "diffusion", "diffusion-regimen")
    )
    text = path.read_text().replace("frac = 1\n", "frac = 0.5\n").replace("judge_frac = 1", "judge_frac = 0.5")
    path.write_text(text.replace("[evaluation]", "[diffusion]\nsteps = 7\nwidths = [8, 16]\n[evaluation]"))
    tasks = {t.name: t for t in tasks_of(path)}
    assert tasks["generate diffusion 0.5"].needs == ("prepare 0.5", "train-diffusion 1")
    assert tasks["generate diffusion-regimen 0.5"].needs == ("prepare 0.5", "train-diffusion 0.5")
    assert tasks["train 0.5 diffusion-regimen seed 1"].needs == ("prepare 0.5", "generate diffusion-regimen 0.5")
    command = " ".join(tasks["train-diffusion 0.5"].command)
    assert "--steps 7" in command and "--widths 8,16" in command and "--split-seed 0" in command
    assert {"gan-eval diffusion 0.5", "gan-eval diffusion-regimen 0.5"} <= set(tasks)
    result = CliRunner().invoke(app, ["experiment", str(path), "--dry-run"])  # the estimate measures the model here
    assert result.exit_code == 0 and "train-diffusion 0.5" in result.output, result.output


def test_a_second_regimen_gan_trains_with_its_own_seed_into_its_own_folder_and_serves_its_own_arm(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = make_planted(tmp_path / "CheXpert-v1.0-small", n_patients=20)
    path = write_plan(tmp_path, root, ("none", "gan-regimen", "gan-regimen-seed1"))
    path.write_text(path.read_text().replace("frac = 1\n", "frac = 0.5\n").replace("judge_frac = 1", "judge_frac = 0.5"))
    tasks = {t.name: t for t in tasks_of(path)}
    first, second = tasks["train-gan 0.5"], tasks["train-gan 0.5 seed 1"]
    assert "--seed" not in first.command and second.command[second.command.index("--seed") + 1] == "1"
    assert first.output.parent.name == "frac-0.5" and second.output.parent.name == "frac-0.5-seed1"
    made = tasks["generate regimen-seed1 0.5"]
    assert made.needs == ("prepare 0.5", "train-gan 0.5 seed 1")
    assert made.command[made.command.index("--checkpoint") + 1] == str(second.output.parent / "generator.pt")
    assert tasks["train 0.5 gan-regimen-seed1 seed 0"].needs == ("prepare 0.5", "generate regimen-seed1 0.5")
    judged = tasks["gan-eval regimen-seed1 0.5"]
    assert "train-gan 0.5 seed 1" in judged.needs and str(second.output.parent / "generator.pt") in judged.command


def test_a_shipped_diffusion_pool_model_is_used_not_trained_and_refused_when_absent(tmp_path, monkeypatch):
    from chexbal.experiment import plan as plan_module
    from chexbal.generators import generate

    path = tmp_path / "plan.toml"
    path.write_text((REPO / "experiments" / "phantom.toml").read_text())  # diffusion.pool = "shipped"
    monkeypatch.setattr(generate, "SHIPPED_DIFFUSION", tmp_path / "absent.pt")
    with pytest.raises(plan_module.ChexbalError, match="diffusion.pool 'shipped': .*absent.pt is missing"):
        read_plan(path)
    (tmp_path / "absent.pt").write_bytes(b"")
    tasks = {t.name: t for t in tasks_of(path)}
    assert "train-diffusion 1" not in tasks and "--checkpoint" not in tasks["generate diffusion 0.01"].command
    assert tasks["generate diffusion 0.01"].needs == ("prepare 0.01",)
    judged = tasks["gan-eval diffusion 0.01"]
    assert judged.command[judged.command.index("--checkpoint") + 1] == str(tmp_path / "absent.pt")
    assert "train-diffusion 1" not in judged.needs
    for name, images in (("gan-eval diffusion 0.01", "300"), ("gan-eval pool 0.01", "2000")):
        assert tasks[name].command[tasks[name].command.index("--n") + 1] == images
    path.write_text(path.read_text().replace("diffusion_images = 300", ""))  # absent: as many as the GANs'
    judged = {t.name: t for t in tasks_of(path)}["gan-eval diffusion 0.01"]
    assert judged.command[judged.command.index("--n") + 1] == "2000"


def test_on_a_cpu_the_generators_training_leaves_a_slot_for_the_trainings():
    from chexbal.experiment.runner import next_task

    tasks = {t.name: t for t in tasks_of(REPO / "experiments" / "phantom.toml")}
    gan_1, gan_10 = tasks["train-gan 0.01"], tasks["train-gan 0.1"]
    training = tasks["train 0.01 none seed 0"]
    assert next_task([gan_1, training], [], parallel=2) is gan_1
    assert next_task([gan_10, training], [gan_1], parallel=2) is training
    assert next_task([gan_10], [gan_1], parallel=2) is gan_10  # nothing else can start: no slot idles
    assert next_task([gan_10, training], [gan_1], parallel=3) is gan_10


def test_on_a_gpu_the_generators_train_first_among_themselves_then_the_trainings_share_the_least_busy_gpu():
    from chexbal.experiment.run import Options, processes_at_once
    from chexbal.experiment.runner import next_on_gpu

    tasks = {t.name: t for t in tasks_of(REPO / "experiments" / "phantom.toml")}
    gan_1, gan_10 = tasks["train-gan 0.01"], tasks["train-gan 0.1"]
    runs = [tasks[f"train 0.01 none seed {s}"] for s in range(5)] + [tasks[f"train 0.01 oversample seed {s}"] for s in range(5)]
    assert next_on_gpu([gan_1, runs[0]], [], gpus=1, per_gpu=8) == (gan_1, 0)
    assert next_on_gpu([gan_10, runs[0]], [(gan_1, 0)], gpus=1, per_gpu=8) == (gan_10, 0)  # generators share
    assert next_on_gpu([runs[0]], [(gan_1, 0)], gpus=1, per_gpu=8) is None  # but not with a classifier
    assert next_on_gpu([gan_10, runs[0]], [(gan_1, 0)], gpus=1, per_gpu=1) is None
    assert next_on_gpu([gan_10, runs[1]], [(runs[0], 0)], gpus=1, per_gpu=8) is None  # it waits for the GPU to empty
    assert next_on_gpu([runs[7]], [(r, 0) for r in runs[:7]], gpus=1, per_gpu=8) == (runs[7], 0)
    assert next_on_gpu([runs[8]], [(r, 0) for r in runs[:8]], gpus=1, per_gpu=8) is None
    assert next_on_gpu([runs[0]], [(gan_1, 0)], gpus=2, per_gpu=8) == (runs[0], 1)
    assert next_on_gpu([runs[2]], [(runs[0], 0), (runs[1], 0), (gan_1, 1)], gpus=3, per_gpu=8) == (runs[2], 2)
    assert next_on_gpu([gan_10], [(runs[0], 0)], gpus=2, per_gpu=8) == (gan_10, 1)
    assert processes_at_once(Options(), gpus=1, size=64) == 8 and processes_at_once(Options(), gpus=2, size=224) == 4
    assert processes_at_once(Options(), gpus=0, size=64) == 2 and processes_at_once(Options(parallel=3), gpus=1, size=64) == 3


def results(where: Path) -> dict:
    metrics = sorted((where / "runs" / "tiny").glob("frac-1/*/*/metrics.json"))
    return {str(m.relative_to(where)): json.loads(m.read_text())["test"]["auc"] for m in metrics}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny")
    root = make_planted(base / "CheXpert-v1.0-small", n_patients=60, target_rate=0.3)
    return base, write_plan(base, root)


@pytest.fixture
def unpublished(monkeypatch):
    """A runner in this process that publishes nothing: publication is a report in its own process
    (about 20 s here), which the whole-plan test's runner processes cover."""
    from chexbal.experiment import run

    monkeypatch.setattr(run, "publish", lambda plan, tasks, folder, command: folder)


def run_plan(where: Path, plan: Path, *extra: str) -> subprocess.Popen:
    """The runner in its own process; the estimate (tested on its own) would measure throughput for about 30 s."""
    command = [sys.executable, "-m", "chexbal.cli", "experiment", str(plan), "--no-estimate", *extra]
    return subprocess.Popen(command, cwd=where, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_a_whole_plan_runs_resumes_and_skips_what_is_done(tiny, tmp_path, monkeypatch, unpublished):
    base, plan = tiny
    whole = base / "whole"
    whole.mkdir()
    done = run_plan(whole, plan)
    output = done.communicate(timeout=900)[0]
    assert done.returncode == 0, output
    assert (whole / "reports" / "tiny" / "report.html").exists()
    assert (whole / "runs" / "tiny" / "gan-eval-regimen-1.json").exists()
    first = results(whole)
    assert len(first) == 4  # 2 arms x 2 seeds
    assert (whole / "reports" / "tiny" / "report.md").exists()  # rendered by `chexbal report` in its own process
    stages = (whole / "runs" / "experiment" / "tiny" / "stages.csv").read_text()
    monkeypatch.chdir(whole)  # run again, in this process and unpublished: nothing re-runs
    assert experiment(plan, Options(estimate=False)) == []
    assert (whole / "runs" / "experiment" / "tiny" / "stages.csv").read_text() == stages  # nothing re-ran

    # The plan with its seed-1 trainings and the generator check still to do (the data and the
    # generator's tasks done, as copied), killed part-way through them and resumed.
    killed = tmp_path / "killed"
    shutil.copytree(whole, killed, ignore=shutil.ignore_patterns("*seed1*", "gan-eval-*", "reports", "*.lock"))
    runner = run_plan(killed, plan, "--parallel", "1")
    deadline = time.time() + 600
    while not list((killed / "runs" / "tiny").glob("frac-1/*/*seed1/metrics.json")) and time.time() < deadline:
        time.sleep(0.5)
    os.kill(runner.pid, signal.SIGKILL)  # part-way: one run finished, the other not started or half done
    runner.wait()
    assert len(results(killed)) == 3
    resumed = run_plan(killed, plan)
    assert resumed.wait(timeout=900) == 0, resumed.stdout.read()
    assert results(killed) == first  # keyed by paths relative to each plan folder
    assert (killed / "runs" / "tiny" / "gan-eval-regimen-1.json").exists()


@pytest.mark.slow
def test_slurm_waves_through_submitits_local_executor(tiny, tmp_path, monkeypatch, unpublished):
    import submitit

    base, _ = tiny
    monkeypatch.chdir(tmp_path)
    plan = write_plan(tmp_path, base / "CheXpert-v1.0-small", arms=("none",))
    executor = submitit.LocalExecutor(folder=tmp_path / "submitit")
    executor.update_parameters(timeout_min=60)  # a shared CI machine can be slow
    left = experiment(plan, Options(launcher="slurm", estimate=False, slurm_executor=executor))
    assert left == [] and len(results(tmp_path)) == 2
    assert experiment(plan, Options(launcher="slurm", estimate=False, slurm_executor=executor)) == []


def test_a_training_counts_as_done_only_for_the_plans_epochs(tmp_path, monkeypatch):
    """Run folders do not name their epochs, so a 5-epoch run must not stand in for a 10-epoch task."""
    monkeypatch.chdir(tmp_path)
    task = next(t for t in tasks_of(REPO / "experiments" / "phantom.toml") if t.name == "train 0.1 none seed 0")
    assert not task.done()
    run = task.output.parent / "lr0.001-bs32-adam-seed0"
    run.mkdir(parents=True)
    task.output.write_text(json.dumps({"selected": {"run": str(run)}}))
    for epochs, done in ((task.epochs + 5, False), (task.epochs, True)):
        (run / "metrics.json").write_text(json.dumps({"epochs": epochs}))
        assert task.done() is done


def test_a_started_generator_is_estimated_on_the_steps_it_has_left(tmp_path, monkeypatch):
    """A GAN resumed at step 1,745 of 5,250 was once estimated as if it started afresh."""
    from chexbal.experiment.estimate import Rates

    monkeypatch.chdir(tmp_path)
    task = next(t for t in tasks_of(REPO / "experiments" / "phantom.toml") if t.name == "train-gan 0.01")
    rates = Rates(prepare=1, train=1, score=1, judge=1, gan_step=2.0, generate=1, diffusion_step=1, diffusion_generate=1)
    assert rates.seconds(task, 0) == task.steps / 2.0
    task.output.parent.mkdir(parents=True)
    task.output.write_text(json.dumps({"steps": task.steps - 100}))  # the checkpoint's card
    assert rates.seconds(task, 0) == 100 / 2.0 and not task.done()


def test_a_generator_check_is_priced_by_what_gan_eval_does(tmp_path, monkeypatch):
    """gan-eval was once priced as one judge scoring 3 x n images (0.8 min), and took 4.8 min: it
    draws 2.5 x n images, both judges score the test set, the n images and the pairs, and on a
    phantom the first judge also scores n rendered phantoms."""
    from chexbal.experiment.estimate import Rates

    monkeypatch.chdir(tmp_path)
    task = next(t for t in tasks_of(REPO / "experiments" / "phantom.toml") if t.name == "gan-eval regimen 0.01")
    assert "--second-judge" in task.command
    n, test = task.work, 1000
    rates = Rates(prepare=4, train=1, score=1000, judge=2, gan_step=1, generate=10, diffusion_step=1, diffusion_generate=1)
    judged = 2 * (test + 2.5 * n)
    assert rates.seconds(task, test) == 2.5 * n / 10 + judged / 2
    assert rates.seconds(task, test, phantom=True) == 2.5 * n / 10 + (judged + n) / 2 + n / 4
    at = task.command.index("--second-judge")
    one_judge = dataclasses.replace(task, command=task.command[:at] + task.command[at + 2 :])
    assert rates.seconds(task, test) - rates.seconds(one_judge, test) == (test + 2.5 * n) / 2


@pytest.mark.skipif(sys.version_info < (3, 11), reason="python -P needs 3.11")
def test_a_task_runs_this_chexbal_not_a_checkout_in_the_working_directory(tmp_path):
    """A runner started beside another checkout once rendered a report with that checkout's code."""
    from chexbal.experiment.tasks import CHEXBAL

    (tmp_path / "chexbal").mkdir()
    (tmp_path / "chexbal" / "__init__.py").write_text("")
    (tmp_path / "chexbal" / "cli.py").write_text("raise SystemExit(97)\n")
    result = subprocess.run([*CHEXBAL, "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and "prepare" in result.stdout


def test_a_task_log_shows_progress_while_the_work_runs(capsys):
    """A task's log is a file, where rich draws no bar until the end: lines instead, rate-limited."""
    with bar() as progress:
        task = progress.add_task("train none", total=3, note="")
        for loss in ("0.300", "0.200", "0.100"):
            progress.update(task, advance=1, note=f"loss {loss}")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("train none 1/3 loss 0.300 (0:00 elapsed)")
    assert lines[1].startswith("train none 3/3 loss 0.100")  # the last always; 2/3 came too soon
    assert not any("2/3" in line for line in lines)
    with bar(disable=True) as quiet:
        quiet.update(quiet.add_task("train none", total=1, note=""), advance=1)
    assert capsys.readouterr().err == ""


def test_a_task_stopped_part_way_counts_all_its_parts_in_the_published_wall_times(tmp_path, monkeypatch):
    """A generator stopped at a session's end and resumed in the next once showed only its last part
    (16.8 of about 80 minutes): the runner now records the stopped part, and the publication sums them."""
    from chexbal.experiment import runner

    class Sleeper(Task):
        def argv(self):
            return [sys.executable, "-c", "import time; time.sleep(60)"]

    task = Sleeper("train-gan 0.01", [], tmp_path / "never", "train-gan", 1.0)

    def stop(_seconds):  # Ctrl-C while the task runs
        raise KeyboardInterrupt

    # The runner's clock only: patching time.sleep for the whole process hit whatever else slept
    # meanwhile, and once (a full run on a loaded machine) a Ctrl-C escaped and ended the suite.
    clock = types.SimpleNamespace(time=time.time, strftime=time.strftime, sleep=stop)
    monkeypatch.setattr(runner, "time", clock)
    with pytest.raises(KeyboardInterrupt):
        runner.run_local([task], 1, tmp_path / "plan")
    times = pd.read_csv(tmp_path / "plan" / "stages.csv")
    assert list(times["status"]) == ["started", "stopped"] and set(times["task"]) == {"train-gan 0.01"}

    rows = [("train-gan 0.01", "stopped", 60.0), ("train 0.01 none seed 0", "done", 5.0), ("train-gan 0.01", "FAILED (1)", 1.0)]
    rows += [("train-gan 0.01", "done", 20.0), ("prepare 0.01", "stopped", 2.0)]
    minutes = runner.minutes_per_task(pd.DataFrame(rows, columns=["task", "status", "minutes"])).set_index("task")["minutes"]
    assert minutes.to_dict() == {"train-gan 0.01": 81.0, "train 0.01 none seed 0": 5.0}  # unfinished tasks are not listed
    only_stopped = pd.DataFrame([("prepare 0.01", "stopped", 2.0)], columns=["task", "status", "minutes"])
    for times in (only_stopped, only_stopped.iloc[:0]):  # nothing finished yet: the publication's table is empty
        assert "| stage | runs | total | median |" in about_times(times, tmp_path)


def test_a_part_cut_off_with_its_runner_is_counted_from_its_log(tmp_path):
    """A runner killed outright (a machine switched off at a session's end) records no end for the
    parts it ran: the next runner counts each from its `started` row to its log's last write."""
    from chexbal.experiment import runner

    folder = tmp_path / "plan"
    (folder / "logs").mkdir(parents=True)
    begun = time.time() - 600
    rows = [("train-gan 0.1", "started", 0.0, begun), ("train 0.1 none seed 0", "started", 0.0, begun)]
    rows += [("train 0.1 none seed 0", "done", 9.5, begun + 570)]  # ended normally: nothing to add
    with open(folder / "stages.csv", "w") as out:
        out.write("task,status,minutes,machine,ended\n")
        out.writelines(f"{t},{s},{m},x86_64 2 cores,{time.strftime(runner.STAMP, time.localtime(w))}\n" for t, s, m, w in rows)
    for name in ("train-gan 0.1", "train 0.1 none seed 0"):
        runner.log_path(folder, name).write_text("step 100\n")
    os.utime(runner.log_path(folder, "train-gan 0.1"), (begun + 240, begun + 240))  # its last line, 4 min in
    with open(folder / "stages.csv", "a") as out:  # a row the killed runner left half written is passed over
        out.write("train 0.1 oversample seed 0,started,0.00,x86_64 2 cores,2026-12-0")
    runner.log_path(folder, "train 0.1 oversample seed 0").write_text("epoch 1\n")
    runner.count_cut_off_parts(folder)
    runner.count_cut_off_parts(folder)  # once only: the part now ends with its `cut off` row
    times = pd.read_csv(folder / "stages.csv")
    cut = times[times["status"] == "cut off"]
    assert list(cut["task"]) == ["train-gan 0.1"] and abs(cut["minutes"].iloc[0] - 4.0) < 0.05
    times.loc[len(times)] = ["train-gan 0.1", "done", 80.0, "x86_64 2 cores", ""]
    assert runner.minutes_per_task(times).set_index("task")["minutes"].round(1).to_dict() == {
        "train 0.1 none seed 0": 9.5,
        "train-gan 0.1": 84.0,
    }


def test_the_estimate_is_corrected_by_how_long_the_plans_finished_tasks_took_here(tmp_path, monkeypatch):
    """Rates measured for seconds beside other work priced a GAN at 73 min that took 104: the tasks
    finished here (all parts since their last finish, on this kind of machine) correct their kind."""
    from chexbal.experiment import runner
    from chexbal.experiment.estimate import corrections

    folder = tmp_path / "plan"
    folder.mkdir()
    here, there = runner.this_machine(), "aarch64 64 cores"
    rows = [
        ("train-gan 0.1", "stopped", 30.0, here),
        ("train-gan 0.1", "cut off", 10.0, here),
        ("train-gan 0.1", "done", 60.0, here),  # stopped and resumed: 100 min
        ("train 0.1 none seed 0", "done", 99.0, here),
        ("train 0.1 none seed 0", "done", 20.0, here),  # done again from scratch: its new 20 min
        ("train 0.1 none seed 1", "done", 1.0, there),  # another machine's time says nothing here
        ("train 0.1 gan seed 0", "started", 0.0, here),  # not finished
    ]
    with open(folder / "stages.csv", "w") as out:
        out.write("task,status,minutes,machine,ended\n")
        out.writelines(f"{t},{s},{m},{w},2026-12-06 18:00:00\n" for t, s, m, w in rows)
        out.write("train 0.1 none seed 2,done,3")  # half written by a killed runner
    finished = runner.finished_here(folder)
    assert {name: seconds / 60 for name, seconds in finished.items()} == {"train-gan 0.1": 100.0, "train 0.1 none seed 0": 20.0}

    monkeypatch.chdir(tmp_path)
    made = tmp_path / "made"
    made.write_text("")
    tasks = [
        Task("train-gan 0.1", [], made, "train-gan", 5000),
        Task("train 0.1 none seed 0", [], made, "train", 1000),
        Task("train 0.1 none seed 1", [], made, "train", 1000),
        Task("train 0.1 gan seed 0", [], tmp_path / "not made", "train", 1000),
    ]
    price = {"train-gan 0.1": 80 * 60, "train 0.1 none seed 0": 25 * 60}
    factors = corrections([t for t in tasks if t.done()], finished, lambda task: price[task.name])
    assert factors == {"train-gan": (100 / 80, 1), "train": (20 / 25, 1)}


def test_a_damaged_stages_file_is_one_clear_error_and_an_empty_one_gets_its_header(tmp_path):
    """stages.csv feeds the estimate and the publication: a file of other columns is named, not a
    KeyError; one a runner killed as it created it left empty is written with its header again."""
    from chexbal.experiment import runner

    path = tmp_path / "stages.csv"
    path.write_text("")
    assert runner.finished_here(tmp_path) == {}
    runner.record_time(path, "prepare 0.01", "done", 30.0)
    assert runner.finished_here(tmp_path) == {"prepare 0.01": 30.0}
    path.write_text("stage,seconds\nprepare,3\n")
    with pytest.raises(ChexbalError, match="stages.csv has columns"):
        runner.finished_here(tmp_path)


def test_a_publication_says_which_machine_ran_its_trainings(tmp_path, monkeypatch):
    """Runs a lent GPU returned join the CPU's: the publication's page counts the finished trainings
    per machine, compiled ones apart, and leaves out a run still training."""
    from chexbal.experiment.publish import trainings_by_machine

    monkeypatch.chdir(tmp_path)
    tasks = [t for t in tasks_of(REPO / "experiments" / "phantom.toml") if t.kind == "train"][:4]
    machines = [("Xeon, x86_64", "cpu", False), ("Xeon, x86_64", "cpu", False), ("NVIDIA H200", "cuda", True), None]
    for task, machine in zip(tasks, machines):
        run = task.output.parent / f"run-{task.name.replace(' ', '-')}"
        run.mkdir(parents=True)
        task.output.write_text(json.dumps({"selected": {"run": str(run)}}))
        (run / "metrics.json").write_text(json.dumps({"epochs": task.epochs if machine else task.epochs - 1}))
        name, device, compiled = machine or ("Xeon, x86_64", "cpu", False)
        (run / "config.json").write_text(
            json.dumps({"provenance": {"machine": name}, "device_used": device, "compile": compiled})
        )
    assert trainings_by_machine(tasks) == "2 on Xeon, x86_64 (cpu); 1 on NVIDIA H200 (cuda, compiled)"
    nothing = pd.DataFrame(columns=["task", "status", "minutes"])
    (tmp_path / "elsewhere").mkdir()  # a folder where none of the plan's trainings has finished
    assert "Finished trainings by the machine that ran them: none yet." in about_times(nothing, tmp_path / "elsewhere")


def test_a_publications_wall_times_are_its_plans_tasks_only(tmp_path):
    """phantom-10pct.toml and phantom-cpu.toml share the name `experiment`, so one stages.csv: the
    10% page once counted the 1% re-run's trainings as its own."""
    rows = [("train 0.1 none seed 0", "done", 30.0), ("train 0.01 none seed 0", "done", 4.0)]
    rows += [("train 0.01 oversample seed 0", "done", 5.0)]  # phantom-cpu.toml's, not the 10% plan's
    times = pd.DataFrame(rows, columns=["task", "status", "minutes"])
    page = about_times(times, tmp_path, "phantom-10pct.toml")
    assert "| train 0.1 none | 1 | 30.0 | 30.0 |" in page and "| train 0.01 none | 1 | 4.0 | 4.0 |" in page
    assert "| train 0.01 oversample |" not in page
    from chexbal.experiment.publish import plan_stages  # the stages.csv published beside the page

    kept = plan_stages(tmp_path / "stages.csv", tasks_of(REPO / "experiments" / "phantom-10pct.toml"))
    assert list(kept["task"]) == ["train 0.1 none seed 0", "train 0.01 none seed 0"]


def about_times(times: pd.DataFrame, folder: Path, plan_file: str = "phantom.toml") -> str:
    from chexbal.experiment.publish import about

    times.to_csv(folder / "stages.csv", index=False)
    path = REPO / "experiments" / plan_file
    here = Path.cwd()
    os.chdir(folder)  # the tasks' outputs (runs/…) are looked for here, where none exist
    try:
        return about(read_plan(path), tasks_of(path), folder / "stages.csv", f"chexbal experiment experiments/{plan_file}")
    finally:
        os.chdir(here)
