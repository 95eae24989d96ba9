from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr

from chexbal.data import store
from chexbal.data.dataset import load_images, read_index, read_subset
from chexbal.data.labels import PATHOLOGIES
from chexbal.data.prepare import prepare
from chexbal.errors import ChexbalError


def run(root, tmp_path, **options):
    defaults = dict(source="chexpert", root=root, frac=1.0, size=32, data_dir=tmp_path / "data", workers=1, quiet=True)
    return prepare(**{**defaults, **options})


def test_lateral_rows_excluded_by_default_and_kept_with_all_views(chexpert_root, tmp_path):
    index = read_index(run(chexpert_root, tmp_path))
    assert index["Path"].str.contains("frontal").all()
    everything = read_index(run(chexpert_root, tmp_path, views="all", dataset="all-views"))
    assert everything["Path"].str.contains("lateral").any()
    assert len(everything) == len(pd.read_csv(chexpert_root / "train.csv"))


@pytest.mark.parametrize("policy, uncertain_becomes", [("ones", 1), ("zeros", 0)])
def test_label_policy_maps_uncertain_and_blank(chexpert_root, tmp_path, policy, uncertain_becomes):
    index = read_index(run(chexpert_root, tmp_path, uncertain=policy)).set_index("Path")
    raw = pd.read_csv(chexpert_root / "train.csv").set_index("Path").loc[index.index, list(PATHOLOGIES)]
    labels, raw = index[list(PATHOLOGIES)].to_numpy(), raw.to_numpy()
    assert (labels[raw == 1] == 1).all()
    assert (labels[raw == 0] == 0).all()
    assert (labels[np.isnan(raw)] == 0).all()
    assert (labels[raw == -1] == uncertain_becomes).all() and (raw == -1).any()
    assert set(np.unique(labels)) <= {0, 1}


def test_center_crop_then_resize(chexpert_root, tmp_path):
    folder = run(chexpert_root, tmp_path)
    images = load_images(folder, read_index(folder))
    # Every source image is 200 inside its central square and black outside it. A resize without
    # the crop would bring about 3 black columns or rows; JPEG blending at the edge is allowed.
    assert images.shape[1:] == (32, 32)
    assert images.min() > 100, "margins outside the center square leaked into the image"
    assert np.median(images) == 200


def test_test_split_is_by_patient_and_regimens_are_nested(chexpert_root, tmp_path):
    folder = run(chexpert_root, tmp_path, frac=0.1)
    for frac in (0.3, 1.0):
        run(chexpert_root, tmp_path, frac=frac)
    index = read_index(folder)
    test_patients = set(index.loc[index["split"] == "test", "patient"])
    pool_patients = set(index.loc[index["split"] == "pool", "patient"])
    assert test_patients and not test_patients & pool_patients
    previous = set()
    for frac in (0.1, 0.3, 1.0):
        subset = read_subset(folder, frac)
        assert set(subset.loc[subset["split"] == "test", "patient"]) == test_patients
        patients = set(subset.loc[subset["split"] == "pool", "patient"])
        assert previous < patients
        previous = patients
        # A regimen holds every image of each of its patients.
        assert len(subset) == index["patient"].isin(patients | test_patients).sum()
    assert previous == pool_patients


def test_same_seed_same_split_other_seed_other_split(chexpert_root, tmp_path):
    a = read_index(run(chexpert_root, tmp_path, dataset="a"))
    b = read_index(run(chexpert_root, tmp_path, dataset="b"))
    c = read_index(run(chexpert_root, tmp_path, dataset="c", seed=1))
    pd.testing.assert_frame_equal(a, b)
    assert set(a.loc[a["split"] == "test", "patient"]) != set(c.loc[c["split"] == "test", "patient"])


def test_interrupted_write_resumes_to_the_same_store(chexpert_root, tmp_path, small_blocks, monkeypatch):
    reference = run(chexpert_root, tmp_path, dataset="reference")
    real_write, calls = store.write_block, []

    def crash_after_two(*args):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(args[1])
        real_write(*args)

    monkeypatch.setattr(store, "write_block", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        run(chexpert_root, tmp_path, dataset="resumed")
    partial = zarr.open_array(tmp_path / "data" / "resumed" / "images.zarr")
    assert partial.attrs["complete_rows"] == 0
    with pytest.raises(ChexbalError, match="incomplete"):
        load_images(tmp_path / "data" / "resumed", read_index(tmp_path / "data" / "resumed"))

    monkeypatch.setattr(store, "write_block", real_write)
    written = []
    monkeypatch.setattr(store, "write_block", lambda *a: (written.append(a[1]), real_write(*a)))
    folder = run(chexpert_root, tmp_path, dataset="resumed")
    assert not set(written) & set(calls), "resume rewrote blocks that were already on disk"
    index = read_index(folder)
    np.testing.assert_array_equal(load_images(folder, index), load_images(reference, read_index(reference)))


def test_second_regimen_only_adds_missing_blocks(chexpert_root, tmp_path, small_blocks, monkeypatch):
    run(chexpert_root, tmp_path, frac=0.1)
    written = []
    real_write = store.write_block
    monkeypatch.setattr(store, "write_block", lambda *a: (written.append(a[1]), real_write(*a)))
    run(chexpert_root, tmp_path, frac=0.1)
    assert written == [], "a re-run of a complete prepare wrote again"
    run(chexpert_root, tmp_path, frac=1.0)
    assert written and min(written) > 0


def test_missing_and_corrupt_images_are_named_and_skippable(chexpert_root, tmp_path, small_blocks):
    table = pd.read_csv(chexpert_root / "train.csv")
    frontal = table[table["Frontal/Lateral"] == "Frontal"]["Path"].tolist()
    (chexpert_root / frontal[0].split("/", 1)[1]).unlink()
    (chexpert_root / frontal[1].split("/", 1)[1]).write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(ChexbalError, match="2 images are missing or unreadable") as err:
        run(chexpert_root, tmp_path)
    assert "patient" in str(err.value) and "--skip-bad" in str(err.value)
    folder = run(chexpert_root, tmp_path, skip_bad=True)
    skipped = pd.read_csv(folder / "skipped.csv")
    assert set(skipped["Path"]) == set(frontal[:2])
    assert not read_subset(folder, 1.0)["Path"].isin(frontal[:2]).any()


def test_other_settings_for_an_existing_dataset_are_refused(chexpert_root, tmp_path):
    folder = run(chexpert_root, tmp_path)
    before = (folder / "index.csv").read_text()
    with pytest.raises(ChexbalError, match="other settings"):
        run(chexpert_root, tmp_path, uncertain="zeros", dataset=folder.name)
    assert (folder / "index.csv").read_text() == before


def test_images_stream_to_the_device_block_by_block_in_the_rows_order(chexpert_root, tmp_path, small_blocks):
    """Rows in any order, repeated or spread over many blocks give the images a whole read gives."""
    import torch

    from chexbal.data.dataset import images_on

    folder = run(chexpert_root, tmp_path)
    index = read_index(folder)
    rows = pd.concat([index.sample(frac=1, random_state=0), index.head(3)])  # shuffled, then three repeats
    whole = store.open_complete(folder / "images.zarr", len(index))[:][rows["index"].to_numpy()]
    assert np.array_equal(load_images(folder, rows), whole)
    streamed = images_on(folder, rows, torch.device("cpu"), extra=2)
    assert streamed.shape == (len(rows) + 2, *whole.shape[1:]) and np.array_equal(streamed[: len(rows)].numpy(), whole)
    assert load_images(folder, rows.head(0)).shape == (0, *whole.shape[1:])
