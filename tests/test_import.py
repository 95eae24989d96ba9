"""`chexbal import-synthetic`: any generator's images under the fair protocol, and its refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from PIL import Image
from typer.testing import CliRunner

from chexbal.analysis.results import generators_table
from chexbal.classify.train import TrainConfig, load_data
from chexbal.cli import app
from chexbal.data.dataset import training_rows
from chexbal.data.labels import PATHOLOGIES, TARGETS
from chexbal.generators.plan import make_plan


def planned(rare) -> dict[str, int]:
    return make_plan(training_rows(rare / "data" / "rare", 0.5, 0)).generate


def make_images(where, counts: dict[str, int], size: int = 32, mode: str = "L"):
    """PNG files, `counts[target]` positive for each target (and one with none), and their labels CSV."""
    where.mkdir(parents=True, exist_ok=True)
    rng, rows = np.random.default_rng(0), []
    for target, n in [*counts.items(), ("No Finding", 1)]:
        for k in range(n):
            path = f"{target.replace(' ', '_')}-{k}.png"
            pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
            Image.fromarray(pixels).convert(mode).save(where / path)
            rows.append({"Path": path, **{name: float(name == target) for name in PATHOLOGIES}})
    pd.DataFrame(rows).to_csv(where / "labels.csv", index=False)
    return where, where / "labels.csv"


def run_import(rare, source, labels, *extra: str):
    options = ["--labels", str(labels), "--frac", "0.5", "--data-dir", str(rare / "data"), "--dataset", "rare"]
    options += ["--trained-on", "RoentGen fine-tuned on MIMIC-CXR, no CheXpert patient"]
    return CliRunner().invoke(app, ["import-synthetic", str(source), *options, *extra])


def test_an_imported_set_trains_as_its_arm_and_its_declaration_reaches_the_report(rare, tmp_path):
    counts = {t: n + 2 for t, n in planned(rare).items()}
    source, labels = make_images(tmp_path / "mine", counts)
    result = run_import(rare, source, labels, "--name", "mine")
    assert result.exit_code == 0, result.output
    data = load_data(
        TrainConfig(frac=0.5, aug="synthetic:mine", data_dir=str(rare / "data"), dataset="rare"), torch.device("cpu")
    )
    assert len(data.extra.images) == sum(planned(rare).values()) and data.extra.record["kind"] == "imported"
    assert data.extra.record["generator_trained_on"]["declared"].startswith("RoentGen")
    table = generators_table(rare / "data" / "rare", [0.5]).set_index("arm")
    assert table.loc["synthetic:mine", "generator trained on regimen"].startswith("declared: RoentGen")
    assert table.loc["synthetic:mine", "short of the plan"] == "no"
    again = run_import(rare, source, labels, "--name", "mine")
    assert again.exit_code != 0 and "already holds an imported set" in again.output


def test_an_imported_set_is_judged_on_what_can_be_measured_without_its_generator(rare, tmp_path):
    from chexbal.analysis.report import judged_what, quality_arm
    from chexbal.classify.train import train
    from chexbal.generators.evaluation import imported_eval, quality_table

    source, labels = make_images(tmp_path / "judged", {t: n for t, n in planned(rare).items()})
    assert run_import(rare, source, labels, "--name", "judged").exit_code == 0
    judge = train(
        TrainConfig(frac=0.5, epochs=1, data_dir=str(rare / "data"), dataset="rare", run_dir=str(tmp_path / "judge")),
        quiet=True,
    )
    result = imported_eval(judge, "judged", 0.5, data_dir=rare / "data", dataset="rare", out=tmp_path / "eval.json")
    assert result["generated"] == sum(planned(rare).values()) and result["frechet"]["overall"] > 0
    assert set(result["median_probability"]["generated"]) == set(TARGETS) and "counterfactual" not in result
    assert quality_arm(result) == "synthetic:judged" and "not measured" in judged_what(result)
    assert quality_table(result)["AUC generated"].isna().all()


def test_a_zarr_array_imports_and_a_short_set_says_so(rare, tmp_path):
    counts = {t: max(n - 1, 0) for t, n in planned(rare).items()}
    _, labels = make_images(tmp_path / "png", counts)
    table = pd.read_csv(labels).drop(columns="Path")
    table.to_csv(tmp_path / "labels.csv", index=False)
    array = zarr.create_array(tmp_path / "mine.zarr", shape=(len(table), 32, 32), dtype="uint8")
    array[:] = np.random.default_rng(1).integers(0, 256, (len(table), 32, 32), dtype=np.uint8)
    refused = run_import(rare, tmp_path / "mine.zarr", tmp_path / "labels.csv", "--name", "z")
    assert refused.exit_code != 0 and "--allow-short" in refused.output and "Traceback" not in refused.output
    result = run_import(rare, tmp_path / "mine.zarr", tmp_path / "labels.csv", "--name", "z", "--allow-short")
    assert result.exit_code == 0 and "short of the plan" in result.output, result.output
    row = generators_table(rare / "data" / "rare", [0.5]).set_index("arm").loc["synthetic:z"]
    assert all(f"{t} {counts[t]} of {planned(rare)[t]}" in row["short of the plan"] for t in TARGETS if planned(rare)[t])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": 48}, "is 48x48 px, the dataset holds 32x32: pass --resize"),
        ({"mode": "RGB"}, "has RGB pixels, not single-channel grey"),
        ({"drop": "Fracture"}, "lacks label columns Fracture"),
    ],
)
def test_bad_imports_are_refused_with_one_line_and_write_nothing(rare, tmp_path, change, message):
    counts = {t: n + 1 for t, n in planned(rare).items()}
    source, labels = make_images(tmp_path / "bad", counts, size=change.get("size", 32), mode=change.get("mode", "L"))
    if "drop" in change:
        pd.read_csv(labels).drop(columns=change["drop"]).to_csv(labels, index=False)
    name = f"bad-{next(iter(change))}"
    result = run_import(rare, source, labels, "--name", name)
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert sum(line.startswith("error:") for line in result.output.splitlines()) == 1
    assert not (rare / "data" / "rare" / "synthetic" / f"frac-0.5-import-{name}").exists()
    if "size" in change:
        resized = run_import(rare, source, labels, "--name", name, "--resize")
        assert resized.exit_code == 0 and "resized" in resized.output, resized.output
