"""Faults injected by hand, each caught: damaged chunks (and their repair), a lying provenance, a second
runner, a full disk, a truncated checkpoint, garbage JSON, and SIGTERM mid-epoch."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from chexbal import checkpoint, files
from chexbal.classify import train as train_module
from chexbal.classify.train import TrainConfig, train
from chexbal.cli import app
from chexbal.data import store
from chexbal.data.dataset import load_images, read_index
from chexbal.data.labels import PATHOLOGIES
from chexbal.data.prepare import prepare
from chexbal.errors import ChexbalError
from chexbal.testing import make_planted


@pytest.fixture
def small(tmp_path, small_blocks):
    root = make_planted(tmp_path / "CheXpert-v1.0-small", n_patients=60)
    folder = prepare("chexpert", root, 1.0, 32, data_dir=tmp_path / "data", dataset="small", workers=1, quiet=True)
    return root, folder


def digest(folder: Path) -> str:
    return hashlib.sha256(load_images(folder, read_index(folder)).tobytes()).hexdigest()


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_chunk_is_named_and_verify_repairs_it(small, damage):
    root, folder = small
    before = digest(folder)
    chunk = folder / "images.zarr" / "c" / "2" / "0" / "0"  # block 2: rows 8-11
    data = bytearray(chunk.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data) if damage == "flip" else bytes(data[: len(data) // 2]))
    with pytest.raises(ChexbalError, match=r"1 damaged chunk\(s\) \(rows 8-11\): repair them with `chexbal prepare --verify"):
        load_images(folder, read_index(folder))
    result = CliRunner().invoke(
        app,
        [
            "prepare",
            "--source",
            "chexpert",
            "--root",
            str(root),
            "--frac",
            "1",
            "--size",
            "32",
            "--data-dir",
            str(folder.parent),
            "--dataset",
            "small",
            "--verify",
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "damaged blocks: 8-11" in result.output
    assert digest(folder) == before


def test_a_store_written_before_checksums_is_refused(tmp_path):
    import zarr

    old = zarr.create_array(tmp_path / "images.zarr", shape=(4, 8, 8), chunks=(4, 8, 8), dtype="uint8")
    old.attrs["complete_rows"] = 4
    with pytest.raises(ChexbalError, match="written before chexbal checksummed its stores: delete it"):
        store.open_complete(tmp_path / "images.zarr", 4)


def test_an_edited_generator_hash_is_refused(tmp_path):
    from chexbal.generators import synthetic

    where = synthetic.folder(tmp_path, 0.5)
    images = store.open_or_create(where / "images.zarr", 4, 8, {"checkpoint_sha256": "a" * 64})
    store.write_block(images, 0, np.zeros((4, 8, 8), np.uint8))
    store.mark_complete(images, 4)
    (where / "labels.csv").write_text("index,target," + ",".join(PATHOLOGIES) + "\n")
    files.write_atomic(where / "provenance.json", json.dumps({"checkpoint_sha256": "0" * 64}))
    with pytest.raises(ChexbalError, match="names generator 000000000000, its images were made by aaaaaaaaaaaa"):
        synthetic.load(tmp_path, 0.5)


def tiny_config(folder: Path, run_dir: Path, **overrides) -> TrainConfig:
    options = dict(
        frac=1.0, epochs=2, batch_size=8, data_dir=str(folder.parent), dataset=folder.name, run_dir=str(run_dir), amp="off"
    )
    return TrainConfig(**{**options, **overrides})


@pytest.mark.slow
def test_a_checkpoint_written_while_the_disk_fills_never_replaces_a_good_one(small, monkeypatch):
    _, folder = small
    run = train(tiny_config(folder, folder.parent / "run", epochs=1), quiet=True)
    good = (run / "last.pt").read_bytes()

    def full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4096 vs 4032")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(ChexbalError, match="could not write .*last.pt \\(the disk is full\\); the previous last.pt is intact"):
        checkpoint.save({"model": {}}, run / "last.pt")
    assert (run / "last.pt").read_bytes() == good and not list(run.glob(".last.pt.tmp-*"))


def test_a_full_disk_while_preparing_is_one_line(tmp_path, monkeypatch):
    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "images.zarr" / "c" / "0"))

    monkeypatch.setattr(store, "write_block", full)
    root = make_planted(tmp_path / "CheXpert-v1.0-small", n_patients=10)
    result = CliRunner().invoke(
        app, ["prepare", "--source", "chexpert", "--root", str(root), "--data-dir", str(tmp_path), "--workers", "1"]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("error: no space left on the device writing") and last.endswith("run the same command again")


@pytest.mark.slow
def test_a_truncated_checkpoint_and_garbage_config_each_get_one_line(small):
    _, folder = small
    run = train(tiny_config(folder, folder.parent / "run", epochs=1), quiet=True)
    resume = ["train", "--frac", "1", "--epochs", "2", "--batch-size", "8", "--amp", "off", "--data-dir", str(folder.parent)]
    resume += ["--dataset", folder.name, "--run-dir", str(run), "--resume"]
    shutil.copy(run / "last.pt", run / "saved.pt")
    (run / "last.pt").write_bytes((run / "last.pt").read_bytes()[:1000])
    result = CliRunner().invoke(app, resume)
    assert (
        result.exit_code == 1 and "truncated or not a chexbal checkpoint: delete last.pt to start the run again" in result.output
    )
    shutil.copy(run / "saved.pt", run / "last.pt")
    (run / "config.json").write_text("{not json")
    result = CliRunner().invoke(app, resume)
    assert result.exit_code == 1 and "config.json is not readable JSON" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_gives_the_uninterrupted_result(small, monkeypatch):
    _, folder = small
    whole = train(tiny_config(folder, folder.parent / "whole"), quiet=True)
    calls, real = [], train_module.to_input

    def signalled(x, flips=None):  # Slurm's SIGTERM, arriving during the fourth batch of the run
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(x, flips)

    monkeypatch.setattr(train_module, "to_input", signalled)
    cfg = tiny_config(folder, folder.parent / "stopped")
    with pytest.raises(ChexbalError, match="stopped by SIGTERM; epoch 1 at image 32") as stop:
        train(cfg, quiet=True)
    assert stop.value.exit_code == 143 and torch.load(Path(cfg.run_dir) / "last.pt", weights_only=False)["partial"][0] == 32
    monkeypatch.setattr(train_module, "to_input", real)
    resumed = train(cfg, resume=True, quiet=True)
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (whole, resumed))
    assert a["test"]["auc"] == pytest.approx(b["test"]["auc"], abs=1e-6, nan_ok=True)


@pytest.mark.slow
def test_a_second_train_in_a_run_folder_is_refused_naming_the_holder(small):
    _, folder = small
    run_dir = folder.parent / "busy"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from chexbal.files import locked; import time\nwith locked({str(run_dir)!r}): time.sleep(60)"]
    )
    try:
        while not (run_dir / "runner.lock").exists() or not (run_dir / "runner.lock").read_text():
            time.sleep(0.1)
        with pytest.raises(ChexbalError, match=f"another run \\(pid {holder.pid}\\) is running in {run_dir}"):
            train(tiny_config(folder, run_dir), quiet=True)
    finally:
        holder.kill()
        holder.wait()
    assert not (run_dir / "config.json").exists()  # refused before it wrote anything


def test_a_second_runner_in_a_folder_is_refused_and_a_killed_holders_lock_is_gone(tmp_path, monkeypatch):
    from chexbal.files import locked

    monkeypatch.chdir(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from chexbal.files import locked; import time\nwith locked(__import__('pathlib').Path('lock')): time.sleep(60)",
        ]
    )
    try:
        while not (tmp_path / "lock" / "runner.lock").exists() or not (tmp_path / "lock" / "runner.lock").read_text():
            time.sleep(0.1)
        with pytest.raises(ChexbalError, match=f"another run \\(pid {holder.pid}\\) is running in lock"), locked(Path("lock")):
            pass
    finally:
        holder.kill()  # SIGKILL: no chance to clean up
        holder.wait()
    with locked(Path("lock")):  # the kernel dropped the dead holder's lock
        pass


def test_a_second_publication_waits_for_the_first_instead_of_writing_beside_it(tmp_path, monkeypatch, capfd):
    """A runner that finished while `--publish-only` ran once swapped folders under it: publications of
    one plan follow each other."""
    from chexbal.files import locked

    monkeypatch.chdir(tmp_path)
    code = "from chexbal.files import locked; import time\nwith locked(__import__('pathlib').Path('plan'), lock='publish.lock'):\n    time.sleep(3)\n    open('finished', 'w').close()"
    holder = subprocess.Popen([sys.executable, "-c", code])
    try:
        while not (tmp_path / "plan" / "publish.lock").exists() or not (tmp_path / "plan" / "publish.lock").read_text():
            time.sleep(0.1)
        with locked(Path("plan"), "publication", lock="publish.lock", wait=True):
            assert (tmp_path / "finished").exists()  # it got the lock only once the first had finished
    finally:
        holder.kill()
        holder.wait()
    assert f"waiting for another publication (pid {holder.pid}) in plan to finish" in capfd.readouterr().err
    assert not (tmp_path / "plan" / "runner.lock").exists()  # a runner's lock is another file: publishing never blocks one
