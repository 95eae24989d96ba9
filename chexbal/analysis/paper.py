"""The paper's published numbers beside ours: Sundaram & Hulkund (2021), Table 2, the test AUC of the
three target classes on CheXpert for no augmentation, standard augmentation and GAN augmentation, by
regimen. On the phantom the `none` column is what the benchmark is calibrated to (docs/phantom.md:
within CALIBRATION_BAND at 1% and 10%); on CheXpert the whole table is the reproduction's target.
These are the paper's values, copied from its Table 2, never measured here."""

from __future__ import annotations

import pandas as pd

CALIBRATION_BAND = 0.03
PAPER_ARMS = ("none", "standard", "gan")  # the paper's No / Standard / GAN Augmentation columns
TABLE2 = {
    0.01: {"Lung Lesion": (0.727, 0.728, 0.758), "Pleural Other": (0.566, 0.550, 0.594), "Fracture": (0.583, 0.601, 0.656)},
    0.1: {"Lung Lesion": (0.790, 0.796, 0.803), "Pleural Other": (0.632, 0.655, 0.670), "Fracture": (0.700, 0.723, 0.742)},
    0.5: {"Lung Lesion": (0.826, 0.822, 0.828), "Pleural Other": (0.710, 0.696, 0.706), "Fracture": (0.789, 0.780, 0.793)},
    1.0: {"Lung Lesion": (0.835, 0.832, 0.834), "Pleural Other": (0.721, 0.712, 0.727), "Fracture": (0.811, 0.793, 0.807)},
}


def paper_auc(frac: float, name: str, arm: str) -> float | None:
    row = TABLE2.get(round(frac, 4), {}).get(name)
    return row[PAPER_ARMS.index(arm)] if row and arm in PAPER_ARMS else None


def beside_paper(aucs: pd.DataFrame) -> pd.DataFrame:
    """Each (regimen, target) the paper reports: its `none` AUC and ours [CI], the difference and
    whether it is within the band; then its GAN gain over `none` beside ours (`gan` − `none`, means
    over seeds). Regimens the paper does not report, or arms not run here, are left out or blank."""
    rows = []
    for (frac, name), group in aucs.groupby(["frac", "class"], sort=False):
        paper_none, by_arm = paper_auc(frac, name, "none"), group.set_index("arm")
        if paper_none is None or "none" not in by_arm.index:
            continue
        ours = by_arm.loc["none"]
        gain = by_arm.loc["gan", "auc"] - ours["auc"] if "gan" in by_arm.index else None
        rows.append(
            {
                "regimen": ours["regimen"],
                "class": name,
                "none, paper": f"{paper_none:.3f}",
                "none, here [95% CI]": f"{ours['auc']:.3f} [{ours['ci_low']:.3f}, {ours['ci_high']:.3f}]",
                "here − paper": f"{ours['auc'] - paper_none:+.3f}",
                f"within ±{CALIBRATION_BAND}": "yes" if abs(ours["auc"] - paper_none) <= CALIBRATION_BAND else "no",
                "gan − none, paper": f"{paper_auc(frac, name, 'gan') - paper_none:+.3f}",
                "gan − none, here": "— (not run)" if gain is None else f"{gain:+.3f}",
            }
        )
    return pd.DataFrame(rows)
