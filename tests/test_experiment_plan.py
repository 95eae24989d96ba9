"""The experiment runner's plan (`scripts/experiment.py`): which runs it schedules, and what it refuses."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "experiment.py"


@pytest.fixture(scope="module")
def experiment():
    spec = importlib.util.spec_from_file_location("experiment", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def training_runs(tasks, frac):
    return [t.name for t in tasks if t.name.startswith(f"train {frac:g} ")]


def test_default_plan_is_the_published_one(experiment):
    tasks = experiment.plan(experiment.parse_args([]))
    assert len(training_runs(tasks, 0.01)) == 8 * 5
    ten = training_runs(tasks, 0.1)
    assert len(ten) == 6 * 3 and not any(" affine " in n or " standard " in n for n in ten)
    assert {t.name for t in tasks if t.name.startswith("gan-eval")} == {
        "gan-eval pool 0.01",
        "gan-eval regimen 0.01",
        "gan-eval regimen 0.1",
    }


def test_ten_percent_alone_waits_for_its_generators_and_skips_the_1pct_judges(experiment):
    args = experiment.parse_args(["--fracs", "0.1", "--seeds-10", "3", "--arms-10", ",".join(experiment.ALL_ARMS)])
    tasks = experiment.plan(args)
    assert not training_runs(tasks, 0.01) and len(training_runs(tasks, 0.1)) == 24
    assert not any(t.name.startswith("gan-eval") for t in tasks)  # its judges are 1% runs, not planned here
    needs = {t.name: t.needs for t in tasks}
    assert needs["train 0.1 gan seed 2"] == ("generate pool 0.1",)
    assert needs["train 0.1 gan-regimen seed 2"] == ("generate regimen 0.1",)
    assert needs["generate regimen 0.1"] == ("train-gan 0.1",)


@pytest.mark.parametrize("argv", [["--fracs", "0.5"], ["--fracs", "ten"], ["--arms-10", "none,flip"]])
def test_impossible_options_are_refused(experiment, argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        experiment.parse_args(argv)
    assert exit_.value.code == 2 and "error: argument" in capsys.readouterr().err
