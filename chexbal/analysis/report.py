"""`chexbal report`: the runs, generated sets and plans on disk, as one page that answers the question.

reports/<name>/report.md, a self-contained report.html (figures embedded) and the PNG figures. Each
arm's test AUC is the mean over its training seeds, with an interval that resamples seeds and test
patients (stats.py); every comparison is paired by seed, Holm-corrected within its table, and worded
from the numbers. Whatever is missing (an arm not trained, a regimen absent, no GAN evaluation) is a
marked gap.
"""

from __future__ import annotations

import base64
import html
import json
import math
import platform
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from chexbal import __version__
from chexbal.analysis import figures
from chexbal.analysis.evaluate import delong, format_p, holm
from chexbal.analysis.stats import SeedBootstrap
from chexbal.classify import classifier
from chexbal.classify.arms import ARMS
from chexbal.classify.cam import class_activation_maps
from chexbal.data.dataset import DEFAULT_DATASET, load_images, locate, prepared_fracs, read_index, settings, training_rows
from chexbal.data.labels import PATHOLOGIES, TARGETS
from chexbal.data.splits import frac_of
from chexbal.files import write_atomic
from chexbal.generators import synthetic
from chexbal.generators.evaluation import quality_table
from chexbal.generators.generate import trained_on
from chexbal.generators.plan import make_plan

GAP = "— (not run)"
PAPER_ARMS = ("none", "standard", "gan")  # always shown in Table 2; other arms where they ran
ALPHA = 0.05
# Comparisons beyond "against none": does a generator beat simply repeating the real positives?
AGAINST_OVERSAMPLE = ("gan", "gan-regimen", "real-extra")
WORDS = {"helps": "better", "hurts": "worse", "no detectable difference": "no detectable difference"}

Runs = dict[tuple[float, str], dict[int, Path]]


def find_runs(runs_root: Path, dataset: str) -> Runs:
    """The chosen run per (regimen, arm, seed): the sweep's pick for that seed if recorded, else the
    finished run of that seed with the best mean validation AUC."""
    chosen: Runs = {}
    for arm_dir in sorted((runs_root / dataset).glob("frac-*/*")):
        if arm_dir.name not in ARMS:
            continue
        frac = frac_of(arm_dir.parent.name)
        by_seed: dict[int, list[tuple[float, Path]]] = {}
        for metrics in arm_dir.glob("*/metrics.json"):
            seed = json.loads((metrics.parent / "config.json").read_text())["seed"]
            auc = json.loads(metrics.read_text())["val"]["mean_auc"]
            if not math.isnan(auc):
                by_seed.setdefault(seed, []).append((auc, metrics.parent))
        picks = {}
        for seed, finished in by_seed.items():
            selected = arm_dir / f"selected-seed{seed}.json"
            # The chosen run sits beside the selection, whatever working directory the sweep ran in.
            picks[seed] = (
                arm_dir / Path(json.loads(selected.read_text())["selected"]["run"]).name
                if selected.exists()
                else max(finished)[1]
            )
        if picks:
            chosen[(frac, arm_dir.name)] = dict(sorted(picks.items()))
    return chosen


def table1(folder: Path, fracs: list[float], seed: int = 0) -> pd.DataFrame:
    rows = []
    for frac in fracs:
        provenance = synthetic.folder(folder, frac) / "provenance.json"
        if provenance.exists():
            plan, status = json.loads(provenance.read_text())["plan"], "generated"
        else:
            plan, status = make_plan(training_rows(folder, frac, seed), seed=seed).summary(), "planned only"
        rows.append(
            {
                "regimen": f"{frac:.0%}",
                "real": plan["real"],
                **plan["generate"],
                "augmented": plan["augmented"],
                **{f"{t} share": f"{plan['share'][t]:.1%}" for t in TARGETS},
                "synthetic set": status,
            }
        )
    return pd.DataFrame(rows)


def rows_seen(rows) -> str:
    """A generator's training rows in words: a count, or the description an older generator carries."""
    return f"{rows:,} rows" if isinstance(rows, (int, np.integer)) else str(rows)


def generators_table(folder: Path, fracs: list[float]) -> pd.DataFrame:
    """What the generator behind each generated set saw: the confound of the `gan` arm, at a glance."""
    rows = []
    for frac in fracs:
        for generator in synthetic.GENERATORS:
            path = synthetic.folder(folder, frac, generator) / "provenance.json"
            if not path.exists():
                continue
            provenance = json.loads(path.read_text())
            seen = provenance.get("trained_on") or trained_on(provenance.get("generator", {}))
            rows.append(
                {
                    "regimen": f"{frac:.0%}",
                    "arm": "gan" if generator == "pool" else "gan-regimen",
                    "generator trained on regimen": f"{seen.get('frac', float('nan')):.0%}",
                    "rows": seen.get("rows"),
                    "patients": seen.get("patients", "—"),
                    "validation patients excluded": "yes" if seen.get("validation_patients_excluded") else "no",
                    "images added": provenance["plan"]["augmented"] - provenance["plan"]["real"],
                    "generator sha256": provenance["checkpoint_sha256"][:12],
                }
            )
    return pd.DataFrame(rows)


def validation_positives(runs: Runs, folder: Path) -> pd.DataFrame:
    """Per regimen, the validation split's images and positives per target: what model selection
    had to go on."""
    index = read_index(folder).set_index("index")
    rows = []
    for frac in sorted({f for f, _ in runs}):
        run = next(run for (f, _), seeds in sorted(runs.items()) if f == frac for run in seeds.values())
        split = pd.read_csv(run / "split.csv") if (run / "split.csv").exists() else None
        if split is None:
            continue
        val = index.loc[split.loc[split["split"] == "val", "index"]]
        rows.append(
            {
                "regimen": f"{frac:.0%}",
                "validation images": len(val),
                "patients": val["patient"].nunique(),
                **{t: int(val[t].sum()) for t in TARGETS},
            }
        )
    return pd.DataFrame(rows)


Predictions = dict[float, dict[str, dict[int, pd.DataFrame]]]  # regimen -> arm -> seed -> test predictions


def read_predictions(runs: Runs, fracs: list[float]) -> Predictions:
    """Every run's test predictions, read once for the tables and the appendix."""
    return {
        frac: {
            arm: {seed: pd.read_csv(run / "test-predictions.csv").set_index("index") for seed, run in seeds.items()}
            for (f, arm), seeds in runs.items()
            if f == frac
        }
        for frac in fracs
    }


def auc_tables(
    runs: Runs, predictions: Predictions, folder: Path, classes, n_boot: int = 1000
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per regimen, class and arm: mean test AUC over seeds with its interval, the same on test rows
    whose label is certain, and per seed. Then every comparison (arm against none; generators and
    real-extra also against oversample), paired by seed, with raw p (Holm comes later, per table)."""
    raw = pd.read_csv(folder / "raw-labels.csv").set_index("index") if (folder / "raw-labels.csv").exists() else None
    aucs, comparisons = [], []
    for frac, by_arm in predictions.items():
        if not by_arm:
            continue
        first = next(iter(next(iter(by_arm.values())).values()))
        order, patients = first.index, first["patient"].to_numpy()
        epochs = {
            arm: "/".join(
                sorted({str(json.loads((run / "config.json").read_text())["epochs"]) for run in runs[(frac, arm)].values()})
            )
            for arm in by_arm
        }
        for name in classes:
            y = first.loc[order, f"label/{name}"].to_numpy()
            if y.min() == y.max():
                continue
            scores = {
                arm: {s: p.loc[order, f"prob/{name}"].to_numpy() for s, p in seeds.items()} for arm, seeds in by_arm.items()
            }
            boot = SeedBootstrap(y, patients, scores, n_boot)
            certain = (raw.loc[order, name] != -1).to_numpy() if raw is not None else np.ones(len(y), bool)
            for arm in (a for a in ARMS if a in scores):
                result = boot.arm(arm)
                certain_auc = np.mean([roc_auc_score(y[certain], v[certain]) for v in scores[arm].values()])
                aucs.append(
                    {
                        "regimen": f"{frac:.0%}",
                        "frac": frac,
                        "class": name,
                        "arm": arm,
                        "seeds": len(result.seeds),
                        "epochs": epochs[arm],
                        "auc": result.mean,
                        "ci_low": result.ci[0],
                        "ci_high": result.ci[1],
                        "auc_certain": certain_auc,
                        **{f"seed {s}": v for s, v in result.per_seed.items()},
                    }
                )
                for reference in ("none", "oversample"):
                    if arm == reference or (reference == "oversample" and arm not in AGAINST_OVERSAMPLE):
                        continue
                    comparison = boot.compare(arm, reference)
                    if comparison is not None:
                        comparisons.append(
                            {
                                "regimen": f"{frac:.0%}",
                                "frac": frac,
                                "class": name,
                                "arm": arm,
                                "against": reference,
                                "seeds": len(comparison.seeds),
                                "diff": comparison.diff,
                                "ci_low": comparison.ci[0],
                                "ci_high": comparison.ci[1],
                                "p": comparison.p,
                            }
                        )
    columns = ["regimen", "frac", "class", "arm", "against", "seeds", "diff", "ci_low", "ci_high", "p"]
    return pd.DataFrame(aucs), pd.DataFrame(comparisons, columns=columns)


def per_seed_tests(predictions: Predictions, classes) -> pd.DataFrame:
    """Each seed's run against the `none` run of the same seed: the difference in test AUC and
    Obuchowski's clustered DeLong p (patients as clusters), uncorrected, for the appendix."""
    rows = []
    for frac, by_arm in predictions.items():
        for arm, seeds in by_arm.items():
            for seed in sorted(set(seeds) & set(by_arm.get("none", {})) if arm != "none" else []):
                base = by_arm["none"][seed]
                other = seeds[seed].loc[base.index]
                for name in classes:
                    y = base[f"label/{name}"].to_numpy()
                    if y.min() == y.max():
                        continue
                    test = delong(
                        y, base[f"prob/{name}"].to_numpy(), other[f"prob/{name}"].to_numpy(), base["patient"].to_numpy()
                    )
                    rows.append(
                        {
                            "regimen": f"{frac:.0%}",
                            "class": name,
                            "arm": arm,
                            "seed": seed,
                            "Δ from none": round(test["diff"], 3),
                            "p (clustered DeLong)": format_p(test["p"]),
                        }
                    )
    return pd.DataFrame(rows)


def with_holm(comparisons: pd.DataFrame) -> pd.DataFrame:
    """Holm-adjusted p over the whole table of comparisons, and the verdict each one earns."""
    adjusted = holm(comparisons["p"].to_numpy())
    verdict = np.where(adjusted < ALPHA, np.where(comparisons["diff"] > 0, "helps", "hurts"), "no detectable difference")
    return comparisons.assign(p_holm=adjusted, verdict=verdict)


def auc_grid(aucs: pd.DataFrame, comparisons: pd.DataFrame, classes) -> pd.DataFrame:
    """Table 2's layout: a row per (regimen, class), a column per arm (the paper's three, and every
    other arm that ran): mean AUC [CI]; Δ from none [CI], Holm-adjusted p."""
    rows = []
    versus_none = comparisons[comparisons["against"] == "none"].set_index(["regimen", "class", "arm"])
    shown = [arm for arm in ARMS if arm in PAPER_ARMS or arm in set(aucs["arm"])]
    for (regimen, name), group in aucs[aucs["class"].isin(classes)].groupby(["regimen", "class"], sort=False):
        cells = {"regimen": regimen, "class": name}
        by_arm = group.set_index("arm")
        for arm in shown:
            if arm not in by_arm.index:
                cells[arm] = GAP
                continue
            r = by_arm.loc[arm]
            cell = f"{r['auc']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            if (regimen, name, arm) in versus_none.index:
                c = versus_none.loc[(regimen, name, arm)]
                cell += f"; Δ {c['diff']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}], p {format_p(c['p_holm'])}"
            cells[arm] = cell
        rows.append(cells)
    return pd.DataFrame(rows)


def seeds_note(aucs: pd.DataFrame) -> str:
    """How many seeds stand behind Table 2, in words; a single seed is said plainly."""
    parts = []
    for regimen, group in aucs.groupby("regimen", sort=False):
        low, high = group["seeds"].min(), group["seeds"].max()
        count = f"{low}" if low == high else f"{low} to {high}"
        parts.append(f"{regimen}: {count} seed{'s' if high > 1 else ''} per arm")
    single = (aucs.groupby("regimen")["seeds"].max() < 2).any()
    caveat = " With a single seed an interval covers test patients only, not seed-to-seed variation." if single else ""
    return "Seeds: " + "; ".join(parts) + "." + caveat


def comparisons_table(comparisons: pd.DataFrame) -> pd.DataFrame:
    shown = comparisons.assign(
        **{
            "Δ [95% CI]": [
                f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                for d, lo, hi in zip(comparisons["diff"], comparisons["ci_low"], comparisons["ci_high"])
            ],
            "p": comparisons["p"].map(format_p),
            "p Holm": comparisons["p_holm"].map(format_p),
        }
    )
    return shown[["regimen", "class", "arm", "against", "seeds", "Δ [95% CI]", "p", "p Holm", "verdict"]]


def answer(aucs: pd.DataFrame, comparisons: pd.DataFrame, generators: pd.DataFrame, phantom: bool) -> list[str]:
    """The report's conclusions, worded from the numbers: a claim only where the Holm-adjusted p
    across seeds is below 0.05."""
    lines = []
    if comparisons.empty:
        lines.append("Only one arm has finished runs: nothing to compare yet.")
    for regimen, group in comparisons.groupby("regimen", sort=False):
        at_regimen = aucs[aucs["regimen"] == regimen]
        seeds = at_regimen.groupby("arm", sort=False)["seeds"].max()
        seed_note = ", ".join(f"{arm} {n}" for arm, n in seeds.items())
        seed_note += f"; epochs per run: {', '.join(sorted(set(at_regimen['epochs'])))}"
        claims = []
        for (arm, against), rows in group.groupby(["arm", "against"], sort=False):
            for verdict in ("helps", "hurts"):
                hit = rows[rows["verdict"] == verdict]
                if len(hit):
                    claims.append(
                        f"`{arm}` {'beats' if verdict == 'helps' else 'is worse than'} `{against}` on "
                        + ", ".join(
                            f"{r['class']} ({r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}], p {format_p(r['p_holm'])})"
                            for _, r in hit.iterrows()
                        )
                    )
        lines.append(
            f"**{regimen}** (seeds per arm: {seed_note}). "
            + ("; ".join(claims) + "." if claims else "No arm differs detectably from `none` or `oversample` on a target.")
            + " Every other comparison: no detectable difference."
        )
        lines += gan_lines(regimen, group)
        if seeds.max() < 2:
            lines.append(
                f"At {regimen} each arm has a single seed: intervals cover test patients only, not the "
                "seed-to-seed variation, so they understate the uncertainty."
            )
    for _, g in generators.iterrows():
        rows = rows_seen(g["rows"])
        lines.append(
            f"At {g['regimen']}, `{g['arm']}` used a generator trained on regimen {g['generator trained on regimen']} "
            f"({rows}; validation patients excluded: {g['validation patients excluded']})."
        )
    lines.append(
        "Intervals: 95%, resampling training seeds, then test patients (stratified by whether a patient has "
        "a positive image). p: two-sided, the mean paired difference over its bootstrap standard error; Holm-Bonferroni over "
        'every comparison in the table. "No detectable difference" is not evidence of equality.'
    )
    if phantom:
        lines.append("These are phantom results: a benchmark of the method, not a clinical finding.")
    return lines


def gan_lines(regimen: str, comparisons: pd.DataFrame) -> list[str]:
    """The question itself, per GAN arm: against `oversample` (the same extra images, as repeats of
    real positives), target by target, whatever the verdict."""
    lines = []
    for arm, label in (("gan-regimen", "the fair GAN arm"), ("gan", "the pool generator's arm")):
        rows = comparisons[(comparisons["arm"] == arm) & (comparisons["against"] == "oversample")]
        if len(rows):
            cells = [
                f"{r['class']} {WORDS[r['verdict']]} ({r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}])"
                for _, r in rows.iterrows()
            ]
            lines.append(f"At {regimen}, `{arm}` ({label}) against `oversample`: " + "; ".join(cells) + ".")
    return lines


def first_seed(runs: Runs, frac: float, arm: str) -> Path | None:
    seeds = runs.get((frac, arm))
    return next(iter(seeds.values())) if seeds else None


def curves_section(runs: Runs, fracs, out: Path) -> tuple[Path | None, pd.DataFrame]:
    """Train and validation loss of the lowest seed's runs of none, oversample and the GAN arms."""
    histories, gaps = {}, []
    for frac in fracs:
        arms = {
            arm: pd.read_csv(first_seed(runs, frac, arm) / "history.csv")
            for arm in ("none", "oversample", "gan", "gan-regimen")
            if (frac, arm) in runs
        }
        if arms:
            histories[f"{frac:.0%}"] = arms
        for arm, history in arms.items():
            last = history.iloc[-1]
            gaps.append(
                {
                    "regimen": f"{frac:.0%}",
                    "arm": arm,
                    "epochs": int(last["epoch"]),
                    "train loss": round(last["train_loss"], 4),
                    "validation loss": round(last["val_loss"], 4),
                    "gap (val - train)": round(last["val_loss"] - last["train_loss"], 4),
                }
            )
    if not histories:
        return None, pd.DataFrame()
    return figures.learning_curves(histories, out / "learning-curves.png"), pd.DataFrame(gaps)


def samples_section(folder: Path, fracs: list[float], out: Path, per_row: int = 6) -> Path | None:
    frac = next((f for f in fracs if (synthetic.folder(folder, f) / "labels.csv").exists()), None)
    if frac is None:
        return None
    fake, fake_labels, _ = synthetic.load(folder, frac)
    index = read_index(folder)
    pool = index[index["split"] == "pool"]
    rows = {}
    for target in TARGETS:
        real_rows = pool[pool[target] == 1].head(per_row)
        rows[f"{target}: real"] = list(load_images(folder, real_rows)) if len(real_rows) else []
        rows[f"{target}: generated"] = list(fake[np.flatnonzero(fake_labels["target"].to_numpy() == target)[:per_row]])
    return figures.image_grid(rows, out / "samples.png", f"real pool images vs generated ({frac:.0%} regimen's set)")


def cam_section(folder: Path, runs: Runs, fracs: list[float], out: Path, per_row: int = 3) -> tuple[Path | None, str]:
    """CAMs of the GAN-augmented model (lowest seed) of the largest regimen that has one (the paper used 100%)."""
    frac = next((f for f in sorted(fracs, reverse=True) if (f, "gan") in runs), None)
    if frac is None:
        return None, ""
    run = first_seed(runs, frac, "gan")
    model = classifier.load_run(run)
    predictions = pd.read_csv(run / "test-predictions.csv")
    fake, fake_labels, _ = synthetic.load(folder, frac)
    rows = {}
    for target in TARGETS:
        top = predictions[predictions[f"label/{target}"] == 1].nlargest(per_row, f"prob/{target}")
        real = load_images(folder, top) if len(top) else np.zeros((0, *fake.shape[1:]), np.uint8)
        generated = fake[np.flatnonzero(fake_labels["target"].to_numpy() == target)[:per_row]]
        for kind, images in (("real", real), ("generated", generated)):
            maps = class_activation_maps(model, images, target) if len(images) else []
            rows[f"{target}: {kind}"] = [figures.overlay(i, m) for i, m in zip(images, maps)]
    return figures.image_grid(rows, out / "cams.png", f"CAMs, GAN-augmented model, {frac:.0%} regimen"), str(run)


def provenance_table(runs: Runs) -> pd.DataFrame:
    rows = []
    for (frac, arm), seeds in sorted(runs.items(), key=lambda item: (item[0][0], ARMS.index(item[0][1]))):
        for run in seeds.values():
            config = json.loads((run / "config.json").read_text())
            metrics = json.loads((run / "metrics.json").read_text())
            rows.append(
                {
                    "regimen": f"{frac:.0%}",
                    "arm": arm,
                    "seed": config["seed"],
                    "split seed": config.get("split_seed_used", config["seed"]),
                    "lr": config["lr"],
                    "batch": config["batch_size"],
                    "optimizer": config["optimizer"],
                    "epochs": config["epochs"],
                    "best epoch": metrics["best_epoch"],
                    "train images": config.get("train_images"),
                    "device": config.get("device_used", "?"),
                    "init": config.get("init", "?"),
                    "wall s": round(metrics["wall_seconds"]) if "wall_seconds" in metrics else None,
                    "run": str(run),
                }
            )
    return pd.DataFrame(rows)


def report(
    name: str = "phantom",
    runs_root: Path = Path("runs"),
    data_dir: Path = Path("data"),
    dataset: str = DEFAULT_DATASET,
    out_root: Path = Path("reports"),
    n_boot: int = 1000,
) -> Path:
    folder = locate(Path(data_dir), dataset)
    out = Path(out_root) / name
    out.mkdir(parents=True, exist_ok=True)
    runs = find_runs(Path(runs_root), dataset)
    fracs = sorted(set(prepared_fracs(folder)) | {f for f, _ in runs})
    attrs = settings(folder)
    phantom = attrs.get("source") == "phantom"
    predictions = read_predictions(runs, fracs)
    all_aucs, all_comparisons = auc_tables(runs, predictions, folder, PATHOLOGIES, n_boot)
    # Two families of comparisons, each Holm-corrected on its own: Table 2's (the targets, against
    # none and oversample) and the appendix's (all 14 classes, against none).
    aucs = all_aucs[all_aucs["class"].isin(TARGETS)] if len(all_aucs) else all_aucs
    comparisons = with_holm(all_comparisons[all_comparisons["class"].isin(TARGETS)])
    appendix = with_holm(all_comparisons[all_comparisons["against"] == "none"])
    generators = generators_table(folder, fracs)
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
        blocks += [("p", line) for line in answer(aucs, comparisons, generators, phantom)]
        blocks += figure_blocks(aucs, comparisons, out)
    blocks += [("h2", "Table 1: generated images per target class"), ("table", table1(folder, fracs))]
    if not generators.empty:
        blocks += [("p", "What each generator saw:"), ("table", generators)]
    blocks.append(
        ("h2", "Table 2: test AUC of the target classes, mean over seeds [95% CI]; Δ from none [95% CI], Holm-adjusted p")
    )
    if not aucs.empty:
        blocks += [
            ("table", auc_grid(aucs, comparisons, TARGETS)),
            ("p", seeds_note(aucs)),
            ("h2", "Comparisons"),
            ("table", comparisons_table(comparisons)),
            ("h2", "Validation positives per regimen"),
            ("table", validation_positives(runs, folder)),
        ]
    untrained = [f"{f:.0%}" for f in fracs if not any((f, arm) in runs for arm in ARMS)]
    if untrained:
        blocks.append(("p", f"Regimens prepared but with no finished run (gap): {', '.join(untrained)}."))
    write_atomic(out / "table2.csv", aucs.to_csv(index=False))
    write_atomic(out / "comparisons.csv", comparisons.to_csv(index=False))

    samples = samples_section(folder, fracs, out)
    blocks += [("h2", "Samples: real vs generated"), ("img", samples) if samples else ("p", "No generated set: gap.")]
    curves, gaps = curves_section(runs, fracs, out)
    blocks.append(("h2", "Learning curves (lowest seed)"))
    blocks += [("img", curves), ("table", gaps)] if curves else [("p", "No runs: gap.")]
    cams, cam_run = cam_section(folder, runs, fracs, out)
    blocks.append(("h2", "Class activation maps"))
    blocks += (
        [("img", cams), ("p", f"Model: {cam_run}. Real rows: the test positives it scores highest.")]
        if cams
        else [("p", "No GAN-augmented run: gap.")]
    )
    blocks += gan_quality_blocks(Path(runs_root) / dataset, comparisons)
    if not aucs.empty:
        blocks += appendix_blocks(predictions, aucs, all_aucs, appendix)
    blocks += [
        ("h2", "Provenance"),
        (
            "p",
            f"chexbal {__version__}; dataset {dataset} (source {attrs.get('source')}, {attrs.get('size')} px, seed "
            f"{attrs.get('seed')}, uncertain → {attrs.get('uncertain')}); {platform.platform()}, {platform.processor() or 'cpu'}; "
            f"written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        ),
    ]
    if runs:
        blocks.append(("table", provenance_table(runs)))
    write_atomic(out / "report.md", to_markdown(blocks, out))
    write_atomic(out / "report.html", to_html(blocks, f"chexbal report: {dataset}"))
    return out


def figure_blocks(aucs: pd.DataFrame, comparisons: pd.DataFrame, out: Path) -> list:
    blocks = []
    versus_none = comparisons[comparisons["against"] == "none"]
    if len(versus_none):
        blocks.append(("img", figures.forest(versus_none, TARGETS, out / "forest.png")))
    if aucs["frac"].nunique() > 1:
        blocks.append(("img", figures.by_size(aucs, TARGETS, out / "auc-by-size.png")))
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


def gan_quality_blocks(runs_dir: Path, comparisons: pd.DataFrame) -> list:
    """Each `chexbal gan-eval` result (gan-eval*.json): fidelity and counterfactual shift per target,
    beside the gain of the arm that used that generator, so a reader sees whether fidelity predicts gain."""
    blocks = [("h2", "GAN quality")]
    paths = sorted(runs_dir.glob("gan-eval*.json"))
    if not paths:
        return blocks + [("p", "No `chexbal gan-eval` result: gap.")]
    gains = comparisons[comparisons["against"] == "none"]
    for path in paths:
        result = json.loads(path.read_text())
        seen = result.get("trained_on", {})
        judges = result["classifier"] + (f" and {result['second_judge']['classifier']}" if "second_judge" in result else "")
        blocks += [
            (
                "p",
                f"**{path.stem}**: generator {result['checkpoint']} (trained on regimen {seen.get('frac', float('nan')):.0%}, "
                f"{rows_seen(seen.get('rows', '?'))}), judged by {judges}; {result['generated']} generated images.",
            ),
            ("table", quality_table(result)),
        ]
        arm = "gan-regimen" if seen.get("validation_patients_excluded") else "gan"
        blocks.append(("table", fidelity_and_gain(result, gains[gains["arm"] == arm], arm)))
    return blocks


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
        }
        for _, gain in gains[gains["class"] == target].iterrows():
            row[f"Δ {arm} at {gain['regimen']}"] = f"{gain['diff']:+.3f} ({gain['verdict']})"
        rows.append(row)
    return pd.DataFrame(rows).round(3)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def to_markdown(blocks, out: Path) -> str:
    lines = []
    for kind, *content in blocks:
        if kind in ("h1", "h2"):
            lines += ["#" * int(kind[1]) + " " + content[0], ""]
        elif kind == "p":
            lines += [content[0], ""]
        elif kind == "img":
            lines += [f"![{content[0].stem}]({content[0].relative_to(out)})", ""]
        elif kind == "table":
            table = content[0]
            lines += ["| " + " | ".join(map(str, table.columns)) + " |", "|" + " --- |" * len(table.columns)]
            lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
            lines.append("")
    return "\n".join(lines)


def to_html(blocks, title: str) -> str:
    body = []
    for kind, *content in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(content[0])}</{kind}>")
        elif kind == "p":
            text = html.escape(content[0])
            text = text.replace("**", "<b>", 1).replace("**", "</b>", 1) if text.count("**") >= 2 else text
            body.append(f"<p>{text}</p>")
        elif kind == "img":
            data = base64.b64encode(content[0].read_bytes()).decode()
            body.append(f'<img alt="{html.escape(content[0].stem)}" src="data:image/png;base64,{data}">')
        elif kind == "table":
            table = content[0]
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                for row in table.itertuples(index=False)
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px}"
        "img{max-width:100%}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
