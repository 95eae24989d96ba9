from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from chexbal import devices, files
from chexbal.classify import train as train_module
from chexbal.classify.classifier import to_input
from chexbal.classify.sweep import sweep
from chexbal.classify.train import TrainConfig, train
from chexbal.classify.training_set import load_data
from chexbal.cli import app
from chexbal.data import store
from chexbal.data.labels import PATHOLOGIES
from chexbal.data.prepare import prepare
from chexbal.devices import keep_precision
from chexbal.errors import ChexbalError
from chexbal.generators import synthetic
from chexbal.testing import PLANTED


def config(base, **overrides) -> TrainConfig:
    options = dict(
        frac=1.0,
        epochs=3,
        batch_size=16,
        lr=1e-3,
        data_dir=str(base / "data"),
        dataset="planted",
        run_dir=str(base / "runs" / "default"),
        amp="off",
    )
    return TrainConfig(**{**options, **overrides})


@pytest.mark.slow
def test_a_finding_visible_in_one_class_comes_out_under_its_name(planted):
    run = train(config(planted, run_dir=str(planted / "runs" / "planted")), quiet=True)
    metrics = json.loads((run / "metrics.json").read_text())
    aucs = metrics["test"]["auc"]
    assert list(aucs) == list(PATHOLOGIES)
    others = [v for k, v in aucs.items() if k != PLANTED and not math.isnan(v)]
    # Random labels score about 0.5 on average (a small test set lets single classes stray).
    assert aucs[PLANTED] > 0.9 and aucs[PLANTED] > np.mean(others) + 0.2, aucs
    predictions = pd.read_csv(run / "test-predictions.csv")
    assert (
        predictions["patient"]
        .isin(pd.read_csv(planted / "data" / "planted" / "index.csv").query("split == 'test'")["patient"])
        .all()
    )
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3] and {"train_loss", "val_loss", "val_mean_auc"} <= set(history.columns)


@pytest.mark.slow
def test_resume_gives_the_same_final_metrics(planted, monkeypatch):
    whole = train(config(planted, run_dir=str(planted / "runs" / "whole"), epochs=2), quiet=True)
    real_epoch = train_module.train_epoch

    def interrupted(model, optimizer, part, cfg, epoch, *rest, **options):
        if epoch == 1:
            raise KeyboardInterrupt
        return real_epoch(model, optimizer, part, cfg, epoch, *rest, **options)

    monkeypatch.setattr(train_module, "train_epoch", interrupted)
    cfg = config(planted, run_dir=str(planted / "runs" / "resumed"), epochs=2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, quiet=True)
    monkeypatch.setattr(train_module, "train_epoch", real_epoch)
    with pytest.raises(ChexbalError, match="--resume"):
        train(cfg, quiet=True)
    resumed = train(cfg, resume=True, quiet=True)
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (whole, resumed))
    assert a["test"]["auc"] == pytest.approx(b["test"]["auc"], abs=1e-6, nan_ok=True)


@pytest.mark.slow
def test_a_run_resumes_in_the_precision_it_began_in_on_another_machine(planted, monkeypatch):
    """`--amp auto` picks bf16 on a CPU with bf16 units and fp32 elsewhere, and the experiment's runs
    resume on whatever machine a session gets: a run must not switch precision part-way. (Begun in
    fp32 and resumed where auto means bf16, so that the test trains in fp32 only: bf16 convolutions
    run 10x slower than fp32 on a CPU without bf16 units.)"""
    real_epoch, precisions = train_module.train_epoch, []

    def recording(model, optimizer, part, cfg, epoch, step, **options):
        precisions.append(step.use_amp)
        if epoch == 1 and len(precisions) == 2:  # the first session ends in epoch 2
            raise KeyboardInterrupt
        return real_epoch(model, optimizer, part, cfg, epoch, step, **options)

    monkeypatch.setattr(train_module, "train_epoch", recording)
    run = planted / "runs" / "fp32-begun"
    cfg = config(planted, run_dir=str(run), epochs=2, amp="auto")
    monkeypatch.setattr(devices, "amp_enabled", lambda amp, device: amp == "on")  # a CPU without bf16 units
    with pytest.raises(KeyboardInterrupt):
        train(cfg, quiet=True)
    monkeypatch.setattr(devices, "amp_enabled", lambda amp, device: amp != "off")  # one with them
    train(cfg, resume=True, quiet=True)
    assert precisions == [False, False, False]
    with pytest.raises(ChexbalError, match="started with fp32: finish it with --amp off or auto"):
        keep_precision("on", torch.device("cpu"), False, run)


@pytest.mark.slow
def test_a_finished_run_extended_to_more_epochs_is_the_longer_run_and_keeps_the_shorter_ones_scores(planted, tmp_path):
    whole = train(config(planted, run_dir=str(tmp_path / "two-epochs"), epochs=2), quiet=True)
    run = tmp_path / "extended"
    short = config(planted, run_dir=str(run), epochs=1)
    train(short, quiet=True)
    sweep([dataclasses.replace(short, epochs=2)], workers=1)  # what `chexbal experiment` runs
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (whole, run))
    assert b["epochs"] == 2 and a["test"]["auc"] == pytest.approx(b["test"]["auc"], abs=1e-6, nan_ok=True)
    assert json.loads((run / "metrics-epochs1.json").read_text())["epochs"] == 1
    assert (run / "test-predictions-epochs1.csv").exists() and files.read_json(run / "config.json")["epochs"] == 2
    with pytest.raises(ChexbalError, match=r"other settings \(epochs\)"):
        sweep([short], workers=1)  # a longer run is never cut short or reported as a shorter one


@pytest.mark.slow
def test_flips_happen_in_standard_only(planted, monkeypatch):
    seen = []
    real = train_module.to_input
    monkeypatch.setattr(train_module, "to_input", lambda x, flips=None: (seen.append(flips is not None), real(x, flips))[1])
    for aug in ("none", "standard"):
        seen.clear()
        train(config(planted, aug=aug, epochs=1, run_dir=str(planted / "runs" / f"flip-{aug}")), quiet=True)
        assert any(seen) == (aug == "standard")
    x = torch.arange(4, dtype=torch.uint8).reshape(1, 2, 2)
    flipped = to_input(x, torch.tensor([[True, False]]))[0, 0]
    assert torch.equal(flipped, to_input(x)[0, 0].flip(1))


def test_generated_images_reach_training_only(planted):
    folder = planted / "data" / "planted"
    where = synthetic.folder(folder, 1.0)
    labels = pd.DataFrame(np.ones((40, len(PATHOLOGIES)), np.uint8), columns=list(PATHOLOGIES))
    labels.insert(0, "index", np.arange(40))
    images = store.open_or_create(where / "images.zarr", 40, 32, {"kind": "test", "checkpoint_sha256": "test"})
    store.write_block(images, 0, np.full((40, 32, 32), 255, np.uint8))
    store.mark_complete(images, 40)
    files.write_atomic(where / "labels.csv", labels.to_csv(index=False))
    files.write_atomic(where / "provenance.json", json.dumps({"split_seed": 0, "checkpoint_sha256": "test"}))
    plain = load_data(config(planted, aug="none"), torch.device("cpu"))
    gan = load_data(config(planted, aug="gan"), torch.device("cpu"))
    assert len(gan.train.images) == len(plain.train.images) + 40
    for split in ("val", "test"):
        assert torch.equal(getattr(gan, split).images, getattr(plain, split).images)
        assert not (getattr(gan, split).images == 255).flatten(1).all(1).any()


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output.strip()


def test_bad_options_are_one_line(planted, tmp_path):
    common = ["--data-dir", planted / "data", "--dataset", "planted", "--frac", "1", "--run-dir", tmp_path / "r"]
    code, out = invoke("train", "--aug", "mixup", *common)
    assert (
        code == 2
        and out
        == "error: --aug must be one of none, standard, affine, weighted, oversample, gan, gan-regimen, gan-regimen-seed1, "
        "diffusion, diffusion-regimen, real-extra or synthetic:NAME, not 'mixup'"
    )
    prepare(
        "chexpert", planted / "CheXpert-v1.0-small", 0.5, 32, data_dir=planted / "data", dataset="planted", workers=1, quiet=True
    )
    code, out = invoke("train", "--aug", "gan", "--data-dir", planted / "data", "--dataset", "planted", "--frac", "0.5")
    assert code == 1 and "run `chexbal generate --frac 0.5` first" in out and "Traceback" not in out
    resnet = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 512)}, resnet)
    code, out = invoke("train", "--weights", resnet, *common)
    assert code == 1 and "is not a DenseNet-121 checkpoint" in out and len(out.splitlines()) == 1


@pytest.mark.slow
def test_sweep_keeps_a_pick_per_seed_and_skips_finished_runs(planted, monkeypatch, tmp_path):
    from chexbal.classify import sweep as sweep_module

    monkeypatch.chdir(tmp_path)  # default run folders land under ./runs
    base = config(planted, epochs=1, run_dir=None)
    configs = sweep_module.grid(base, lrs=[1e-3, 1e-2], batch_sizes=[16], optimizers=["adam"], seeds=[0, 1])
    paths = sweep_module.sweep(configs)
    assert [p.name for p in paths] == ["selected-seed0.json", "selected-seed1.json"]
    for seed, path in enumerate(paths):
        selection = json.loads(path.read_text())
        best = max(selection["candidates"], key=lambda c: c["val_mean_auc"])
        assert selection["selected"] == best and len(selection["candidates"]) == 2
        assert all(c["run"].endswith(f"seed{seed}") for c in selection["candidates"])
    calls = []
    monkeypatch.setattr(sweep_module, "train", lambda *a, **k: calls.append(a))
    sweep_module.sweep(configs)
    assert calls == [], "a finished run was trained again"


@pytest.mark.slow
def test_torchrun_with_two_processes_matches_one(planted, tmp_path):
    """DDP with the gloo backend on the CPU: same data, same seed, results within tolerance."""
    import os
    import subprocess
    import sys

    single = train(config(planted, run_dir=str(tmp_path / "single"), epochs=2), quiet=True)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "chexbal.cli",
        "train",
        "--frac",
        "1",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--amp",
        "off",
        "--data-dir",
        str(planted / "data"),
        "--dataset",
        "planted",
        "--run-dir",
        str(tmp_path / "ddp"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    config_written = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert config_written["processes"] == 2
    a, b = (json.loads((run / "metrics.json").read_text())["test"] for run in (single, tmp_path / "ddp"))
    assert b["auc"][PLANTED] > 0.9 and abs(a["auc"][PLANTED] - b["auc"][PLANTED]) < 0.05
    # The learnable class is scored alike. (Losses are not compared: the 13 random classes only
    # overfit, and on the CPU each rank normalises its own half-batch, SyncBatchNorm needing CUDA.)
    one, two = (pd.read_csv(run / "test-predictions.csv")[f"prob/{PLANTED}"] for run in (single, tmp_path / "ddp"))
    assert ((one > 0.5) == (two > 0.5)).mean() >= 0.9
    assert len(pd.read_csv(tmp_path / "ddp" / "history.csv")) == 2


@pytest.mark.slow
def test_sweep_through_submitit_local_executor(planted, monkeypatch, tmp_path):
    """The slurm launcher's path, run by submitit's local executor: a job array, then the pick."""
    from chexbal.classify import sweep as sweep_module

    monkeypatch.chdir(tmp_path)
    configs = sweep_module.grid(config(planted, epochs=1, run_dir=None), lrs=[1e-3], batch_sizes=[16, 32], optimizers=["adam"])
    sweep_module.run_submitit(configs, sweep_module.SlurmOptions(logs=str(tmp_path / "logs"), minutes=10), cluster="local")
    assert all((tmp_path / c.run_dir / "metrics.json").exists() for c in configs)
    selection = json.loads(sweep_module.select(configs).read_text())
    assert selection["selected"]["run"] in {c.run_dir for c in configs}


def test_scores_do_not_depend_on_the_scoring_batch():
    """Scoring runs in eval mode, so a GPU may score in large batches (train.eval_batch) and give the
    probabilities a small batch gives; on a CPU it keeps twice the training batch."""
    from chexbal.classify.classifier import build
    from chexbal.classify.training_set import Split

    torch.manual_seed(0)
    model = build()[0]
    images = torch.randint(0, 256, (10, 32, 32), dtype=torch.uint8)
    part = Split(images, (torch.rand(10, len(PATHOLOGIES)) < 0.3).float(), pd.DataFrame())
    (loss_small, small), (loss_large, large) = (train_module.predict(model, part, b, use_amp=False) for b in (3, 10))
    # Alike, not equal: the CPU's convolution kernels depend on the batch's shape, and with one
    # thread they differ by up to about 1.3e-4 relative; a batch-dependent model would be nowhere near.
    np.testing.assert_allclose(small, large, rtol=1e-3, atol=1e-6)
    assert math.isclose(loss_small, loss_large, rel_tol=1e-4)
    assert train_module.eval_batch(32, part) == 64


def test_a_compiled_run_drops_the_last_partial_batch_and_an_eager_one_keeps_it():
    """CUDA graphs need one batch shape: with --compile every step sees a full batch; without it
    the last, smaller batch trains too (the published runs)."""
    sizes = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.out = torch.nn.Linear(1, len(PATHOLOGIES))

        def forward(self, x):
            sizes.append(len(x))
            return self.out(x.mean(dim=(1, 2, 3))[:, None])

    from chexbal.classify.training_set import Split

    part = Split(torch.zeros(10, 8, 8, dtype=torch.uint8), torch.zeros(10, len(PATHOLOGIES)), pd.DataFrame())
    model = Recorder()
    for compile_ in (True, False):
        cfg = TrainConfig(batch_size=4, compile=compile_)
        train_module.train_epoch(
            model, torch.optim.SGD(model.parameters(), lr=0.1), part, cfg, 0, train_module.Step(torch.device("cpu"))
        )
    assert sizes == [4, 4, 4, 4, 2]


@pytest.mark.slow
def test_a_compiled_epoch_ends_where_an_eager_one_does():
    """torch.compile (inductor on the CPU; CUDA graphs on a GPU add only replay) must train as the
    eager path does, within float tolerance, on whole batches."""
    import copy

    from chexbal.classify.training_set import Split

    torch.manual_seed(0)
    eager = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 14)
    )
    eager_copy = copy.deepcopy(eager)
    twin = train_module.compiled(eager_copy, torch.device("cpu"))
    images = torch.randint(0, 256, (12, 16, 16), dtype=torch.uint8)
    part = Split(images, (torch.rand(12, len(PATHOLOGIES)) < 0.3).float(), pd.DataFrame())
    losses = []
    for model, params, compile_ in ((eager, eager.parameters(), False), (twin, eager_copy.parameters(), True)):
        cfg = TrainConfig(batch_size=4, compile=compile_)
        step = train_module.Step(torch.device("cpu"))
        losses.append(train_module.train_epoch(model, torch.optim.Adam(params, lr=1e-2), part, cfg, 0, step)[1])
    assert math.isclose(*losses, rel_tol=1e-4)
    for a, b in zip(eager.parameters(), eager_copy.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
