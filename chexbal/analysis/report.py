"""`chexbal report`: the runs, generated sets and plans on disk, as one page that answers the question.

The page is assembled here from three layers: results.py (the numbers), wording.py (the numbers in
words and display tables) and render.py (Markdown and HTML).

reports/<name>/report.md, a self-contained report.html (figures embedded) and the PNG figures. Each
arm's test AUC is the mean over its training seeds, with an interval that resamples seeds and test
patients (stats.py); every comparison is paired by seed, Holm-corrected within its table, and worded
from the numbers. Whatever is missing (an arm not trained, a regimen absent, no GAN evaluation) is a
marked gap.
"""

from __future__ import annotations

import platform
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from chexbal import __version__, files
from chexbal.analysis import figures
from chexbal.analysis.localisation import pointing_grid, pointing_table
from chexbal.analysis.paper import beside_paper
from chexbal.analysis.render import to_html, to_markdown
from chexbal.analysis.results import (
    ARM_OF,
    Predictions,
    Runs,
    auc_tables,
    find_runs,
    first_seed,
    generators_table,
    keep_runs,
    oracle_table,
    per_seed_tests,
    provenance_table,
    read_predictions,
    size_changes,
    table1,
    validation_positives,
    with_holm,
)
from chexbal.analysis.wording import (
    answer,
    auc_grid,
    comparisons_table,
    generators_side_by_side,
    paper_line,
    quality_verdicts,
    rows_seen,
    seeds_note,
    size_line,
    size_table,
)
from chexbal.classify import classifier
from chexbal.classify.arms import GENERATED, arm_order
from chexbal.classify.cam import GradCam
from chexbal.data.dataset import DEFAULT_DATASET, load_images, locate, prepared_fracs, settings, training_rows
from chexbal.data.labels import PATHOLOGIES, TARGETS
from chexbal.errors import ChexbalError
from chexbal.files import write_atomic
from chexbal.generators import synthetic
from chexbal.generators.evaluation import COMPARABLE_IMAGES, quality_table
from chexbal.generators.plan import make_plan


def curves_section(runs: Runs, fracs, out: Path) -> tuple[Path | None, pd.DataFrame]:
    """Per regimen and arm, the loss and the validation AUC that model selection uses, epoch by
    epoch, over every seed; and the final epoch's train-validation gap (mean over seeds)."""
    histories, gaps = {}, []
    for frac in fracs:
        arms = {
            arm: pd.concat([pd.read_csv(run / "history.csv").assign(seed=seed) for seed, run in runs[(frac, arm)].items()])
            for arm in sorted((a for f, a in runs if f == frac), key=arm_order)
        }
        if arms:
            histories[f"{frac:.0%}"] = arms
        for arm, history in arms.items():
            last = history[history["epoch"] == history["epoch"].max()].mean(numeric_only=True)
            gaps.append(
                {
                    "regimen": f"{frac:.0%}",
                    "arm": arm,
                    "epochs": int(last["epoch"]),
                    "seeds": history["seed"].nunique(),
                    "train loss": round(last["train_loss"], 4),
                    "validation loss": round(last["val_loss"], 4),
                    "gap (val - train)": round(last["val_loss"] - last["train_loss"], 4),
                }
            )
    if not histories:
        return None, pd.DataFrame()
    return figures.learning_curves(histories, out / "learning-curves.png"), pd.DataFrame(gaps)


def samples_section(folder: Path, runs: Runs, out: Path, per_row: int = 6) -> Path | None:
    """Per target, real training images and the images of every generator whose arm the report holds
    (at the lowest regimen it holds one) for the same label vectors: the plan drew each vector from a
    real training row, and every set of a regimen follows one plan."""
    shown = [(f, g) for f in sorted({f for f, _ in runs}) for g in synthetic.GENERATORS if (f, ARM_OF[g]) in runs]
    made = ((f, g) for f, g in shown if (synthetic.folder(folder, f, g) / "labels.csv").exists())
    frac, first = next(made, (None, None))
    if frac is None:
        return None
    provenance = files.read_json(synthetic.folder(folder, frac, first) / "provenance.json")  # its images load below
    train_rows = training_rows(folder, frac, provenance["split_seed"])
    vectors = make_plan(train_rows, provenance["share"], provenance["split_seed"]).vectors
    generators = [g for f, g in shown if f == frac and same_plan(folder, frac, g, provenance)]
    sets = {ARM_OF[g]: synthetic.load(folder, frac, g) for g in generators}
    rows = {}
    for target in TARGETS:
        picks = np.flatnonzero(vectors["target"].to_numpy() == target)[:per_row]
        rows[f"{target}: real (the vector's own row)"] = list(
            load_images(folder, train_rows.iloc[vectors["source_row"].to_numpy()[picks]])
        )
        for arm, (images, _, _) in sets.items():
            rows[f"{target}: {arm}"] = list(images[picks])
    return figures.image_grid(
        rows, out / "samples.png", f"real and generated images for the same label vectors ({frac:.0%} regimen)"
    )


def same_plan(folder: Path, frac: float, generator: str, provenance: dict) -> bool:
    """Whether the generator's set exists and was made from the same plan (split seed and share)."""
    path = synthetic.folder(folder, frac, generator) / "provenance.json"
    if not path.exists():
        return False
    other = files.read_json(path)
    return (other.get("split_seed"), other.get("share")) == (provenance["split_seed"], provenance["share"])


def cam_section(folder: Path, runs: Runs, fracs: list[float], out: Path, per_row: int = 3) -> tuple[Path | None, str]:
    """CAMs of a generator-augmented model (lowest seed; `gan` first, as in the paper, else the first
    generator arm that ran) of the largest regimen that has one (the paper used 100%)."""
    ran = ((f, arm) for f in sorted(fracs, reverse=True) for arm in GENERATED if (f, arm) in runs)
    frac, arm = next(ran, (None, None))
    if frac is None:
        return None, ""
    run = first_seed(runs, frac, arm)
    predictions = pd.read_csv(run / "test-predictions.csv")
    fake, fake_labels, _ = synthetic.load(folder, frac, GENERATED[arm])
    cams = GradCam(classifier.load_run(run), fake.shape[-1])
    rows = {}
    for target in TARGETS:
        top = predictions[predictions[f"label/{target}"] == 1].nlargest(per_row, f"prob/{target}")
        real = load_images(folder, top) if len(top) else np.zeros((0, *fake.shape[1:]), np.uint8)
        generated = fake[np.flatnonzero(fake_labels["target"].to_numpy() == target)[:per_row]]
        for kind, images in (("real", real), ("generated", generated)):
            maps = cams.maps(images, target)
            rows[f"{target}: {kind}"] = [figures.overlay(i, m) for i, m in zip(images, maps)]
    title = f"CAMs, {arm}-augmented model, {frac:.0%} regimen"
    return figures.image_grid(
        rows, out / "cams.png", title, colour_bar="Grad-CAM (per image, its minimum 0 to its maximum 1)"
    ), str(run)


def report(
    name: str = "phantom",
    runs_root: Path = Path("runs"),
    data_dir: Path = Path("data"),
    dataset: str = DEFAULT_DATASET,
    out_root: Path = Path("reports"),
    n_boot: int = 1000,
    *,
    planned: Sequence[float] = (),
    only: Mapping[tuple[float, str], Collection[int]] | None = None,
) -> Path:
    """`planned`: the regimens the report should have (a plan's); each with no finished run is marked
    as a gap in the answer. Without `planned`, the regimens prepared here are (a plan's page leaves
    out those it does not plan: 100% is prepared wherever a pool generator trains). `only`: the runs
    to report, (regimen, arm) → seeds (a plan's); without it, every finished run under `runs_root`."""
    if n_boot < 100:
        raise ChexbalError("--n-boot must be at least 100", 2)
    outside = [frac for frac in planned if not 0 < frac <= 1]
    if outside:
        raise ChexbalError(f"--regimen must be in (0, 1], not {outside[0]:g}", 2)
    folder = locate(Path(data_dir), dataset)
    out = Path(out_root) / name
    out.mkdir(parents=True, exist_ok=True)
    runs = find_runs(Path(runs_root), dataset)
    if only is not None:
        runs = keep_runs(runs, only)
    if not runs:
        raise ChexbalError(
            f"no finished runs of {dataset} under {runs_root}: train some first (`chexbal train` or `chexbal experiment`)"
        )
    fracs = sorted(set(prepared_fracs(folder)) | {f for f, _ in runs})
    attrs = settings(folder)
    predictions = read_predictions(runs, fracs)
    all_aucs, all_comparisons, replicates = auc_tables(runs, predictions, folder, PATHOLOGIES, n_boot)
    # Two families of comparisons, each Holm-corrected on its own: Table 2's (the targets, against
    # none and oversample) and the appendix's (all 14 classes, against none).
    aucs = all_aucs[all_aucs["class"].isin(TARGETS)] if len(all_aucs) else all_aucs
    comparisons = with_holm(all_comparisons[all_comparisons["class"].isin(TARGETS)])
    appendix = with_holm(all_comparisons[all_comparisons["against"] == "none"])
    changes = size_changes(comparisons, replicates)  # a third family: each Δ's change with data size
    changes = with_holm(changes) if len(changes) else changes
    generators = generators_table(folder, fracs)
    gaps = [f"{f:.0%}" for f in sorted(set(planned) or fracs) if not any(frac == f for frac, _ in runs)]
    blocks = answer_blocks(dataset, aucs, (comparisons, changes), generators, attrs, out, gaps=gaps)
    blocks += table_blocks(folder, fracs, runs, (aucs, comparisons), generators)
    blocks += size_and_paper_blocks(aucs, changes, attrs.get("source") == "phantom")
    write_atomic(out / "table2.csv", aucs.to_csv(index=False))
    write_atomic(out / "comparisons.csv", comparisons.to_csv(index=False))
    write_atomic(out / "against-data-size.csv", changes.to_csv(index=False))
    blocks += figure_sections(folder, runs, fracs, out)
    blocks += gan_quality_blocks(Path(runs_root) / dataset, comparisons, set(runs))
    if not aucs.empty:
        blocks += appendix_blocks(predictions, aucs, all_aucs, appendix)
    blocks += provenance_blocks(dataset, attrs, runs)
    write_atomic(out / "report.md", to_markdown(blocks, out))
    write_atomic(out / "report.html", to_html(blocks, f"chexbal report: {dataset}"))
    return out


def answer_blocks(dataset: str, aucs, results: tuple, generators, attrs: dict, out: Path, *, gaps: list[str]) -> list:
    comparisons, changes = results
    phantom = attrs.get("source") == "phantom"
    blocks = [("h1", f"chexbal report: {dataset}")]
    if phantom:
        blocks.append(
            (
                "p",
                "**Synthetic benchmark.** These images are procedural phantoms drawn for real CheXpert "
                "label vectors. The numbers measure the method on a benchmark; they are not a clinical result.",
            )
        )
    blocks.append(("h2", "The answer"))
    if aucs.empty:
        blocks.append(("p", "No finished classifier runs: train some with `chexbal train` or `chexbal sweep`."))
    else:
        blocks += [("p", line) for line in answer(aucs, comparisons, generators, phantom, changes)]
    if gaps:
        blocks.append(("p", f"Regimens with no finished run (gaps in this report): {', '.join(gaps)}."))
    if not aucs.empty:
        blocks += figure_blocks(aucs, comparisons, out)
    return blocks


def table_blocks(folder: Path, fracs: list[float], runs: Runs, results: tuple, generators: pd.DataFrame) -> list:
    """Table 1, what each generator saw, Table 2, the comparisons and the validation positives."""
    aucs, comparisons = results
    blocks = [("h2", "Table 1: generated images per target class"), ("table", table1(folder, fracs))]
    if not generators.empty:
        blocks += [("p", "What each generator saw:"), ("table", generators)]
    blocks.append(
        ("h2", "Table 2: test AUC of the target classes, mean over seeds [95% CI]; Δ from none [95% CI], Holm-adjusted p")
    )
    if not aucs.empty:
        blocks += [
            ("table", auc_grid(aucs, comparisons, TARGETS)),
            ("p", seeds_note(aucs)),
            *oracle_blocks(folder),
            ("h2", "Comparisons"),
            ("table", comparisons_table(comparisons)),
            ("h2", "Validation positives per regimen"),
            ("table", validation_positives(runs, folder)),
        ]
    return blocks


def size_and_paper_blocks(aucs: pd.DataFrame, changes: pd.DataFrame, phantom: bool) -> list:
    """Whether each Δ changes between the smallest and the largest regimen, and `none` beside the paper."""
    blocks = []
    if len(changes):
        blocks += [
            ("h2", "Against data size: each Δ at the smallest and the largest regimen"),
            ("table", size_table(changes)),
            ("p", size_line(changes)),
        ]
    beside = beside_paper(aucs) if len(aucs) else pd.DataFrame()
    if len(beside):
        blocks += [
            ("h2", "Beside the paper (Sundaram & Hulkund 2021, Table 2, CheXpert)"),
            ("table", beside),
            ("p", paper_line(beside, phantom)),
        ]
    return blocks


def oracle_blocks(folder: Path) -> list:
    ceilings = oracle_table(folder)
    if ceilings.empty:
        return []
    return [
        (
            "p",
            "The phantom's labels are noisy, as CheXpert's are: some positives show no sign, a few negatives "
            "show one. A perfect detector of each target's own drawn sign (signs.csv) would score as below. A "
            "classifier can pass it by reading the signs of other findings that come with the target in the label "
            "vectors (`all signs` in scripts/phantom_cooccurrence.py measures how far):",
        ),
        ("table", ceilings),
    ]


def figure_sections(folder: Path, runs: Runs, fracs: list[float], out: Path) -> list:
    """Samples, learning curves and CAMs, each a gap where there is nothing to draw."""
    samples = samples_section(folder, runs, out)
    blocks = [
        ("h2", "Samples: real vs generated"),
        ("img", samples, "Real pool images and generated ones for the same targets.")
        if samples
        else ("p", "No generated set of this report's arms: gap."),
    ]
    curves, gaps = curves_section(runs, fracs, out)
    blocks.append(("h2", "Learning curves (lowest seed)"))
    blocks += (
        [("img", curves, "Training and validation loss per epoch, lowest seed of each arm."), ("table", gaps)]
        if curves
        else [("p", "No runs: gap.")]
    )
    cams, cam_run = cam_section(folder, runs, fracs, out)
    blocks.append(("h2", "Class activation maps"))
    blocks += (
        [("img", cams, f"Grad-CAM maps of {cam_run}. Real rows: the test positives it scores highest.")]
        if cams
        else [("p", "No generator-augmented run: gap.")]
    )
    return blocks + pointing_blocks(folder, runs)


def pointing_blocks(folder: Path, runs: Runs) -> list:
    """The pointing game at the largest regimen with runs, where the dataset knows its signs' boxes."""
    frac = max((f for f, _ in runs), default=None)
    table = pointing_table(folder, runs, frac) if frac is not None else pd.DataFrame()
    if table.empty:
        return []
    return [
        ("h3", f"Where the maps point ({frac:.0%} regimen, lowest seed of each arm)"),
        (
            "p",
            "The pointing game: for test images whose target sign was drawn (signs.csv), the share whose "
            "Grad-CAM peak lies inside the sign's box, with a Wilson 95% interval (unadjusted). Chance is the "
            "box's share of the image.",
        ),
        ("table", pointing_grid(table)),
    ]


def provenance_blocks(dataset: str, attrs: dict, runs: Runs) -> list:
    blocks = [
        ("h2", "Provenance"),
        (
            "p",
            f"chexbal {__version__}; dataset {dataset} (source {attrs.get('source')}, {attrs.get('size')} px, seed "
            f"{attrs.get('seed')}, uncertain → {attrs.get('uncertain')}); {platform.platform()}, {platform.processor() or 'cpu'}; "
            f"written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        ),
    ]
    if runs:
        table = provenance_table(runs)
        blocks.append(("table", table))
        counts = table["precision"].value_counts()
        if {"bf16", "fp32"} <= set(counts.index):  # `--amp auto` decides per machine: runs from two kinds
            blocks.append(
                (
                    "p",
                    f"**Mixed precision**: of these runs {counts['bf16']} trained with bf16 autocast and {counts['fp32']} in fp32 "
                    "(`--amp auto` decides per machine). The two give different numbers, so a difference between "
                    "runs of different precision may be partly one of precision.",
                )
            )
    return blocks


def figure_blocks(aucs: pd.DataFrame, comparisons: pd.DataFrame, out: Path) -> list:
    """The headline first: each generator arm and real-extra against oversample (the same extra
    images, as repeats of real positives), then every arm against none, then AUC by regimen."""
    blocks = []
    versus_oversample = comparisons[comparisons["against"] == "oversample"]
    if len(versus_oversample):
        caption = "The question itself: each generator arm and real-extra minus oversample (the same extra images, as repeats of real positives), with Holm-adjusted 95% intervals."
        blocks.append(("img", figures.forest(versus_oversample, TARGETS, out / "headline.png", "oversample"), caption))
    versus_none = comparisons[comparisons["against"] == "none"]
    if len(versus_none):
        blocks.append(
            (
                "img",
                figures.forest(versus_none, TARGETS, out / "forest.png"),
                "Every arm minus none, Holm-adjusted 95% intervals.",
            )
        )
    if aucs["frac"].nunique() > 1:
        blocks.append(
            (
                "img",
                figures.by_size(aucs, TARGETS, out / "auc-by-size.png"),
                "Test AUC by regimen, mean over seeds, 95% intervals.",
            )
        )
    return blocks


def appendix_blocks(predictions: Predictions, aucs: pd.DataFrame, all_aucs: pd.DataFrame, all_comparisons: pd.DataFrame) -> list:
    """All 14 classes (their own Holm family), the certain-label sensitivity and the per-seed numbers."""
    sensitivity = (
        aucs[["regimen", "class", "arm", "seeds", "auc", "auc_certain"]]
        .round(3)
        .rename(columns={"auc": "AUC (U-Ones labels)", "auc_certain": "AUC (rows with a certain label)"})
    )
    per_seed = aucs[["regimen", "class", "arm", *[c for c in aucs.columns if c.startswith("seed ")]]].round(3)
    tests = per_seed_tests(predictions, TARGETS)
    return [
        ("h2", "Appendix: all 14 classes (Holm over this table's comparisons with none)"),
        ("table", auc_grid(all_aucs, all_comparisons, PATHOLOGIES)),
        ("h2", "Appendix: sensitivity to uncertain labels"),
        (
            "p",
            "Test AUC over all test rows (uncertain labels counted positive, U-Ones) and over the rows whose "
            "label for that class is not uncertain; mean over seeds.",
        ),
        ("table", sensitivity),
        ("h2", "Appendix: test AUC of each seed's run"),
        ("table", per_seed),
        ("p", "Each seed's run against `none` of the same seed, with Obuchowski's clustered DeLong test (uncorrected):"),
        ("table", tests),
    ]


def gan_quality_blocks(runs_dir: Path, comparisons: pd.DataFrame, reported: set[tuple[float, str]]) -> list:
    """Each `chexbal gan-eval` result (gan-eval*.json) of a generator whose arm the page reports (its
    `reported` (regimen, arm) pairs): fidelity and counterfactual shift per target, beside the gain of
    the arm that used that generator, so a reader sees whether fidelity predicts gain."""
    blocks = [("h2", "Generator quality")]
    evaluated = {path.stem: files.read_json(path) for path in sorted(runs_dir.glob("gan-eval*.json"))}
    evaluated = {stem: result for stem, result in evaluated.items() if on_the_page(result, reported)}
    if not evaluated:
        return blocks + [("p", "No `chexbal gan-eval` result for a generator of this report's arms: gap.")]
    pool_gan = next((stem for stem, result in evaluated.items() if quality_arm(result) == "gan"), None)
    blocks += [
        (
            "p",
            f"The generators side by side (Fréchet distance over {COMPARABLE_IMAGES} generated images, so that "
            "evaluations of different sizes compare; each target's counterfactual shift with its 95% interval). "
            "Below, per generator, the top-5% share says where an on−off pair's pixels change: the share of the "
            "change held by its 5% most-changed pixels (median over pairs), near 1 for a drawn sign (a phantom's "
            "own pairs: 1) and near 0.05 for a change spread over the whole image:",
        ),
        ("table", generators_side_by_side(evaluated)),
        *(("p", line) for line in quality_verdicts(evaluated, pool_gan)),
    ]
    gains = comparisons[comparisons["against"] == "none"]
    for stem, result in evaluated.items():
        judges = result["classifier"] + (f" and {result['second_judge']['classifier']}" if "second_judge" in result else "")
        blocks += [
            ("p", f"**{stem}**: {judged_what(result)}, judged by {judges}; {result['generated']} images."),
            ("table", quality_table(result)),
        ]
        arm = quality_arm(result)
        blocks.append(("table", fidelity_and_gain(result, gains[gains["arm"] == arm], arm)))
    return blocks


def on_the_page(result: dict, reported: set[tuple[float, str]]) -> bool:
    """A regimen generator belongs beside its arm at its own regimen; a pool generator (or an imported
    set) beside its arm at any regimen. Another plan's generators, evaluated under the same runs
    folder, stay off the page."""
    arm, frac = quality_arm(result), result.get("trained_on", {}).get("frac", 1)
    return (frac, arm) in reported if frac < 1 else any(a == arm for _, a in reported)


def judged_what(result: dict) -> str:
    seen = result.get("trained_on", {})
    if result.get("generator_kind") == "imported":
        return (
            f"imported set `{result['imported']}` (its generator, as declared, trained on {seen.get('declared')}; "
            f"not measured: {result['not_measured']})"
        )
    return (
        f"{result.get('generator_kind', 'gan')} generator {result['checkpoint']} (trained on regimen "
        f"{seen.get('frac', float('nan')):.0%}, {rows_seen(seen.get('rows', '?'))})"
    )


def quality_arm(result: dict) -> str:
    """The arm whose gain a gan-eval result belongs beside."""
    if result.get("generator_kind") == "imported":
        return f"synthetic:{result['imported']}"
    model = "diffusion" if result.get("generator_kind") == "diffusion" else "gan"
    regimen, seed = result.get("trained_on", {}).get("frac", 1) < 1, result.get("generator_seed", 0)
    generators = {kind: name for name, kind in synthetic.GENERATORS.items()}
    # a seed that no arm names (or a result from before seeds were recorded): beside its kind's seed-0 arm
    generator = generators.get(synthetic.Kind(model, regimen, seed)) or generators[synthetic.Kind(model, regimen)]
    return ARM_OF[generator]


def fidelity_and_gain(result: dict, gains: pd.DataFrame, arm: str) -> pd.DataFrame:
    rows = []
    for target in TARGETS:
        shift = result.get("counterfactual", {}).get(target, {})
        second = result.get("second_judge", {}).get("counterfactual", {}).get(target, {})
        real, fake = result["auc_real_test"].get(target), result["auc_generated"].get(target)
        row = {
            "target": target,
            "fidelity ratio": round(fake / real, 3) if real and fake else None,
            "shift on−off": shift.get("median_shift"),
            "shift, second judge": second.get("median_shift"),
            "top-5% share": shift.get("top_share"),  # near 1: a local sign; near 0.05: a diffuse change
        }
        for _, gain in gains[gains["class"] == target].iterrows():
            row[f"Δ {arm} at {gain['regimen']}"] = f"{gain['diff']:+.3f} ({gain['verdict']})"
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.round({name: 4 if name.startswith("shift") else 3 for name in table.columns})
