"""User errors end as one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from chexbal.cli import app


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result, result.output.strip()


def assert_one_line_error(result, output, code, fragment):
    assert result.exit_code == code, output
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output
    assert output.startswith("error:") and fragment in output, output


@pytest.mark.parametrize("frac", ["0", "1.5", "-0.1"])
def test_impossible_frac(tmp_path, frac):
    result, output = invoke("prepare", "--frac", frac, "--data-dir", tmp_path)
    assert_one_line_error(result, output, 2, "--frac must be in (0, 1]")
    assert not any(tmp_path.iterdir()), "an impossible option still wrote files"


def test_missing_root(tmp_path):
    result, output = invoke("prepare", "--source", "chexpert", "--root", tmp_path / "nope", "--data-dir", tmp_path)
    assert_one_line_error(result, output, 1, "is not a folder")


@pytest.mark.parametrize("stream", ["results", "console"])
def test_a_message_naming_a_long_path_is_one_line(capsys, stream):
    """Where output is no terminal (a log, a pipe, CI) rich broke messages at 80 columns, so the path
    in one could not be searched for, and a long temporary folder split a test's expected words."""
    from chexbal import progress

    message = f"imported into /tmp/{'a-long-folder-name-' * 8}; train it with --aug synthetic:z"
    getattr(progress, stream).print(message)
    captured = capsys.readouterr()
    assert (captured.out if stream == "results" else captured.err).strip() == message


def test_a_table_in_a_log_keeps_its_numbers_whole(monkeypatch):
    """gan-eval's quality table in a log (no terminal) was squeezed into 80 columns: "0.…" for every number."""
    import io

    from rich.console import Console
    from rich.table import Table

    from chexbal import progress

    monkeypatch.delenv("COLUMNS", raising=False)  # pytest-xdist sets it in its workers
    log = io.StringIO()
    results = progress.tables_fit_off_a_terminal(Console(file=log, soft_wrap=True))  # as `progress.results` is made
    table = Table(title="Generator quality")
    for column in ["class", *(f"measure {k}" for k in range(13))]:
        table.add_column(column)
    table.add_row("Pleural Other", *(f"0.{k:03d}" for k in range(13)))  # about 200 columns, as gan-eval's 226
    results.print(table)
    out = log.getvalue()
    assert "…" not in out and "Pleural Other" in out and "measure 12" in out and "0.012" in out


def test_missing_train_csv(tmp_path):
    (tmp_path / "CheXpert").mkdir()
    result, output = invoke("prepare", "--source", "chexpert", "--root", tmp_path / "CheXpert", "--data-dir", tmp_path)
    assert_one_line_error(result, output, 1, "train.csv not found")


def test_csv_without_label_columns(chexpert_root, tmp_path):
    table = pd.read_csv(chexpert_root / "train.csv")
    table.drop(columns=["Fracture", "Edema"]).to_csv(chexpert_root / "train.csv", index=False)
    result, output = invoke("prepare", "--source", "chexpert", "--root", chexpert_root, "--data-dir", tmp_path)
    assert_one_line_error(result, output, 1, "lacks label columns: Edema, Fracture")


def test_missing_image_via_cli(chexpert_root, tmp_path):
    first = pd.read_csv(chexpert_root / "train.csv")["Path"][0]
    (chexpert_root / first.split("/", 1)[1]).unlink()
    result, output = invoke(
        "prepare",
        "--source",
        "chexpert",
        "--root",
        chexpert_root,
        "--frac",
        "1",
        "--data-dir",
        tmp_path / "data",
        "--workers",
        "1",
    )
    assert result.exit_code == 1 and "Traceback" not in output
    assert "1 images are missing or unreadable" in output.splitlines()[-1] and first in output


def test_unknown_source_and_root_for_phantom(tmp_path):
    result, output = invoke("prepare", "--source", "mimic", "--data-dir", tmp_path)
    assert_one_line_error(result, output, 2, "--source must be one of phantom, chexpert")
    result, output = invoke("prepare", "--root", tmp_path, "--data-dir", tmp_path)
    assert_one_line_error(result, output, 2, "--root is for --source chexpert")


def test_info_without_a_dataset(tmp_path):
    result, output = invoke("info", "--data-dir", tmp_path)
    assert_one_line_error(result, output, 1, "run `chexbal prepare` first")


def test_help_shows_descriptive_defaults():
    # Rich reads "[default: …]" inside a help text as markup and drops it; the defaults that are
    # descriptions (not values) must still reach the user.
    result = CliRunner().invoke(app, ["generate", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "shipped phantom-64 generator" in result.output
    result = CliRunner().invoke(app, ["sweep", "--help"], terminal_width=200)
    assert "1e-2 5e-3 1e-3" in result.output and "one per GPU" in result.output


@pytest.mark.parametrize(
    "option", [["--target-share", "1.5"], ["--aux-weight", "-1"], ["--negatives", "Nodule"], ["--negatives-from", "-1"]]
)
def test_impossible_gan_options(tmp_path, option):
    result, output = invoke("train-gan", "--data-dir", tmp_path, *option)
    assert_one_line_error(result, output, 2, f"{option[0]} must be")


def test_tables_go_to_stdout_and_the_version_prints(planted):
    """`chexbal info > counts.txt` keeps the table; progress and notices stay on stderr."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "chexbal.cli", "info", "planted", "--data-dir", str(planted / "data")]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "Fracture" in done.stdout and "Fracture" not in done.stderr
    result, output = invoke("--version")
    assert result.exit_code == 0 and output.startswith("chexbal ")
    assert invoke("train", "-h")[0].exit_code == 0


def test_report_without_runs(planted, tmp_path):
    result, output = invoke(
        "report", "--data-dir", planted / "data", "--dataset", "planted", "--runs", tmp_path, "--out", tmp_path
    )
    assert_one_line_error(result, output, 1, "no finished runs of planted")
    result, output = invoke("report", "--data-dir", planted / "data", "--dataset", "planted", "--regimen", "1.5")
    assert_one_line_error(result, output, 2, "--regimen must be in (0, 1], not 1.5")


def test_gan_eval_with_a_missing_judge(planted, tmp_path):
    result, output = invoke(
        "gan-eval", "--classifier", tmp_path / "nosuchdir", "--data-dir", planted / "data", "--dataset", "planted"
    )
    assert_one_line_error(result, output, 1, "nosuchdir not found")


@pytest.mark.parametrize(
    ("option", "message"),
    [("--epochs", "--epochs must be at least 1, not 0"), ("--batch-size", "--batch-size must be at least 2, not 0")],
)
def test_each_impossible_training_option_gets_its_own_line(planted, option, message):
    result, output = invoke("train", option, "0", "--data-dir", planted / "data", "--dataset", "planted")
    assert_one_line_error(result, output, 2, message)


def test_resuming_a_run_that_is_not_there(planted, tmp_path):
    common = ["--data-dir", planted / "data", "--dataset", "planted", "--frac", "1"]
    result, output = invoke("train", "--resume", "--run-dir", tmp_path / "nosuchrun", *common)
    assert_one_line_error(result, output, 1, "nothing to resume")


def test_a_malformed_only_is_one_line(tmp_path):
    result, output = invoke("report", "--only", "0.1:gan", "--runs", tmp_path, "--data-dir", tmp_path)
    assert_one_line_error(result, output, 2, "is not FRAC:ARM:SEED")
