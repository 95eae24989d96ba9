"""The results on disk, as tables: which runs count, their test AUCs with intervals, the paired
comparisons with Holm-adjusted p, and what each generator and plan was. No wording, no layout."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from chexbal import files
from chexbal.analysis.evaluate import confidence_interval, delong, format_p, holm
from chexbal.analysis.oracle import oracle_ceiling, read_signs
from chexbal.analysis.stats import SeedBootstrap, wald_p
from chexbal.classify.arms import GENERATED, IMPORTED, arm_order, is_arm
from chexbal.data.dataset import read_index, training_rows
from chexbal.data.labels import TARGETS
from chexbal.data.splits import frac_of
from chexbal.generators import synthetic
from chexbal.generators.generate import trained_on
from chexbal.generators.plan import make_plan

ALPHA = 0.05
# Comparisons beyond "against none": does a generator beat simply repeating the real positives?
AGAINST_OVERSAMPLE = ("gan", "gan-regimen", "gan-regimen-seed1", "diffusion", "diffusion-regimen", "real-extra")

ARM_OF = {generator: arm for arm, generator in GENERATED.items()}  # a generated set's arm

Runs = dict[tuple[float, str], dict[int, Path]]


def find_runs(runs_root: Path, dataset: str) -> Runs:
    """The chosen run per (regimen, arm, seed): the sweep's pick for that seed if recorded, else the
    finished run of that seed with the best mean validation AUC."""
    chosen: Runs = {}
    for arm_dir in sorted((runs_root / dataset).glob("frac-*/*")):
        if not is_arm(arm_dir.name):
            continue
        frac = frac_of(arm_dir.parent.name)
        by_seed: dict[int, list[tuple[float, Path]]] = {}
        for metrics in arm_dir.glob("*/metrics.json"):
            seed = files.read_json(metrics.parent / "config.json")["seed"]
            auc = files.read_json(metrics)["val"]["mean_auc"]
            if not math.isnan(auc):
                by_seed.setdefault(seed, []).append((auc, metrics.parent))
        picks = {}
        for seed, finished in by_seed.items():
            selected = arm_dir / f"selected-seed{seed}.json"
            # The chosen run sits beside the selection, whatever working directory the sweep ran in.
            picks[seed] = (
                arm_dir / Path(files.read_json(selected)["selected"]["run"]).name if selected.exists() else max(finished)[1]
            )
        if picks:
            chosen[(frac, arm_dir.name)] = dict(sorted(picks.items()))
    return chosen


def keep_runs(runs: Runs, only: Mapping[tuple[float, str], Collection[int]]) -> Runs:
    """The runs `only` names, (regimen, arm) → seeds; every other run on disk is left out, so a plan's
    page holds its own runs and its comparisons' Holm family is the plan's, whatever else has run."""
    kept: Runs = {}
    for key, seeds in runs.items():
        picked = {seed: run for seed, run in seeds.items() if seed in only.get(key, ())}
        if picked:
            kept[key] = picked
    return kept


def table1(folder: Path, fracs: list[float], seed: int = 0) -> pd.DataFrame:
    rows = []
    for frac in fracs:
        provenance = synthetic.folder(folder, frac) / "provenance.json"
        if provenance.exists():
            plan, status = files.read_json(provenance)["plan"], "generated"
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


def generators_table(folder: Path, fracs: list[float]) -> pd.DataFrame:
    """What the generator behind each generated or imported set saw: the confound of the `gan` arm
    at a glance, and for an imported set what its user declared."""
    rows = []
    for frac in fracs:
        for generator in (*synthetic.GENERATORS, *imported_sets(folder, frac)):
            path = synthetic.folder(folder, frac, generator) / "provenance.json"
            if path.exists():
                rows.append(generator_row(frac, generator, files.read_json(path)))
    return pd.DataFrame(rows)


def imported_sets(folder: Path, frac: float) -> list[str]:
    """A regimen's imported sets, by generator name (import-<NAME>)."""
    base = synthetic.folder(folder, frac).name  # frac-<F>
    return sorted(p.name[len(base) + 1 :] for p in folder.glob(f"synthetic/{base}-{synthetic.IMPORTED}*"))


def generator_row(frac: float, generator: str, provenance: dict) -> dict:
    seen = provenance.get("trained_on") or trained_on(provenance.get("generator", {}))
    importer = generator.startswith(synthetic.IMPORTED)
    short = provenance.get("short") or {}
    return {
        "regimen": f"{frac:.0%}",
        "arm": f"{IMPORTED}{generator[len(synthetic.IMPORTED) :]}" if importer else ARM_OF[generator],
        "generator trained on regimen": f"declared: {seen.get('declared')}"
        if importer
        else f"{seen.get('frac', float('nan')):.0%}",
        "rows": seen.get("rows"),
        "patients": seen.get("patients", "—"),
        "validation patients excluded": {True: "yes", False: "no"}.get(seen.get("validation_patients_excluded"), "unknown"),
        "images added": sum(c["taken"] for c in provenance["per_target"].values())
        if importer
        else provenance["plan"]["augmented"] - provenance["plan"]["real"],
        "short of the plan": "; ".join(f"{t} {c['taken']} of {c['planned']}" for t, c in short.items()) or "no",
        "sampling": "—" if importer else provenance.get("sampling", "fp32"),  # generate --amp
        "generator sha256": (provenance["checkpoint_sha256"] or "imported")[:12],
    }


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


Replicates = dict[tuple[float, str, str, str], np.ndarray]  # (frac, class, arm, against) -> Δ's bootstrap values


def auc_tables(
    runs: Runs, predictions: Predictions, folder: Path, classes, n_boot: int = 1000
) -> tuple[pd.DataFrame, pd.DataFrame, Replicates]:
    """Per regimen, class and arm: mean test AUC over seeds with its interval, the same on test rows
    whose label is certain, and per seed. Then every comparison (arm against none; generators and
    real-extra also against oversample), paired by seed, with raw p (Holm comes later, per table),
    and the bootstrap values of each comparison made on the first regimen's test set (for
    `size_changes`: regimens tested on the same rows share their patient resamples)."""
    raw = pd.read_csv(folder / "raw-labels.csv").set_index("index") if (folder / "raw-labels.csv").exists() else None
    aucs, comparisons, replicates, test_set = [], [], {}, None
    for frac, by_arm in predictions.items():
        if not by_arm:
            continue
        first = next(iter(next(iter(by_arm.values())).values()))
        order, patients = first.index, first["patient"].to_numpy()
        test_set = order if test_set is None else test_set
        shared = replicates if order.equals(test_set) else {}
        epochs = {arm: _epochs(runs[(frac, arm)]) for arm in by_arm}
        for name in classes:
            y = first.loc[order, f"label/{name}"].to_numpy()
            if y.min() == y.max():
                continue
            scores = {
                arm: {s: p.loc[order, f"prob/{name}"].to_numpy() for s, p in seeds.items()} for arm, seeds in by_arm.items()
            }
            boot = SeedBootstrap(y, patients, scores, n_boot)
            certain = (raw.loc[order, name] != -1).to_numpy() if raw is not None else np.ones(len(y), bool)
            where = {"regimen": f"{frac:.0%}", "frac": frac, "class": name}
            for arm in sorted(scores, key=arm_order):
                result = boot.arm(arm)
                certain_auc = np.mean([roc_auc_score(y[certain], v[certain]) for v in scores[arm].values()])
                aucs.append(_auc_row(where, arm, epochs[arm], result, certain_auc))
                comparisons += _comparison_rows(where, arm, boot, shared)
    columns = ["regimen", "frac", "class", "arm", "against", "seeds", "diff", "ci_low", "ci_high", "p", "se"]
    return pd.DataFrame(aucs), pd.DataFrame(comparisons, columns=columns), replicates


def _epochs(seeds: dict[int, Path]) -> str:
    """The epochs an arm's runs trained for, as recorded by each run ("5", or "5/10" if they differ)."""
    return "/".join(sorted({str(files.read_json(run / "config.json")["epochs"]) for run in seeds.values()}))


def _auc_row(where: dict, arm: str, epochs: str, result, certain_auc: float) -> dict:
    return {
        **where,
        "arm": arm,
        "seeds": len(result.seeds),
        "epochs": epochs,
        "auc": result.mean,
        "ci_low": result.ci[0],
        "ci_high": result.ci[1],
        "auc_certain": certain_auc,
        **{f"seed {s}": v for s, v in result.per_seed.items()},
    }


def _comparison_rows(where: dict, arm: str, boot: SeedBootstrap, replicates: Replicates) -> list[dict]:
    """The arm against none, and a generator or real-extra also against oversample (their bootstrap
    values go into `replicates`)."""
    rows = []
    for reference in ("none", "oversample"):
        if arm == reference or (reference == "oversample" and arm not in AGAINST_OVERSAMPLE and not arm.startswith(IMPORTED)):
            continue
        comparison = boot.compare(arm, reference)
        if comparison is not None:
            replicates[(where["frac"], where["class"], arm, reference)] = comparison.replicates
            rows.append(
                {
                    **where,
                    "arm": arm,
                    "against": reference,
                    "seeds": len(comparison.seeds),
                    "diff": comparison.diff,
                    "ci_low": comparison.ci[0],
                    "ci_high": comparison.ci[1],
                    "p": comparison.p,
                    "se": comparison.se,
                }
            )
    return rows


def size_changes(comparisons: pd.DataFrame, replicates: Replicates) -> pd.DataFrame:
    """Each comparison made at two regimens or more: its Δ at the smallest and at the largest, and the
    change between them with its bootstrap interval and Wald p (Holm comes later, per table). Both
    regimens' Δs were bootstrapped on the same resamples of the same test patients, so the change's
    bootstrap values are the difference of theirs. A regimen tested on other rows is left out."""
    rows = []
    for (name, arm, against), group in comparisons.groupby(["class", "arm", "against"], sort=False):
        group = group[[(f, name, arm, against) in replicates for f in group["frac"]]]
        if group["frac"].nunique() < 2:
            continue
        small, large = (group.sort_values("frac").iloc[i] for i in (0, -1))
        values = replicates[(large["frac"], name, arm, against)] - replicates[(small["frac"], name, arm, against)]
        change, se = float(large["diff"] - small["diff"]), float(np.std(values))
        low, high = confidence_interval(values)
        rows.append(
            {
                "class": name,
                "arm": arm,
                "against": against,
                "from": small["regimen"],
                "to": large["regimen"],
                "diff_from": small["diff"],
                "diff_to": large["diff"],
                "diff": change,
                "ci_low": low,
                "ci_high": high,
                "p": wald_p(change, se),
                "se": se,
            }
        )
    columns = ["class", "arm", "against", "from", "to", "diff_from", "diff_to", "diff", "ci_low", "ci_high", "p", "se"]
    return pd.DataFrame(rows, columns=columns)


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
    """Holm-adjusted p over the whole table of comparisons, the verdict each one earns, and an
    interval that agrees with it (`adj_low`, `adj_high`): the Wald interval at level 1 - a with
    a = ALPHA * p / p_holm, the per-comparison threshold Holm's step applied to it. It excludes zero
    exactly when the adjusted p is below ALPHA, so a verdict and its interval never disagree."""
    adjusted = holm(comparisons["p"].to_numpy())
    verdict = np.where(adjusted < ALPHA, np.where(comparisons["diff"] > 0, "helps", "hurts"), "no detectable difference")
    p, diff, se = (comparisons[c].to_numpy(float) for c in ("p", "diff", "se"))
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(p > 0, ALPHA * p / adjusted, ALPHA / max(len(p), 1))
    half = norm.ppf(1 - np.clip(level, 1e-300, 1) / 2) * se
    return comparisons.assign(p_holm=adjusted, verdict=verdict, adj_low=diff - half, adj_high=diff + half)


def first_seed(runs: Runs, frac: float, arm: str) -> Path | None:
    seeds = runs.get((frac, arm))
    return next(iter(seeds.values())) if seeds else None


def provenance_table(runs: Runs) -> pd.DataFrame:
    rows = []
    for (frac, arm), seeds in sorted(runs.items(), key=lambda item: (item[0][0], arm_order(item[0][1]))):
        for run in seeds.values():
            config = files.read_json(run / "config.json")
            metrics = files.read_json(run / "metrics.json")
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
                    "precision": {True: "bf16", False: "fp32"}.get(config.get("amp_enabled"), "?"),
                    "init": config.get("init", "?"),
                    "wall s": round(metrics["wall_seconds"]) if "wall_seconds" in metrics else None,
                    "run": str(run),
                }
            )
    return pd.DataFrame(rows)


def oracle_table(folder: Path) -> pd.DataFrame:
    """Per target, the test AUC a perfect detector of its own drawn sign reaches against the labels:
    the ceiling the phantom's label noise sets on that sign (empty for a source that records no signs)."""
    signs = read_signs(folder)
    if signs is None:
        return pd.DataFrame()
    index = read_index(folder)
    ceiling = oracle_ceiling(index[index["split"] == "test"], signs)
    return pd.DataFrame([{"target": t, "oracle ceiling (test)": round(ceiling[t], 3)} for t in TARGETS])
