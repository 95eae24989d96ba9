"""What the phantom knows: its drawn signs (signs.csv) and the oracle ceiling they set.

The oracle is a perfect detector of a target's own drawn sign. Scored against the (noisy) labels,
its AUC is the most that sign can give, since a row labelled positive without it looks like a
negative. It is not a bound on a classifier: one that also reads the signs of findings that co-occur
with the target breaks the oracle's ties and can pass it (`all signs` in scripts/phantom_cooccurrence.py; at 10%,
`real-extra` did on Pleural Other). signs.csv is never an input to training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from chexbal.analysis.evaluate import auc_per_class
from chexbal.data.labels import PATHOLOGIES, label_matrix
from chexbal.errors import ChexbalError


def read_signs(folder: Path) -> pd.DataFrame | None:
    """A phantom dataset's signs.csv indexed by `index`, or None for a source that has none."""
    path = Path(folder) / "signs.csv"
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path).set_index("index")
    except (pd.errors.ParserError, KeyError, UnicodeDecodeError) as error:
        raise ChexbalError(f"{path} is unreadable ({error}): delete it and run `chexbal prepare` again") from None


def drawn_matrix(signs: pd.DataFrame, indices) -> np.ndarray:
    """(n, 14) 0/1: whether each row shows each finding's sign (No Finding has none: 0)."""
    missing = np.setdiff1d(np.asarray(indices), signs.index.to_numpy())
    if len(missing):
        raise ChexbalError(
            f"signs.csv lacks {len(missing)} of the rows asked for (first {missing[0]}): run `chexbal prepare` again"
        )
    rows = signs.loc[indices]
    columns = [rows[f"drawn {name}"].to_numpy() if f"drawn {name}" in rows else np.zeros(len(rows)) for name in PATHOLOGIES]
    return np.stack(columns, axis=1).astype(np.float32)


def oracle_ceiling(rows: pd.DataFrame, signs: pd.DataFrame) -> dict[str, float]:
    """Per class, the AUC against the rows' labels of the drawn-sign indicator."""
    return auc_per_class(label_matrix(rows), drawn_matrix(signs, rows["index"]))


def sign_aucs(predictions: pd.DataFrame, signs: pd.DataFrame) -> dict[str, float]:
    """Per class, the AUC of a run's test predictions against what was drawn (not the labels):
    how well the classifier sees the signs themselves."""
    probs = predictions[[f"prob/{name}" for name in PATHOLOGIES]].to_numpy()
    return auc_per_class(drawn_matrix(signs, predictions["index"]), probs)
