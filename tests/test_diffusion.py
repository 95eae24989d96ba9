"""The diffusion generator: conditioning, guidance, determinism, resume, provenance and its arms."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal

import numpy as np
import pandas as pd
import pytest
import torch

from chexbal import files
from chexbal.analysis.results import generators_table
from chexbal.classify.train import TrainConfig, load_data
from chexbal.data.dataset import read_index
from chexbal.data.labels import PATHOLOGIES
from chexbal.data.prepare import prepare
from chexbal.errors import ChexbalError
from chexbal.generators import generate as generate_module
from chexbal.generators import synthetic
from chexbal.generators.diffusion.model import DiffusionGenerator, LabelConditionedUNet
from chexbal.generators.diffusion.train import DiffusionConfig, train_diffusion
from chexbal.generators.generate import generate, load_generator
from chexbal.seeds import stream
from chexbal.testing import PLANTED, make_planted

TINY = dict(widths=(8, 16), batch_size=8, sample_steps=2, checkpoint_every=2, sample_every=2, amp="off")


def vectors(*names, n: int = 4) -> torch.Tensor:
    y = torch.zeros(n, len(PATHOLOGIES))
    for name in names:
        y[:, PATHOLOGIES.index(name)] = 1
    return y


@pytest.fixture(scope="module")
def regimen_model(rare):
    cfg = DiffusionConfig(
        frac=0.5, steps=4, data_dir=str(rare / "data"), dataset="rare", run_dir=str(rare / "diffusion-0.5"), **TINY
    )
    return cfg, train_diffusion(cfg, quiet=True)


def test_guidance_zero_ignores_the_label_and_the_same_seed_gives_the_same_images():
    torch.manual_seed(0)
    model = LabelConditionedUNet(16, (8, 16)).eval()
    unguided, guided = DiffusionGenerator(model, 3, guidance=0.0), DiffusionGenerator(model, 3, guidance=2.0)
    a, b = vectors("Fracture"), vectors("Lung Lesion")
    assert torch.equal(unguided.draw(a, stream(0, 0)), unguided.draw(b, stream(0, 0)))
    assert not torch.equal(guided.draw(a, stream(0, 0)), guided.draw(b, stream(0, 0)))
    assert torch.equal(guided.draw(a, stream(0, 0)), guided.draw(a, stream(0, 0)))
    assert not torch.equal(guided.draw(a, stream(0, 0)), guided.draw(a, stream(0, 1)))


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(rare, regimen_model, tmp_path):
    cfg, _ = regimen_model
    whole = train_diffusion(dataclasses.replace(cfg, run_dir=str(tmp_path / "whole")), quiet=True)
    half = dataclasses.replace(cfg, steps=2, run_dir=str(tmp_path / "half"))
    train_diffusion(half, quiet=True)
    with pytest.raises(ChexbalError, match="--resume"):
        train_diffusion(dataclasses.replace(half, steps=4), quiet=True)
    resumed = train_diffusion(dataclasses.replace(half, steps=4), resume=True, quiet=True)
    a, b = (torch.load(run / "last.pt", weights_only=False) for run in (whole, resumed))
    assert a["step"] == b["step"] == 4
    for part in ("model", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    with pytest.raises(ChexbalError, match="other settings"):
        train_diffusion(dataclasses.replace(half, steps=6, label_dropout=0.3), resume=True, quiet=True)
    assert json.loads((resumed / "config.json").read_text())["amp_enabled"] is False  # what a resume keeps
    with pytest.raises(ChexbalError, match="started with fp32: finish it with --amp off or auto"):
        train_diffusion(dataclasses.replace(half, steps=6, amp="on"), resume=True, quiet=True)


def test_the_regimen_model_saw_no_validation_or_test_patient_and_records_it(rare, regimen_model):
    cfg, run = regimen_model
    seen = pd.read_csv(run / "training-rows.csv")
    data = load_data(TrainConfig(frac=0.5, data_dir=str(rare / "data"), dataset="rare"), torch.device("cpu"))
    assert sorted(seen["index"]) == sorted(data.train.rows["index"])
    index = read_index(rare / "data" / "rare")
    forbidden = set(data.val.rows["patient"]) | set(index.loc[index["split"] == "test", "patient"])
    assert not seen["patient"].isin(forbidden).any()
    card = json.loads((run / "generator.json").read_text())
    assert card["rows"] == len(seen) and card["frac"] == 0.5 and card["sha256"] == files.sha256(run / "generator.pt")
    saved = torch.load(run / "generator.pt", weights_only=True)  # plain tensors and a config, no code
    assert saved["config"]["kind"] == "diffusion" and {v.dtype for v in saved["generator"].values()} == {torch.float16}
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-000002.png", "step-000004.png"]


def test_the_diffusion_regimen_arm_trains_on_its_own_set_and_refuses_a_gan(rare, regimen_model):
    _, run = regimen_model
    kwargs = dict(data_dir=rare / "data", dataset="rare", quiet=True)
    where = generate(0.5, run / "generator.pt", generator="diffusion-regimen", **kwargs)
    assert where.name == "frac-0.5-diffusion-regimen"
    provenance = json.loads((where / "provenance.json").read_text())
    assert provenance["generator"]["kind"] == "diffusion" and provenance["trained_on"]["frac"] == 0.5
    data = load_data(
        TrainConfig(frac=0.5, aug="diffusion-regimen", data_dir=str(rare / "data"), dataset="rare"), torch.device("cpu")
    )
    assert data.extra.record["checkpoint_sha256"] == files.sha256(run / "generator.pt")
    assert len(data.extra.images) == len(pd.read_csv(where / "labels.csv")) > 0
    with pytest.raises(ChexbalError, match="is a diffusion model, --generator regimen needs a gan model"):
        generate(0.5, run / "generator.pt", generator="regimen", **kwargs)
    with pytest.raises(ChexbalError, match="not on regimen 0.5 split 1"):
        generate(0.5, run / "generator.pt", split_seed=1, generator="diffusion-regimen", **kwargs)
    with pytest.raises(
        ChexbalError,
        match="no generated set .* train-diffusion --frac 1. then .chexbal generate --frac 1 --generator diffusion-regimen",
    ):
        load_data(
            TrainConfig(frac=1.0, aug="diffusion-regimen", data_dir=str(rare / "data"), dataset="rare"), torch.device("cpu")
        )


def test_sigterm_stops_sampling_at_the_next_step_and_a_rerun_gives_the_uninterrupted_set(rare, regimen_model, monkeypatch):
    """A block of diffusion samples takes minutes on a CPU (Slurm warns 120 s before it kills): SIGTERM
    stops at the next denoising step, the unfinished block is dropped, and a re-run draws it whole."""
    _, run = regimen_model
    kwargs = dict(data_dir=rare / "data", dataset="rare", generator="diffusion-regimen", quiet=True)
    monkeypatch.setattr(generate_module.store, "BLOCK", 4)
    shutil.rmtree(synthetic.folder(rare / "data" / "rare", 0.5, "diffusion-regimen"), ignore_errors=True)  # another test's
    where = generate(0.5, run / "generator.pt", **kwargs)
    uninterrupted, _, _ = synthetic.load(rare / "data" / "rare", 0.5, "diffusion-regimen")
    assert len(uninterrupted) > 4  # several blocks
    shutil.rmtree(where)
    calls, real, signal_at = [], DiffusionGenerator.guided_noise, []

    def signalled(self, x, t, labels):  # SIGTERM at the denoising step numbered signal_at[0]
        calls.append(1)
        if len(calls) == signal_at[0]:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, x, t, labels)

    monkeypatch.setattr(DiffusionGenerator, "guided_noise", signalled)
    blocks = -(-len(uninterrupted) // 4)
    for step, saved, new in ((3, 1, 1), (1, 1, 0)):  # TINY samples in 2 steps: block 2's first step, then a rerun's first
        calls.clear()
        signal_at[:] = [step]
        with pytest.raises(
            ChexbalError,
            match=rf"stopped by SIGTERM; .*images.zarr with {saved} of its {blocks} blocks \({new} new in this run\)",
        ) as stop:
            generate(0.5, run / "generator.pt", **kwargs)
        assert stop.value.exit_code == 143 and len(calls) == step  # the step after the signal never ran
    monkeypatch.setattr(DiffusionGenerator, "guided_noise", real)
    generate(0.5, run / "generator.pt", **kwargs)
    resumed, _, _ = synthetic.load(rare / "data" / "rare", 0.5, "diffusion-regimen")
    assert torch.equal(torch.from_numpy(resumed), torch.from_numpy(uninterrupted))


def test_a_set_records_its_sampling_precision_and_is_finished_in_the_one_it_was_started_in(rare, regimen_model):
    """bf16 and fp32 samples of one model differ, so one set never mixes them."""
    _, run = regimen_model
    kwargs = dict(data_dir=rare / "data", dataset="rare", generator="diffusion-regimen", quiet=True)
    where = synthetic.folder(rare / "data" / "rare", 0.5, "diffusion-regimen")
    shutil.rmtree(where, ignore_errors=True)  # another test's
    generate(0.5, run / "generator.pt", amp="on", **kwargs)
    assert json.loads((where / "provenance.json").read_text())["sampling"] == "bf16"
    shown = generators_table(rare / "data" / "rare", [0.5]).set_index("arm")
    assert shown.loc["diffusion-regimen", "sampling"] == "bf16"  # the report says how the set was drawn
    bf16, _, _ = synthetic.load(rare / "data" / "rare", 0.5, "diffusion-regimen")
    with pytest.raises(ChexbalError, match="started with bf16 sampling: finish it with --amp on or auto"):
        generate(0.5, run / "generator.pt", amp="off", **kwargs)
    generate(0.5, run / "generator.pt", amp="auto", **kwargs)  # auto follows the set, whatever this CPU has
    shutil.rmtree(where)
    generate(0.5, run / "generator.pt", amp="off", **kwargs)
    assert "sampling" not in json.loads((where / "provenance.json").read_text())  # as sets made before it was recorded
    fp32, _, _ = synthetic.load(rare / "data" / "rare", 0.5, "diffusion-regimen")
    assert not np.array_equal(bf16, fp32) and np.abs(bf16.astype(int) - fp32).mean() < 8  # uint8 levels
    with pytest.raises(ChexbalError, match="--amp must be auto, on or off, not 'yes'"):
        generate(0.5, run / "generator.pt", amp="yes", **kwargs)


def test_impossible_settings_are_refused_with_one_line(rare, tmp_path):
    base = DiffusionConfig(steps=1, data_dir=str(rare / "data"), dataset="rare", run_dir=str(tmp_path / "run"), **TINY)
    for change, message in (
        ({"widths": (8, 12)}, "multiples of 8"),
        ({"widths": (8, 16, 32, 64, 128)}, "cannot be halved 4 times down to at least 4 px"),
        ({"label_dropout": 1.0}, "--label-dropout"),
        ({"guidance": -1.0}, "--guidance"),
    ):
        with pytest.raises(ChexbalError, match=message):
            train_diffusion(dataclasses.replace(base, **change), quiet=True)
        assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_the_model_learns_to_draw_a_finding_it_is_asked_for(tmp_path):
    """On data where only Fracture has a sign (a bright top-left square), images sampled for Fracture
    vectors show the square more than images of the same vectors without it, from the same noise."""
    root = make_planted(tmp_path / "CheXpert-v1.0-small", n_patients=160)
    prepare("chexpert", root, 1.0, 32, data_dir=tmp_path / "data", dataset="planted", workers=1, quiet=True)
    cfg = DiffusionConfig(
        steps=150,
        batch_size=16,
        lr=2e-3,
        widths=(16, 32),
        sample_every=10_000,
        sample_steps=8,
        guidance=3.0,
        amp="off",
        data_dir=str(tmp_path / "data"),
        dataset="planted",
        run_dir=str(tmp_path / "diffusion"),
    )
    generator, _ = load_generator(train_diffusion(cfg, quiet=True) / "generator.pt", {"size": 32}, torch.device("cpu"))
    without = vectors("Lung Lesion", n=32)
    asked = without.clone()
    asked[:, PATHOLOGIES.index(PLANTED)] = 1
    corner = {}
    # Sampling in bf16 (`generate --amp`) must draw it too, checked on 8 pairs: this model samples 9x slower
    # in bf16 than in fp32 on a CPU without bf16 units (scripts/bench_generate.py --size 32 --widths 16,32, docs/benchmarks.md).
    for use_amp, n in ((False, 32), (False, 8), (True, 8)):
        generator.use_amp = use_amp
        corner[use_amp, n] = [generator.draw(v[:n], stream(1, 0))[:, 0, 3:12, 3:12].mean().item() for v in (asked, without)]
    assert corner[False, 32][0] - corner[False, 32][1] > 0.1, f"corner brightness with and without {PLANTED}: {corner}"
    assert corner[True, 8] == pytest.approx(corner[False, 8], abs=0.02), f"bf16 draws other images: {corner}"
    assert corner[True, 8][0] - corner[True, 8][1] > 0.05, f"bf16: corner brightness with and without {PLANTED}: {corner}"


def test_the_diffusion_arm_without_a_shipped_model_says_how_to_make_one(rare, tmp_path, monkeypatch):
    from chexbal.generators import generate as generate_module

    monkeypatch.setattr(generate_module, "SHIPPED_DIFFUSION", tmp_path / "absent.pt")
    with pytest.raises(ChexbalError, match="the shipped diffusion model .*absent.pt is missing: remake it .*make diffusion"):
        generate(0.5, generator="diffusion", data_dir=rare / "data", dataset="rare", quiet=True)


@pytest.mark.parametrize("name", ["phantom-64-generator.pt", "phantom-64-diffusion.pt"])
def test_the_shipped_generators_fit_the_current_phantom_and_load_without_pickles(name):
    """Both shipped files load with `weights_only`, learnt from this renderer version, and draw 64 px images."""
    from chexbal.data.sources.phantom import RENDERER_VERSION
    from chexbal.generators.generate import WEIGHTS

    phantom = {"source": "phantom", "size": 64, "renderer_version": RENDERER_VERSION}
    torch.load(WEIGHTS / name, weights_only=True)
    generator, config = load_generator(WEIGHTS / name, phantom, torch.device("cpu"))
    assert config["trained_on"]["renderer_version"] == RENDERER_VERSION and config["labels"] == list(PATHOLOGIES)
    images = generator.draw(torch.zeros(2, len(PATHOLOGIES)), stream(0, 0))
    assert images.shape == (2, 1, 64, 64) and images.min() >= -1 and images.max() <= 1
