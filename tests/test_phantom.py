from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from chexbal.cli import app
from chexbal.data.dataset import load_images, read_index, read_subset
from chexbal.data.labels import PATHOLOGIES
from chexbal.data.sources import phantom

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
def test_each_finding_has_a_sign_and_uncertain_is_weaker(finding):
    """Positive changes the image more than uncertain, which changes it more than absent."""
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
