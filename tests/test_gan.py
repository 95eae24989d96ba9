from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from chexbal.data.labels import PATHOLOGIES, TARGETS
from chexbal.data.prepare import prepare
from chexbal.errors import ChexbalError
from chexbal.generators import generate as generate_module
from chexbal.generators import synthetic
from chexbal.generators.gan.nets import Discriminator, Generator, LabelClassifier
from chexbal.generators.gan.train import GanConfig, train_gan
from chexbal.generators.generate import generate, load_generator
from chexbal.generators.training import BalancedRows
from chexbal.testing import PLANTED, make_chexpert, make_planted

STEPS_TO_LEARN = 300


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    base = tmp_path_factory.mktemp("gan")
    root = make_chexpert(base / "CheXpert-v1.0-small", n_patients=80)
    prepare("chexpert", root, 1.0, 32, data_dir=base / "data", dataset="small", workers=1, quiet=True)
    cfg = GanConfig(
        steps=4,
        batch_size=8,
        sample_every=2,
        checkpoint_every=2,
        data_dir=str(base / "data"),
        dataset="small",
        run_dir=str(base / "gan"),
    )
    train_gan(cfg, quiet=True)
    return base


def labels_with(*names) -> torch.Tensor:
    y = torch.zeros(1, len(PATHOLOGIES))
    for name in names:
        y[0, PATHOLOGIES.index(name)] = 1
    return y


def test_generator_discriminator_and_label_classifier_shapes_and_conditioning():
    torch.manual_seed(0)
    G, D, C = Generator(64, base=8), Discriminator(64, base=8), LabelClassifier(64, base=8)
    G.eval()
    z = torch.randn(1, G.z_dim).repeat(2, 1)
    y = torch.cat([labels_with("Lung Lesion"), labels_with("Fracture")])
    with torch.no_grad():
        G.embed.weight.normal_()  # a trained embedding: labels must reach the image
        images = G(z, y)
        scores, swapped = D(images, y), D(images, y.flip(0))
        logits = C(images)
    assert images.shape == (2, 1, 64, 64) and images.abs().max() <= 1
    assert not torch.allclose(images[0], images[1]), "the label vector does not change the image"
    assert scores.shape == (2,) and not torch.allclose(scores, swapped), "the discriminator ignores the labels"
    assert logits.shape == (2, len(PATHOLOGIES))
    with pytest.raises(ValueError, match="power of two"):
        Generator(72)
    assert Generator(224, base=4)(torch.randn(1, 128), y[:1]).shape == (1, 1, 224, 224)


def test_balanced_rows_oversample_each_target_from_its_positives():
    pool = pd.DataFrame(0.0, index=range(1000), columns=list(PATHOLOGIES))
    for k, name in enumerate(TARGETS):  # ten positives per target, in disjoint rows
        pool.loc[10 * k : 10 * k + 9, name] = 1.0
    rows = BalancedRows(pool, share=0.5)
    drawn = torch.cat([rows(64, torch.Generator().manual_seed(s)) for s in range(20)]).numpy()
    first_half = np.concatenate([drawn[64 * b : 64 * b + 32] for b in range(20)])
    for name in TARGETS:
        assert (pool.loc[first_half, name] == 1).mean() == pytest.approx(1 / 3, abs=0.03), name  # 11, 11, 10 of 32
    assert (first_half < 30).all() and (drawn >= 30).mean() > 0.45  # the rest spread over the whole pool
    same = rows(64, torch.Generator().manual_seed(3)), rows(64, torch.Generator().manual_seed(3))
    assert torch.equal(*same), "a step's rows must depend only on its seed (exact resume)"
    assert (BalancedRows(pool.assign(**{t: 0.0 for t in TARGETS}), 0.5)(64, torch.Generator()) < 1000).all()


def test_train_gan_writes_a_run_and_resumes(small):
    run = small / "gan"
    assert {"config.json", "training-rows.csv", "generator.json", "losses.csv", "last.pt", "generator.pt"} <= {
        p.name for p in run.iterdir()
    }
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-000002.png", "step-000004.png"]
    saved = torch.load(run / "generator.pt", weights_only=True)  # plain tensors and a config, no code
    assert saved["config"]["labels"] == list(PATHOLOGIES) and saved["config"]["size"] == 32
    cfg = GanConfig(
        steps=6, batch_size=8, sample_every=2, checkpoint_every=2, data_dir=str(small / "data"), dataset="small", run_dir=str(run)
    )
    with pytest.raises(ChexbalError, match="--resume"):
        train_gan(cfg, quiet=True)
    train_gan(cfg, resume=True, quiet=True)
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 6


def test_negatives_change_nothing_before_negatives_from_and_train_the_label_classifier_after(small, tmp_path):
    """--negatives-from must leave the steps before it exactly as a run without --negatives (the shipped
    generator was continued that way from a run without them), and from it on C learns from fakes."""
    cfg = GanConfig(steps=2, batch_size=8, data_dir=str(small / "data"), dataset="small")
    states = {}
    for name, negatives, start in (("plain", (), 0), ("later", ("Fracture",), 2), ("now", ("Fracture",), 0)):
        run = train_gan(
            dataclasses.replace(cfg, negatives=negatives, negatives_from=start, run_dir=str(tmp_path / name)), quiet=True
        )
        states[name] = torch.load(run / "last.pt", weights_only=False)
    for net in ("G", "C"):
        assert all(torch.equal(v, states["later"][net][k]) for k, v in states["plain"][net].items()), net
    assert not torch.equal(states["now"]["C"]["classify.weight"], states["plain"]["C"]["classify.weight"])
    assert states["now"]["config"]["negatives"] == ("Fracture",)


def drop_label_classifier(saved):
    del saved["C"], saved["opt_c"]


def drop_a_setting(saved):
    del saved["config"]["classifier_lr"]


def shrink_a_layer(saved):
    saved["C"]["classify.weight"] = saved["C"]["classify.weight"][:-1]


@pytest.mark.parametrize(
    "damage, message",
    [
        (drop_label_classifier, "older chexbal without C, opt_c: start a new run"),
        (drop_a_setting, "older chexbal without classifier_lr: start a new run"),
        (shrink_a_layer, "holds networks of another shape .*: start a new run"),
    ],
)
def test_resume_refuses_a_run_written_with_other_networks(small, tmp_path, damage, message):
    """A last.pt from another chexbal gets one line, not a traceback from load_state_dict."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(small / "gan", old)
    saved = torch.load(old / "last.pt", weights_only=False)
    damage(saved)
    torch.save(saved, old / "last.pt")
    cfg = GanConfig(steps=8, batch_size=8, data_dir=str(small / "data"), dataset="small", run_dir=str(old))
    with pytest.raises(ChexbalError, match=message):
        train_gan(cfg, resume=True, quiet=True)


def test_train_gan_refuses_test_patients(small, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(small / "data" / "small", data / "leaky")
    subset_path = data / "leaky" / "subsets" / "frac-1.csv"
    subset = pd.read_csv(subset_path)
    subset.loc[subset["split"] == "test", "split"] = "pool"
    subset.to_csv(subset_path, index=False)
    with pytest.raises(ChexbalError, match="holds test patients"):
        train_gan(GanConfig(steps=1, data_dir=str(data), dataset="leaky", run_dir=str(tmp_path / "g")), quiet=True)


def test_generate_writes_the_plan_and_resumes(small, monkeypatch):
    folder = small / "data" / "small"
    checkpoint = small / "gan" / "generator.pt"
    monkeypatch.setattr(generate_module.store, "BLOCK", 8)
    where = generate(1.0, checkpoint, share=0.5, data_dir=small / "data", dataset="small", quiet=True)
    images, labels, _ = synthetic.load(folder, 1.0)
    first = images.copy()
    assert len(images) == len(labels) > 0 and images.dtype == np.uint8 and images.shape[1:] == (32, 32)
    assert set(labels["target"]) <= set(TARGETS) and list(labels.columns[2:]) == list(PATHOLOGIES)

    import shutil

    shutil.rmtree(where)
    real = generate_module.generate_block
    calls = []

    def crash_after_one(*args):
        if calls:
            raise KeyboardInterrupt
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(generate_module, "generate_block", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        generate(1.0, checkpoint, share=0.5, data_dir=small / "data", dataset="small", quiet=True)
    with pytest.raises(ChexbalError, match="incomplete|no generated set"):
        synthetic.load(folder, 1.0)
    monkeypatch.setattr(generate_module, "generate_block", real)
    generate(1.0, checkpoint, share=0.5, data_dir=small / "data", dataset="small", quiet=True)
    resumed, _, _ = synthetic.load(folder, 1.0)
    np.testing.assert_array_equal(resumed, first)


def test_generate_refuses_a_checkpoint_that_does_not_match(small, tmp_path):
    saved = torch.load(small / "gan" / "generator.pt", weights_only=True)
    wrong_size = tmp_path / "size.pt"
    torch.save({**saved, "config": {**saved["config"], "size": 64}}, wrong_size)
    wrong_labels = tmp_path / "labels.pt"
    torch.save({**saved, "config": {**saved["config"], "labels": sorted(PATHOLOGIES)}}, wrong_labels)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    for path, message in (
        (wrong_size, "makes 64 px images, but the dataset holds 32 px"),
        (wrong_labels, "another label set"),
        (garbage, "not a chexbal generator checkpoint"),
        (tmp_path / "absent.pt", "not found"),
    ):
        with pytest.raises(ChexbalError, match=message):
            generate(1.0, path, share=0.5, data_dir=small / "data", dataset="small", quiet=True)


def test_generate_refuses_bf16_sampling_for_a_gan_rather_than_ignoring_it(small):
    """A GAN samples in fp32 always: `--amp on` would be silently ignored, so it is refused, as is a
    value --amp does not know; auto and off draw the set."""
    kwargs = dict(share=0.5, data_dir=small / "data", dataset="small", quiet=True)
    checkpoint = small / "gan" / "generator.pt"
    with pytest.raises(ChexbalError, match="--amp on: a GAN samples in fp32"):
        generate(1.0, checkpoint, amp="on", **kwargs)
    with pytest.raises(ChexbalError, match="--amp must be auto, on or off, not 'yes'"):
        generate(1.0, checkpoint, amp="yes", **kwargs)
    where = generate(1.0, checkpoint, amp="off", **kwargs)
    assert "sampling" not in json.loads((where / "provenance.json").read_text())


@pytest.mark.slow
def test_the_generator_learns_to_draw_a_finding_it_is_asked_for(tmp_path):
    """On data where only Fracture has a sign (a bright top-left square), a short run already draws the
    square for Fracture vectors and not for the same vectors without Fracture: a label asked for
    reaches the image."""
    root = make_planted(tmp_path / "CheXpert-v1.0-small", n_patients=160)
    prepare("chexpert", root, 1.0, 32, data_dir=tmp_path / "data", dataset="planted", workers=1, quiet=True)
    cfg = GanConfig(
        steps=STEPS_TO_LEARN,
        batch_size=16,
        base=8,
        sample_every=10_000,
        data_dir=str(tmp_path / "data"),
        dataset="planted",
        run_dir=str(tmp_path / "gan"),
    )
    generator, _ = load_generator(train_gan(cfg, quiet=True) / "generator.pt", {"size": 32}, torch.device("cpu"))
    y = torch.zeros(64, len(PATHOLOGIES))
    y[:, PATHOLOGIES.index("Lung Lesion")] = 1
    with_sign = y.clone()
    with_sign[:, PATHOLOGIES.index(PLANTED)] = 1
    z = torch.randn(64, cfg.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        corner = [generator(z, labels)[:, 0, 3:12, 3:12].mean().item() for labels in (with_sign, y)]
    assert corner[0] - corner[1] > 0.3, f"corner brightness with and without {PLANTED}: {corner}"


def test_pair_change_tells_a_drawn_sign_from_a_change_spread_over_the_image():
    """The phantom's own pairs differ only where the sign is; a generator that changes every pixel
    a little moves a judge too, and only this measure tells the two apart."""
    from chexbal.generators.evaluation import pair_change

    off = np.full((6, 1, 64, 64), 100, np.uint8)
    sign = off.copy()
    sign[:, :, 20:30, 20:30] += 51  # 100 pixels, under the 204 that make the top 5%
    spread = off + np.uint8(2)
    local, diffuse = pair_change(sign, off), pair_change(spread, off)
    assert local["top_share"] == pytest.approx(1.0) and local["mean_change"] == pytest.approx(100 * 51 / 127.5 / 4096)
    assert diffuse["top_share"] == pytest.approx(204 / 4096) and diffuse["mean_change"] == pytest.approx(2 / 127.5)


def test_the_frechet_distance_is_fids_formula_and_finite_when_singular():
    """Every generator's FID goes through this: the same value as the textbook formula with a
    general matrix square root, the squared shift between equal spreads, and finite with fewer
    images than features."""
    from scipy import linalg

    from chexbal.generators.evaluation import frechet_distance

    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(6, 6))
    a, b = rng.normal(size=(3000, 6)) @ mixing, (rng.normal(size=(3000, 6)) * 1.5 + 0.4) @ mixing.T
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    textbook = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real)
    assert frechet_distance(a, b) == pytest.approx(textbook, rel=1e-9)
    features = rng.normal(size=(4000, 3))
    assert frechet_distance(features, features) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(features, features + 2.0) == pytest.approx(3 * 2.0**2)
    few = features[:5] @ np.ones((3, 8))  # 5 images, 8 features, rank 1
    assert np.isfinite(frechet_distance(few, few + 1.0)) and frechet_distance(few, few + 1.0) == pytest.approx(8.0)
