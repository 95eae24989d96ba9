from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chexbal.cli import app
from chexbal.data.dataset import load_images, read_index, read_subset
from chexbal.data.labels import PATHOLOGIES
from chexbal.data.sources import phantom
from chexbal.errors import ChexbalError

PATH = "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"


def labels(**findings) -> np.ndarray:
    raw = np.full(len(PATHOLOGIES), np.nan)
    for name, value in findings.items():
        raw[PATHOLOGIES.index(name.replace("_", " "))] = value
    return raw


def test_rendering_is_deterministic_per_row_and_seed():
    raw = labels(Fracture=1)
    a, b = phantom.render(PATH, raw, 64, 0), phantom.render(PATH, raw, 64, 0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, phantom.render(PATH, raw, 64, 1))
    assert not np.array_equal(a, phantom.render(PATH.replace("00001", "00002"), raw, 64, 0))


@pytest.mark.parametrize("finding", PATHOLOGIES[1:])
def test_each_finding_has_a_sign_and_uncertain_is_weaker(finding, monkeypatch):
    """Positive changes the image more than uncertain, which changes it more than absent (every
    label shown, so the label noise does not hide a sign)."""
    monkeypatch.setitem(phantom.SHOWN, finding, (1.0, 1.0, 0.0))
    diffs = {}
    for value in (1, -1):
        changes = []
        for k in range(6):
            path = PATH.replace("00001", f"{k:05d}")
            base = phantom.render(path, labels(), 64, 0).astype(float)
            changes.append(np.abs(phantom.render(path, labels(**{finding: value}), 64, 0) - base).sum())
        diffs[value] = np.mean(changes)
    assert diffs[1] > diffs[-1] > 0


@pytest.mark.slow
def test_phantom_prepare_through_the_cli(tmp_path):
    result = CliRunner().invoke(app, ["prepare", "--frac", "0.001", "--size", "32", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "phantom-32"
    subset = read_subset(folder, 0.001)
    images = load_images(folder, subset)
    assert images.shape == (len(subset), 32, 32) and images.std() > 10
    index = read_index(folder)
    assert index["Path"].str.startswith("CheXpert-v1.0-small/train/patient").all()
    assert 0.04 < (index["split"] == "test").mean() < 0.06
    info = CliRunner().invoke(app, ["info", "phantom-32", "--data-dir", str(tmp_path)])
    assert info.exit_code == 0 and "Pleural Other" in info.output and "frac-0.001" in info.output


def test_the_label_noise_rates_are_honoured_on_a_large_render(monkeypatch):
    """Over many rows, the share showing each target's sign is its SHOWN rate per raw label, within
    four binomial standard errors."""
    n = 2000
    for target in ("Lung Lesion", "Pleural Other", "Fracture"):
        for value, rate in zip((1, -1, 0), phantom.SHOWN[target]):
            paths = [f"CheXpert-v1.0-small/train/patient{k:05d}/study1/view1_frontal.jpg" for k in range(n)]
            drawn = phantom.signs(paths, np.tile(labels(**{target: value}), (n, 1)), 64, 0)[f"drawn {target}"]
            tolerance = 4 * np.sqrt(max(rate * (1 - rate), 1 / n) / n)
            assert abs(drawn.mean() - rate) <= tolerance, (target, value, drawn.mean(), rate)


def test_the_oracle_ceiling_is_the_drawn_indicators_auc_by_hand():
    from chexbal.analysis.oracle import oracle_ceiling

    # 4 positives (3 drawn), 6 negatives (1 drawn): AUC = P(drawn pos > drawn neg) + ties / 2
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    drawn = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    rows = pd.DataFrame({"index": range(10), **{name: 0 for name in PATHOLOGIES}})
    rows["Fracture"] = y
    signs = pd.DataFrame({"drawn Fracture": drawn}, index=pd.Index(range(10), name="index"))
    pairs = [(p, q) for p in range(4) for q in range(4, 10)]
    by_hand = sum(1.0 if drawn[p] > drawn[q] else 0.5 if drawn[p] == drawn[q] else 0.0 for p, q in pairs) / len(pairs)
    assert oracle_ceiling(rows, signs)["Fracture"] == pytest.approx(by_hand)  # (3*5 + 0.5*(3*1 + 1*5)) / 24


@pytest.mark.parametrize("target", ["Lung Lesion", "Pleural Other", "Fracture"])
def test_signs_agree_with_the_pixels(target):
    """Where signs.csv says a sign was drawn, hiding it changes the image inside its box and almost
    nowhere else; where it says none was drawn, hiding changes nothing."""
    raw = labels(**{target: 1})
    checked = 0
    for k in range(12):
        path = PATH.replace("00001", f"{k:05d}")
        row = phantom.signs([path], raw[None], 64, 0).iloc[0]
        shown = phantom.render(path, raw, 64, 0).astype(int)
        hidden = phantom.render(path, raw, 64, 0, hidden=(target,)).astype(int)
        change = np.abs(shown - hidden)
        if not row[f"drawn {target}"]:
            assert change.sum() == 0
            continue
        x0, y0, x1, y1 = (row[f"{target} {corner}"] for corner in ("x0", "y0", "x1", "y1"))
        inside = np.zeros(change.shape, bool)
        inside[max(0, int(np.floor(y0))) : int(np.ceil(y1)) + 1, max(0, int(np.floor(x0))) : int(np.ceil(x1)) + 1] = True
        assert change[inside].sum() > 100 and change[~inside].sum() < 0.02 * change[inside].sum()
        checked += 1
    assert checked >= 4


def test_a_dataset_from_another_renderer_version_is_refused(tmp_path):
    from chexbal.data import store
    from chexbal.data.dataset import open_images

    folder = tmp_path / "phantom-64"
    store.open_or_create(folder / "images.zarr", 4, 16, {"source": "phantom", "renderer_version": phantom.RENDERER_VERSION - 1})
    with pytest.raises(
        ChexbalError,
        match=f"renderer_version {phantom.RENDERER_VERSION - 1}, this chexbal has {phantom.RENDERER_VERSION}: delete .* `chexbal prepare` again",
    ):
        open_images(folder, 0)


def test_a_generator_that_learnt_another_renderer_version_is_refused():
    from chexbal.generators.generate import check_renderer

    dataset = {"source": "phantom", "renderer_version": phantom.RENDERER_VERSION}
    with pytest.raises(ChexbalError, match="learnt from phantom renderer version 1.*retrain it"):
        check_renderer(Path("old.pt"), {"dataset": "phantom-64"}, dataset)  # written before versions were recorded
    check_renderer(Path("new.pt"), {"trained_on": {"renderer_version": phantom.RENDERER_VERSION}}, dataset)
    check_renderer(Path("any.pt"), {}, {"source": "chexpert"})  # real images have no renderer


def test_a_faint_share_draws_that_share_of_signs_at_the_faint_strength(monkeypatch):
    """FAINT dims the stated share of a target's shown signs by its factor, and leaves every other
    decision of the scene (which signs are shown, where) as it was."""
    monkeypatch.setitem(phantom.SHOWN, "Lung Lesion", (1.0, 1.0, 0.0))
    monkeypatch.setitem(phantom.FAINT, "Lung Lesion", (0.0, 1.0))
    paths = [f"CheXpert-v1.0-small/train/patient{k:05d}/study1/view1_frontal.jpg" for k in range(400)]
    raw = labels(Lung_Lesion=1)
    clear = [phantom.scene(path, raw, 0) for path in paths]
    monkeypatch.setitem(phantom.FAINT, "Lung Lesion", (0.25, 0.3))
    mixed = [phantom.scene(path, raw, 0) for path in paths]
    ratio = np.array([m["strength"]["Lung Lesion"] / c["strength"]["Lung Lesion"] for m, c in zip(mixed, clear)])
    assert set(np.round(ratio, 6)) == {0.3, 1.0}
    assert abs((ratio < 1).mean() - 0.25) <= 4 * np.sqrt(0.25 * 0.75 / len(paths))
    assert all(m["place"] == c["place"] for m, c in zip(mixed, clear))


def test_a_fracture_gap_as_deep_as_its_sign_leaves_clear_fractures_as_they_were(monkeypatch):
    """A gap as deep as the sign (version 4) keeps every clear fracture's pixels as version 3 drew them,
    and more of the broken rib (brighter, nowhere darker) where the fracture is uncertain."""
    monkeypatch.setitem(phantom.SHOWN, "Fracture", (1.0, 1.0, 0.0))
    monkeypatch.setitem(phantom.FAINT, "Fracture", (0.0, 1.0))  # every shown positive fracture is clear
    paths = [PATH.replace("00001", f"{k:05d}") for k in range(6)]
    monkeypatch.setattr(phantom, "GAP_FOLLOWS_STRENGTH", False)  # version 3's full gap
    before = {value: [phantom.render(p, labels(Fracture=value), 64, 0).astype(int) for p in paths] for value in (1, -1)}
    monkeypatch.setattr(phantom, "GAP_FOLLOWS_STRENGTH", True)
    after = {value: [phantom.render(p, labels(Fracture=value), 64, 0).astype(int) for p in paths] for value in (1, -1)}
    assert all(np.array_equal(a, b) for a, b in zip(before[1], after[1]))
    assert all((b >= a).all() and (b > a).any() for a, b in zip(before[-1], after[-1]))
