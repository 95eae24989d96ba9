"""Fixtures: tiny CheXpert-format datasets built here (chexbal/testing.py), with no download."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chexbal.data import store
from chexbal.data.prepare import prepare
from chexbal.testing import make_chexpert, make_planted

# `make test` runs two pytest-xdist workers. Each takes its share of the cores (two workers each
# running torch on every core would oversubscribe them): set here, before any test module imports
# torch (the imports above do not), and inherited by the processes the tests start.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(share))


@pytest.fixture
def chexpert_root(tmp_path: Path) -> Path:
    return make_chexpert(tmp_path / "CheXpert-v1.0-small")


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 4 images, so the tiny dataset spans many blocks (resume, partial regimens)."""
    monkeypatch.setattr(store, "BLOCK", 4)


@pytest.fixture(scope="session")
def planted(tmp_path_factory):
    base = tmp_path_factory.mktemp("planted")
    root = make_planted(base / "CheXpert-v1.0-small")
    prepare("chexpert", root, 1.0, 32, data_dir=base / "data", dataset="planted", workers=1, quiet=True)
    return base


@pytest.fixture(scope="session")
def rare(tmp_path_factory):
    """The planted data with rare targets (8%), prepared at regimens 0.5 and 1."""
    base = tmp_path_factory.mktemp("rare")
    root = make_planted(base / "CheXpert-v1.0-small", n_patients=300, target_rate=0.08)
    for frac in (1.0, 0.5):
        prepare("chexpert", root, frac, 32, data_dir=base / "data", dataset="rare", workers=1, quiet=True)
    return base
