"""Patient-level splits: the fixed test set, nested regimens, and the train/validation split.

Every split is by patient, never by image: one patient's images on both sides inflates AUC.
`order_rows` fixes, once per dataset, an order of the rows in which the test patients come first and
the pool patients follow in a seeded random order. A regimen of fraction F is then the test rows plus
the smallest prefix of pool patients holding at least F of the pool images, so regimens are nested
(1% ⊂ 10% ⊂ 50% ⊂ 100%) and each one's images are a prefix of the image store.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from chexbal.errors import ChexbalError

TEST_SHARE = 0.05
VALIDATION_SHARE = 0.05 / 0.95  # the paper's 90/5 of the whole, taken from the 95% pool
_PATIENT = re.compile(r"(patient\d+)")


def patient_of(path: str) -> str:
    match = _PATIENT.search(path)
    if match is None:
        raise ChexbalError(f"cannot find a patientNNNNN part in Path {path!r}")
    return match.group(1)


def check_frac(frac: float) -> float:
    if not (0.0 < frac <= 1.0):
        raise ChexbalError(f"--frac must be in (0, 1], not {frac:g}", 2)
    return frac


def frac_name(frac: float) -> str:
    """The folder and file stem of a regimen: frac-0.01, frac-1."""
    return f"frac-{frac:g}"


def frac_of(name: str) -> float:
    """The regimen a frac_name names."""
    return float(name.removeprefix("frac-"))


def order_rows(rows: pd.DataFrame, seed: int, test_share: float = TEST_SHARE) -> pd.DataFrame:
    """Rows with a `split` column, test patients first, then pool patients in a seeded order."""
    patients = np.array(sorted(rows["patient"].unique()))
    rank = dict(zip(np.random.default_rng(seed).permutation(patients), range(len(patients))))
    n_test = max(1, round(len(patients) * test_share)) if len(patients) > 1 else 0
    ordered = rows.assign(_rank=rows["patient"].map(rank), _row=np.arange(len(rows)))
    ordered = ordered.sort_values(["_rank", "_row"], kind="stable").drop(columns=["_rank", "_row"])
    is_test = ordered["patient"].map(rank) < n_test
    ordered.insert(0, "split", np.where(is_test, "test", "pool"))
    return ordered.reset_index(drop=True)


def regimen_length(index: pd.DataFrame, frac: float) -> int:
    """How many leading rows of an ordered index make the regimen `frac` (test rows included)."""
    check_frac(frac)
    pool = index[index["split"] == "pool"]
    n_test = len(index) - len(pool)
    if len(pool) == 0:
        return n_test
    wanted = max(1, math.ceil(frac * len(pool) - 1e-9))
    last_patient = pool["patient"].iloc[wanted - 1]
    ends = np.flatnonzero(pool["patient"].to_numpy() == last_patient)
    return n_test + int(ends[-1]) + 1


def train_val_split(pool: pd.DataFrame, seed: int, val_share: float = VALIDATION_SHARE) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a regimen's pool rows by patient into training and validation rows."""
    patients = np.array(sorted(pool["patient"].unique()))
    if len(patients) < 2:
        raise ChexbalError("the regimen has fewer than 2 patients: nothing to validate on; use a larger --frac")
    shuffled = np.random.default_rng(seed).permutation(patients)
    n_val = min(len(patients) - 1, max(1, round(len(patients) * val_share)))
    is_val = pool["patient"].isin(set(shuffled[:n_val]))
    return pool[~is_val], pool[is_val]


def regimen_split(
    subset: pd.DataFrame, seed: int, test_patients: set[str], name: str = "the regimen"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A regimen's training and validation rows (its pool, split by patient), as every stage that
    trains on a regimen uses them: the classifier, the regimen generator and the plan. Refused if
    the dataset has no test patients or the regimen's pool holds one."""
    if not test_patients:
        raise ChexbalError(f"{name} records no test split: nothing could be kept away from test patients")
    pool = subset[subset["split"] == "pool"]
    if pool["patient"].isin(test_patients).any():
        raise ChexbalError(f"{name} holds test patients in its pool: refusing to train on them")
    return train_val_split(pool, seed)


def test_patients(index: pd.DataFrame) -> set[str]:
    return set(index.loc[index["split"] == "test", "patient"])
