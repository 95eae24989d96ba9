"""The report from a small set of runs made here: tables, CIs, HTML, CAMs."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import torch

from chexbal.analysis.figures import arm_colour
from chexbal.analysis.report import report
from chexbal.classify import classifier
from chexbal.classify.arms import ARMS
from chexbal.classify.cam import GradCam
from chexbal.classify.train import TrainConfig, train
from chexbal.data.dataset import load_images, read_index
from chexbal.data.labels import PATHOLOGIES, TARGETS
from chexbal.data.prepare import prepare
from chexbal.generators.evaluation import gan_eval
from chexbal.generators.gan.train import GanConfig, train_gan
from chexbal.generators.generate import generate
from chexbal.testing import PLANTED

pytestmark = pytest.mark.slow  # every test here shares a study of trained runs


@pytest.fixture(scope="module")
def study(planted, tmp_path_factory):
    """A 64 px planted dataset with a tiny GAN, its generated set, the three arms and a GAN evaluation."""
    base = tmp_path_factory.mktemp("study")
    data = base / "data"
    prepare("chexpert", planted / "CheXpert-v1.0-small", 1.0, 64, data_dir=data, dataset="p64", workers=1, quiet=True)
    train_gan(GanConfig(steps=2, batch_size=8, base=8, data_dir=str(data), dataset="p64", run_dir=str(base / "gan")), quiet=True)
    generate(1.0, base / "gan" / "generator.pt", share=0.55, data_dir=data, dataset="p64", quiet=True)
    for aug in ("none", "standard", "gan"):
        cfg = TrainConfig(frac=1.0, aug=aug, epochs=2, batch_size=16, data_dir=str(data), dataset="p64", amp="off")
        cfg.run_dir = str(base / "runs" / cfg.default_run_dir().relative_to("runs"))
        train(cfg, quiet=True)
    gan_eval(
        next((base / "runs" / "p64" / "frac-1" / "none").iterdir()),
        base / "gan" / "generator.pt",
        n=40,
        data_dir=data,
        dataset="p64",
        out=base / "runs" / "p64" / "gan-eval.json",
        quiet=True,
    )
    folder = report("test", base / "runs", data, "p64", base / "reports", n_boot=200)
    return base, folder


class TagBalance(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.sources = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.sources += [attrs[k] for k in ("src", "href") if k in attrs]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_report_files_and_self_contained_html(study):
    _, folder = study
    assert {
        "report.md",
        "report.html",
        "samples.png",
        "learning-curves.png",
        "cams.png",
        "forest.png",
        "table2.csv",
        "comparisons.csv",
    } <= {p.name for p in folder.iterdir()}
    page = (folder / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    parser = TagBalance()
    parser.feed(page)
    assert parser.errors == [] and parser.stack == []
    outside = [s for s in parser.sources if not s.startswith(("data:image/png;base64,", "#"))]  # "#": the contents
    assert parser.sources and not outside, f"HTML refers to outside files: {outside}"
    markdown = (folder / "report.md").read_text()
    for heading in (
        "The answer",
        "Table 1",
        "Table 2",
        "Comparisons",
        "Validation positives",
        "Samples",
        "Learning curves",
        "Class activation maps",
        "Generator quality",
        "sensitivity to uncertain labels",
        "each seed's run",
        "Provenance",
    ):
        assert heading in markdown
    assert "— (not run)" not in markdown.split("## Appendix")[0], "an arm that ran is reported as missing"


def test_table2_cis_contain_their_estimates_and_name_the_classes(study):
    _, folder = study
    table = pd.read_csv(folder / "table2.csv")
    assert set(table["arm"]) == {"none", "standard", "gan"}
    assert ((table["ci_low"] <= table["auc"]) & (table["auc"] <= table["ci_high"])).all()
    planted_none = table[(table["class"] == PLANTED) & (table["arm"] == "none")]["auc"].item()
    assert planted_none > table[(table["class"] != PLANTED) & (table["arm"] == "none")]["auc"].max()
    comparisons = pd.read_csv(folder / "comparisons.csv")
    assert set(comparisons["arm"]) == {"standard", "gan"} and set(comparisons["against"]) == {"none"}
    assert ((comparisons["p"] <= comparisons["p_holm"]) & (comparisons["p_holm"] <= 1)).all()
    assert set(comparisons["verdict"]) <= {"helps", "hurts", "no detectable difference"}


def test_gan_eval_writes_each_generated_image_with_its_conditions_and_scores(study):
    """The per-image table behind the medians: a user can find which generated images miss a finding."""

    base, _ = study
    images = pd.read_csv(base / "runs" / "p64" / "gan-eval-images.csv")
    result = json.loads((base / "runs" / "p64" / "gan-eval.json").read_text())
    assert len(images) == result["generated"] and list(images.columns[2:16]) == list(PATHOLOGIES)
    assert images[[f"p {name}" for name in PATHOLOGIES]].stack().between(0, 1).all()
    for target in TARGETS:
        made_for = images[images["group"] == target]
        assert len(made_for) and (made_for[target] == 1).all(), f"images made for {target} lack its label"
        assert result["median_probability"]["generated"][target] == pytest.approx(made_for[f"p {target}"].median(), abs=1e-6)


def test_generators_are_compared_over_equal_numbers_and_a_worse_one_is_named_worse(study):
    from chexbal.analysis.wording import quality_verdicts

    base, folder = study
    result = json.loads((base / "runs" / "p64" / "gan-eval.json").read_text())
    assert result["frechet_comparable"]["images"] == 40  # n = 40 is below 300: every image, 10 per group
    assert "The generators side by side" in (folder / "report.md").read_text()

    def evaluated(frechet, fracture_ci, kind="diffusion"):
        shifts = {t: {"median_shift": 0.004, "ci": [0.001, 0.007]} for t in TARGETS}
        shifts["Fracture"] = {"median_shift": 0.001, "ci": fracture_ci}
        return {"generator_kind": kind, "frechet_comparable": {"images": 300, "overall": frechet}, "counterfactual": shifts}

    results = {"gan-eval-pool": evaluated(51.0, [0.001, 0.004], "gan"), "worse": evaluated(97.0, [-0.001, 0.003])}
    results["better"] = evaluated(40.0, [0.0005, 0.003])
    worse, better = quality_verdicts(results, "gan-eval-pool")
    assert "does not draw Fracture" in worse and "worse than the pool GAN" in worse and "97.0 against 51.0" in worse
    assert "not measured here (no recipe evaluated twice)" in worse
    assert "draws all three findings" in better and "no farther from the real images" in better


def test_a_frechet_gap_smaller_than_two_seeds_of_one_recipe_is_not_called_worse():
    """Two regimen GANs of one recipe came out 34.9 and 42.6; the report called the second worse than
    the pool GAN's 41.1, a gap a fifth of what its seed alone moved."""
    from chexbal.analysis.wording import quality_verdicts

    def evaluated(frechet, seed=0, frac=0.1, kind="gan"):
        shifts = {t: {"median_shift": 0.004, "ci": [0.001, 0.007]} for t in TARGETS}
        return {
            "generator_kind": kind,
            "generator_seed": seed,
            "trained_on": {"frac": frac},
            "frechet_comparable": {"images": 300, "overall": frechet},
            "counterfactual": shifts,
        }

    results = {"pool": evaluated(41.1, frac=1.0), "regimen": evaluated(34.9), "regimen-seed1": evaluated(42.6, seed=1)}
    results["diffusion"] = evaluated(74.2, frac=1.0, kind="diffusion")
    lines = dict(zip(["regimen", "regimen-seed1", "diffusion"], quality_verdicts(results, "pool")))
    assert "no farther" in lines["regimen"]
    assert "not called worse" in lines["regimen-seed1"] and "regimen 34.9 and regimen-seed1 42.6" in lines["regimen-seed1"]
    assert "worse than the pool GAN" in lines["diffusion"] and "not measured" not in lines["diffusion"]


def test_every_arm_and_an_imported_one_have_colours_of_their_own():
    """The 10% page drew real-extra and diffusion-regimen in one colour: tab10 has ten, ARMS eleven."""
    colours = [str(arm_colour(arm)) for arm in (*ARMS, "synthetic:mine")]
    assert len(set(colours)) == len(ARMS) + 1


def test_a_missing_arm_is_a_marked_gap(study, tmp_path):
    import shutil

    base, _ = study
    shutil.copytree(base / "runs", tmp_path / "runs")
    shutil.rmtree(tmp_path / "runs" / "p64" / "frac-1" / "gan")
    (tmp_path / "runs" / "p64" / "gan-eval.json").unlink()
    folder = report("gap", tmp_path / "runs", base / "data", "p64", tmp_path / "reports", n_boot=200)
    markdown = (folder / "report.md").read_text()
    assert (
        "— (not run)" in markdown
        and "No generator-augmented run: gap." in markdown
        and "No `chexbal gan-eval` result" in markdown
    )


def test_a_page_of_runs_in_two_precisions_says_so(study, tmp_path):
    """A plan's runs may come from machines of two kinds (bf16 units or not), which `--amp auto`
    trains in different precisions: the page must not mix them silently."""
    import shutil

    base, _ = study
    shutil.copytree(base / "runs", tmp_path / "runs")
    config = next((tmp_path / "runs" / "p64" / "frac-1" / "gan").iterdir()) / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "amp_enabled": True}))
    folder = report("mixed", tmp_path / "runs", base / "data", "p64", tmp_path / "reports", n_boot=200)
    markdown = (folder / "report.md").read_text()
    assert "**Mixed precision**: of these runs 1 trained with bf16 autocast and 2 in fp32" in markdown
    assert "Mixed precision" not in (base / "reports" / "test" / "report.md").read_text()


def test_a_plans_page_names_its_unrun_regimens_as_gaps_and_no_others(study, planted, tmp_path):
    """`chexbal experiment` passes its plan's regimens: one that no run reached (25% here; a GPU's 50%
    on the CPU's page) is a gap under the answer; one with runs is not, nor one prepared here but
    not planned (50% here; 100% on a 10% page, prepared for the pool generator). `chexbal report`
    without a plan names the prepared one."""
    import shutil

    base, _ = study
    shutil.copytree(base / "data", tmp_path / "data")
    prepare(
        "chexpert", planted / "CheXpert-v1.0-small", 0.5, 64, data_dir=tmp_path / "data", dataset="p64", workers=1, quiet=True
    )

    def answer(name: str, planned: tuple) -> str:
        folder = report(name, base / "runs", tmp_path / "data", "p64", tmp_path / "reports", n_boot=100, planned=planned)
        return (folder / "report.md").read_text().split("## Table 1")[0]

    assert "no finished run (gaps in this report): 25%." in answer("plan", (0.25, 1.0))
    assert "no finished run (gaps in this report): 50%." in answer("prepared", ())


def test_a_plans_page_reports_only_the_plans_runs_whatever_else_has_run(study, tmp_path):
    """A 10% plan's page once took in a 1% `oversample` run that a longer plan had just finished:
    a row it did not plan, and comparisons that widened its Holm family. Its generator-quality
    section likewise holds only the generators of its arms."""
    base, _ = study

    def page(name: str, arms: tuple[str, ...]) -> Path:
        only = {(1.0, arm): (0,) for arm in arms}
        return report(name, base / "runs", base / "data", "p64", tmp_path / "reports", n_boot=100, only=only)

    folder = page("plan", ("none", "gan"))
    table = pd.read_csv(folder / "table2.csv")
    assert set(table["arm"]) == {"none", "gan"}
    assert set(pd.read_csv(folder / "comparisons.csv")["arm"]) == {"gan"}
    assert "standard" in set(pd.read_csv(base / "reports" / "test" / "table2.csv")["arm"])  # on disk, left out
    assert "**gan-eval**:" in quality_section(folder)  # the pool GAN's check, beside the `gan` arm
    without_gan = page("no-generator", ("none", "standard"))
    quality = quality_section(without_gan)
    assert "**gan-eval**" not in quality and "for a generator of this report's arms: gap" in quality
    assert "No generated set of this report's arms: gap." in (without_gan / "report.md").read_text()
    assert not (without_gan / "samples.png").exists()  # the GAN's set is on disk, its arm not on the page


def quality_section(folder: Path) -> str:
    return (folder / "report.md").read_text().split("## Generator quality")[1].split("\n## ")[0]


def test_without_the_gan_arm_the_samples_and_maps_show_the_generator_arm_that_ran(study, tmp_path):
    import shutil

    base, _ = study
    shutil.copytree(base / "runs", tmp_path / "runs")
    shutil.copytree(base / "data", tmp_path / "data")
    frac_dir = tmp_path / "runs" / "p64" / "frac-1"
    (frac_dir / "gan").rename(frac_dir / "gan-regimen")  # the same images, served as the regimen GAN's set
    sets = tmp_path / "data" / "p64" / "synthetic"
    (sets / "frac-1").rename(sets / "frac-1-regimen")
    (tmp_path / "runs" / "p64" / "gan-eval.json").unlink()
    folder = report("regimen-only", tmp_path / "runs", tmp_path / "data", "p64", tmp_path / "reports", n_boot=200)
    markdown = (folder / "report.md").read_text()
    assert (folder / "samples.png").exists() and (folder / "cams.png").exists()
    assert "Grad-CAM maps of" in markdown and "gan-regimen" in markdown and "No generated set" not in markdown


def test_cams_have_the_image_size_and_peak_at_the_planted_finding(study):
    base, _ = study
    folder = base / "data" / "p64"
    model = classifier.load_run(next((base / "runs" / "p64" / "frac-1" / "none").iterdir()))
    index = read_index(folder)
    positives = index[index[PLANTED] == 1].head(12)
    maps = GradCam(model, 64).maps(load_images(folder, positives), PLANTED)
    assert maps.shape == (len(positives), 64, 64) and maps.min() >= 0 and maps.max() <= 1
    # The bright square sits in the top-left quadrant of every positive.
    top_left, bottom_right = maps[:, :32, :32].mean(axis=(1, 2)), maps[:, 32:, 32:].mean(axis=(1, 2))
    assert (top_left > bottom_right).mean() >= 0.75


def test_the_pointing_game_finds_the_maps_on_the_drawn_sign(study, tmp_path):
    """Given where each sign was drawn (a phantom's signs.csv; here the planted square's box), the
    arms' Grad-CAM peaks land inside the box far more often than a random peak would."""
    import shutil

    from chexbal.analysis.localisation import pointing_table
    from chexbal.analysis.results import find_runs

    base, _ = study
    folder = tmp_path / "p64"
    shutil.copytree(base / "data" / "p64", folder)
    index = read_index(folder)
    signs = pd.DataFrame({"index": index["index"], f"drawn {PLANTED}": index[PLANTED].astype(int)})
    for target in TARGETS:  # the 48 px square at 4..19 is 5.3..26.7 at 64 px
        for corner, value in zip(("x0", "y0", "x1", "y1"), (5, 5, 27, 27)):
            signs[f"{target} {corner}"] = value
        signs[f"drawn {target}"] = signs.get(f"drawn {target}", 0)
    signs.to_csv(folder / "signs.csv", index=False)
    table = pointing_table(folder, find_runs(base / "runs", "p64"), 1.0).set_index(["arm", "target"])
    assert {"none", "standard", "gan", "chance (random peak)"} == set(table.index.get_level_values("arm"))
    chance = table.loc[("chance (random peak)", PLANTED), "rate"]
    assert chance == pytest.approx(23 * 23 / 64**2)
    for arm in ("none", "standard", "gan"):
        row = table.loc[(arm, PLANTED)]
        assert row["images"] >= 5 and row["low"] > chance, f"{arm}: {row['hits']} of {row['images']} hits"
        assert table.loc[(arm, "Lung Lesion"), "images"] == 0  # nothing drawn: no score, no error


class PlantedDrawer(torch.nn.Module):
    """A stand-in generator for 64 px planted data: noise from the latent, and the planted square
    where `bit` of the label vector is set (`bit` None: never, whatever the labels say)."""

    z_dim = 8

    def __init__(self, bit):
        super().__init__()
        self.bit = bit

    def draw(self, y, rng):
        z = torch.randn(len(y), self.z_dim, generator=rng)
        images = torch.full((len(z), 1, 64, 64), -0.3) + 0.1 * z[:, :1, None, None].tanh()
        if self.bit is not None:
            images[:, :, 8:40, 8:40] += 1.2 * y[:, self.bit, None, None, None]
        return images.clamp(-1, 1)


def test_counterfactual_fidelity_is_zero_for_a_generator_that_ignores_the_target_bit(study):
    from chexbal.generators.evaluation import counterfactual_images, counterfactual_shift, evaluation_conditions, load_judge

    base, _ = study
    judge = load_judge(next((base / "runs" / "p64" / "frac-1" / "none").iterdir()))
    index = read_index(base / "data" / "p64")
    conditions = evaluation_conditions(index[index["split"] == "pool"], 80, 0)
    blind = counterfactual_shift(judge, counterfactual_images(PlantedDrawer(None), conditions, 0), 100, 0)
    drawing = counterfactual_shift(judge, counterfactual_images(PlantedDrawer(PATHOLOGIES.index(PLANTED)), conditions, 0), 100, 0)
    for target in TARGETS:
        assert blind[target]["median_shift"] == 0 and blind[target]["share_raised"] == 0
        assert blind[target]["mean_change"] == 0  # on and off are the same image
    assert drawing[PLANTED]["median_shift"] > 0.2 and drawing[PLANTED]["share_raised"] > 0.9
    assert drawing[PLANTED]["ci"][0] > 0


def test_gan_eval_refuses_a_judge_that_saw_augmented_data(study):
    from chexbal.errors import ChexbalError
    from chexbal.generators.evaluation import load_judge

    base, _ = study
    with pytest.raises(ChexbalError, match="not a no-augmentation run"):
        load_judge(next((base / "runs" / "p64" / "frac-1" / "gan").iterdir()))


@pytest.mark.parametrize(
    ("kind", "frac", "seed", "arm"),
    [
        ("gan", 1.0, 0, "gan"),
        ("gan", 0.1, 0, "gan-regimen"),
        ("gan", 0.1, 1, "gan-regimen-seed1"),
        ("gan", 0.1, 7, "gan-regimen"),  # a seed no arm names sits beside the first regimen GAN
        ("diffusion", 0.1, 0, "diffusion-regimen"),
    ],
)
def test_a_generators_quality_sits_beside_the_arm_it_served(kind, frac, seed, arm):
    from chexbal.analysis.report import quality_arm

    assert quality_arm({"generator_kind": kind, "trained_on": {"frac": frac}, "generator_seed": seed}) == arm
