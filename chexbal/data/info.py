"""`chexbal info`: per-class positives, uncertain and prevalence per split and regimen (Figure 1)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from chexbal.data.dataset import prepared_fracs, read_index, read_subset
from chexbal.data.labels import PATHOLOGIES
from chexbal.data.splits import frac_name


def groups(folder: Path) -> dict[str, pd.DataFrame]:
    """The rows of the pool, the test set and each prepared regimen's pool part."""
    index = read_index(folder)
    found = {"pool": index[index["split"] == "pool"], "test": index[index["split"] == "test"]}
    for frac in prepared_fracs(folder):
        subset = read_subset(folder, frac)
        found[frac_name(frac)] = subset[subset["split"] == "pool"]
    return found


def class_table(folder: Path, found: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Rows: the 14 classes. Columns: (group, positive | uncertain | prevalence).

    `positive` and `uncertain` count raw CheXpert labels (1 and -1); `prevalence` is the share of
    images labelled 1 after the uncertain-label policy, which is what the classifier learns from.
    """
    raw = pd.read_csv(folder / "raw-labels.csv").set_index("index")
    columns = {}
    for name, rows in found.items():
        raw_rows = raw.loc[rows["index"], list(PATHOLOGIES)]
        columns[(name, "positive")] = (raw_rows == 1).sum()
        columns[(name, "uncertain")] = (raw_rows == -1).sum()
        columns[(name, "prevalence")] = rows[list(PATHOLOGIES)].mean()
    return pd.DataFrame(columns, index=list(PATHOLOGIES))
