"""How far each run fits its own training rows beyond what carries over to the test set, per target.

    .venv/bin/python scripts/memorisation_check.py --data data/phantom-64 \
        runs/phantom-64/frac-0.01/none/*seed[012] runs/phantom-64/frac-0.01/oversample/*seed[012]

Per run folder: its selected checkpoint (best.pt) scores the real training rows of its split
(split.csv; an arm's added rows are left out, so every arm of a regimen and split seed is scored on
the same images), and the per-target AUC there is printed beside its test AUC
(test-predictions.csv). An arm that repeats a few positives many times (`oversample`) can score them
near 1.0 while its test AUC falls: it fitted those images rather than the finding. Mean over the runs
of each arm. One thread, a minute or two per run at 64 px.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from chexbal import files
from chexbal.classify import classifier
from chexbal.data.dataset import load_images, read_index
from chexbal.data.labels import PATHOLOGIES, TARGETS


def training_and_test_aucs(run: Path, folder: Path, index: pd.DataFrame) -> dict[str, float]:
    split = pd.read_csv(run / "split.csv")
    rows = index.loc[split.loc[split["split"] == "train", "index"]].reset_index()
    _, probs = classifier.embed_and_score(classifier.load_run(run), load_images(folder, rows))
    test = pd.read_csv(run / "test-predictions.csv")
    aucs = {}
    for target in TARGETS:
        aucs[f"{target} train"] = roc_auc_score(rows[target], probs[:, PATHOLOGIES.index(target)])
        aucs[f"{target} test"] = roc_auc_score(test[f"label/{target}"], test[f"prob/{target}"])
    return aucs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the prepared dataset folder the runs trained on")
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (each with best.pt, split.csv, test-predictions.csv)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    index = read_index(args.data).set_index("index")
    table = pd.DataFrame(
        [
            {"arm": files.read_json(run / "config.json")["aug"], **training_and_test_aucs(run, args.data, index)}
            for run in args.runs
        ]
    )
    means = table.groupby("arm", sort=False).mean()
    means.insert(0, "runs", table.groupby("arm", sort=False).size())
    print(means.round(3).to_string())


if __name__ == "__main__":
    main()
