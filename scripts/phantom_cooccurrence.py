"""How much of a target's AUC a classifier can get from the findings that co-occur with it, not its own sign.

    .venv/bin/python scripts/phantom_cooccurrence.py --data data/calib-r11 --frac 0.01 \
        --runs runs/calibration/calib-r11/frac-0.01/seed*

Per target, on the test rows:
- `labels`: a logistic regression from the other 13 labels, fitted on the regimen's non-test rows.
  CheXpert's own co-occurrence: the same on the phantom and on real films.
- `other signs`: the same from the other findings' drawn signs (signs.csv): what a perfect reader of
  every other sign could score, on this phantom.
- `all signs`: the same from every drawn sign, the target's own among them: what a perfect reader of
  the whole image could score. A classifier can pass `oracle` by reading the other signs, up to this.
- `oracle`: the target's own drawn sign (the report's oracle ceiling: a ceiling on that sign only).
- `carried by`: the three other signs that alone say most about the target (AUC furthest from 0.5;
  below 0.5: the target's positives show that sign less often).
- per run (mean over the runs given): the AUC against the labels, the same among the rows that show
  no sign of the target (co-occurrence only), and against the target's drawn sign.
A run whose AUC among rows without the sign equals its AUC overall reads the target from other findings.
- with `--extra-rows RUN`: `other signs` again, fitted on the training rows plus the rows that RUN's
  arm added (its extra-rows.csv, e.g. `oversample`'s repeats): whether the arm's training set
  weakens the co-occurrence cue itself.
- with `--shown "FINDING=P,U,N"` (repeatable; as scripts/calibrate_phantom.py takes it): a variant's
  label noise for that finding. The rows' signs are drawn again with it (no image is rendered), so
  `other signs` and `oracle` are what a perfect reader would score on that variant: how far a change
  to the other findings would move the co-occurrence cue, before anyone renders or trains on it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from calibrate_phantom import apply_overrides  # scripts/ is on the path of a script run from it
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from chexbal.analysis.oracle import drawn_matrix, oracle_ceiling, read_signs
from chexbal.data.dataset import read_index, read_subset, settings
from chexbal.data.labels import PATHOLOGIES, TARGETS
from chexbal.data.sources import phantom


def cooccurrence_auc(train_x: np.ndarray, train_y, test_x: np.ndarray, test_y) -> float:
    model = LogisticRegression(max_iter=2000).fit(train_x, train_y)
    return roc_auc_score(test_y, model.predict_proba(test_x)[:, 1])


def strongest_signs(drawn: np.ndarray, labels, names: list[str], top: int = 3) -> str:
    single = {name: roc_auc_score(labels, drawn[:, i]) for i, name in enumerate(names)}
    ranked = sorted(single, key=lambda name: -abs(single[name] - 0.5))[:top]
    return ", ".join(f"{name} {single[name]:.3f}" for name in ranked)


def run_aucs(predictions: pd.DataFrame, target: str, signs: pd.DataFrame) -> tuple[float, float, float]:
    """A run's test predictions: (against the labels, the same among rows without the target's sign,
    against the sign)."""
    labels, probs = predictions[f"label/{target}"].to_numpy(), predictions[f"prob/{target}"].to_numpy()
    shown = drawn_matrix(signs, predictions["index"])[:, PATHOLOGIES.index(target)].astype(bool)
    return roc_auc_score(labels, probs), roc_auc_score(labels[~shown], probs[~shown]), roc_auc_score(shown, probs)


def variant_signs(folder: Path, rows: pd.DataFrame, overrides: list[str]) -> pd.DataFrame:
    """signs.csv's `drawn` columns for `rows` as a renderer with `overrides` of its label noise draws them."""
    apply_overrides(overrides, [], [])
    raw = pd.read_csv(folder / "raw-labels.csv").set_index("index").loc[rows["index"], list(PATHOLOGIES)]
    recorded = settings(folder)
    drawn = phantom.signs(list(rows["Path"]), raw.to_numpy(float), recorded["size"], recorded["seed"])
    return drawn.set_index(rows["index"].to_numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a prepared phantom dataset folder")
    parser.add_argument("--frac", type=float, default=0.01)
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="run folders of that regimen")
    parser.add_argument("--extra-rows", type=Path, help="a run folder whose extra-rows.csv joins the training rows")
    parser.add_argument("--shown", action="append", default=[], metavar="FINDING=P,U,N", help="a variant's label noise")
    args = parser.parse_args()
    if args.shown and (args.runs or args.extra_rows):
        parser.error("--shown describes a variant nobody trained on: it takes no --runs or --extra-rows")
    signs, index = read_signs(args.data), read_index(args.data)
    subset = read_subset(args.data, args.frac)
    train, test = subset[subset.split != "test"], index[index.split == "test"]
    if args.extra_rows:  # the arm's training set: its split's training rows and the rows it added
        split = pd.read_csv(args.extra_rows / "split.csv")
        added = pd.read_csv(args.extra_rows / "extra-rows.csv")["index"]
        rows = pd.concat([split.loc[split["split"] == "train", "index"], added])
        train = index.set_index("index").loc[rows].reset_index()
    if args.shown:
        signs = variant_signs(args.data, pd.concat([train, test]).drop_duplicates("index"), args.shown)
    drawn_train, drawn_test = drawn_matrix(signs, train["index"]), drawn_matrix(signs, test["index"])
    ceiling = oracle_ceiling(test, signs)
    runs = [pd.read_csv(run / "test-predictions.csv") for run in args.runs]
    fitted = f"{len(train)} rows fitted ({'training and added' if args.extra_rows else 'non-test'})"
    print(f"{args.data} at {args.frac:g}: {fitted}, {len(test)} test rows, {len(args.runs)} runs")
    for target in TARGETS:
        others = [name for name in PATHOLOGIES if name != target]
        keep = [i for i, name in enumerate(PATHOLOGIES) if name not in (target, "No Finding")]  # No Finding has no sign
        by_labels = cooccurrence_auc(train[others].to_numpy(), train[target], test[others].to_numpy(), test[target])
        by_signs = cooccurrence_auc(drawn_train[:, keep], train[target], drawn_test[:, keep], test[target])
        every = keep + [PATHOLOGIES.index(target)]
        by_all = cooccurrence_auc(drawn_train[:, every], train[target], drawn_test[:, every], test[target])
        line = f"{target:14} labels {by_labels:.3f}  other signs {by_signs:.3f}  all signs {by_all:.3f}"
        line += f"  oracle {ceiling[target]:.3f}"
        line += f"  carried by {strongest_signs(drawn_test[:, keep], test[target], [PATHOLOGIES[i] for i in keep])}"
        if runs:
            label, no_sign, sign = np.mean([run_aucs(predictions, target, signs) for predictions in runs], axis=0)
            line += f"  | runs: label {label:.3f}, label without its sign {no_sign:.3f}, sign {sign:.3f}"
        print(line)


if __name__ == "__main__":
    main()
