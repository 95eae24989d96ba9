"""The canonical label names. Every other module imports them from here.

CheXpert's CSV order is the only order chexbal uses. torchxrayvision sorts its pathology names and
renames Pleural Effusion to Effusion; nothing here depends on that, and every file chexbal writes
names its label columns instead of relying on a position.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from chexbal.errors import ChexbalError

PATHOLOGIES: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

# The under-represented findings the paper augments with generated images.
TARGETS: tuple[str, ...] = ("Lung Lesion", "Pleural Other", "Fracture")

UNCERTAIN_POLICIES = ("ones", "zeros")


def check_label_columns(df: pd.DataFrame, where: str) -> None:
    missing = [name for name in PATHOLOGIES if name not in df.columns]
    if missing:
        raise ChexbalError(f"{where} lacks label columns: {', '.join(missing)}")


def apply_policy(raw: pd.DataFrame, uncertain: str = "ones") -> pd.DataFrame:
    """CheXpert's raw labels (1, 0, -1, blank) as 0/1 under the uncertain-label policy.

    Blank means "not mentioned" and becomes 0. Uncertain (-1) becomes 1 under the paper's U-Ones
    policy, 0 under U-Zeros.
    """
    if uncertain not in UNCERTAIN_POLICIES:
        raise ChexbalError(f"--uncertain must be one of {', '.join(UNCERTAIN_POLICIES)}, not {uncertain!r}", 2)
    values = raw.loc[:, list(PATHOLOGIES)].astype(float).to_numpy()
    if not np.isin(values[~np.isnan(values)], (-1.0, 0.0, 1.0)).all():
        raise ChexbalError("label columns hold values other than 1, 0, -1 or blank")
    uncertain_value = 1.0 if uncertain == "ones" else 0.0
    values = np.where(values == -1.0, uncertain_value, np.nan_to_num(values, nan=0.0))
    return pd.DataFrame(values.astype(np.uint8), columns=list(PATHOLOGIES), index=raw.index)


def label_matrix(df: pd.DataFrame) -> np.ndarray:
    """The (n, 14) float32 label matrix of a table, columns in canonical order, looked up by name."""
    check_label_columns(df, "table")
    return df.loc[:, list(PATHOLOGIES)].to_numpy(dtype=np.float32, copy=True)
