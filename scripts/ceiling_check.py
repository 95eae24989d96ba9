"""How far a classifier can pass the report's oracle ceiling by reading other findings' signs.

    .venv/bin/python scripts/ceiling_check.py --data data/phantom-64 \
        runs/phantom-64/frac-0.1/real-extra/*seed[012]

The report's oracle ceiling is the test AUC of a perfect detector of a target's own drawn sign
(signs.csv): a positive drawn without its sign ties with the negatives. But the phantom draws every
finding of a label vector, and findings co-occur, so the signs of the others say something about
the target. Here a logistic regression on all 14 drawn-sign indicators, fitted on the pool rows
(never the test rows), scores the test rows: what the drawn signs allow when read together. Each
run folder given prints its test AUC beside them (test-predictions.csv). Seconds on one core.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from chexbal.analysis.evaluate import auc_per_class
from chexbal.analysis.oracle import drawn_matrix, oracle_ceiling, read_signs
from chexbal.data.dataset import read_index
from chexbal.data.labels import PATHOLOGIES, TARGETS, label_matrix


def all_signs_ceiling(index: pd.DataFrame, signs: pd.DataFrame) -> dict[str, float]:
    """Per target, the test AUC of a logistic regression on every drawn sign, fitted on the pool."""
    pool, test = index[index["split"] != "test"], index[index["split"] == "test"]
    seen, judged = drawn_matrix(signs, pool["index"]), drawn_matrix(signs, test["index"])
    scores = np.zeros((len(test), len(PATHOLOGIES)), np.float32)
    for target in TARGETS:
        column = PATHOLOGIES.index(target)
        model = LogisticRegression(max_iter=2000).fit(seen, label_matrix(pool)[:, column])
        scores[:, column] = model.predict_proba(judged)[:, 1]
    return auc_per_class(label_matrix(test), scores)


def row(name: str, values: dict) -> str:
    cells = (value if isinstance(value, str) else f"{value:.3f}" for value in (values[t] for t in TARGETS))
    return f"{name:44s}" + "".join(f"{cell:>15s}" for cell in cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a prepared phantom dataset folder")
    parser.add_argument("runs", type=Path, nargs="*", help="run folders whose test AUCs to print beside")
    args = parser.parse_args()
    signs = read_signs(args.data)
    if signs is None:
        raise SystemExit(f"{args.data} has no signs.csv: only a phantom records its drawn signs")
    index = read_index(args.data)
    print(row("", {t: t for t in TARGETS}))
    print(row("own sign (the report's oracle ceiling)", oracle_ceiling(index[index["split"] == "test"], signs)))
    print(row("all 14 drawn signs (logistic)", all_signs_ceiling(index, signs)))
    for run in args.runs:
        test = pd.read_csv(run / "test-predictions.csv")
        labels = label_matrix(test.rename(columns=lambda column: column.removeprefix("label/")))
        aucs = auc_per_class(labels, test[[f"prob/{name}" for name in PATHOLOGIES]].to_numpy())
        print(row(f"{run.parent.name} {run.name}", aucs))


if __name__ == "__main__":
    main()
