"""The paper's Table 2 beside ours: the calibration check the phantom is held to."""

from __future__ import annotations

import pandas as pd

from chexbal.analysis.paper import beside_paper
from chexbal.analysis.wording import paper_line


def aucs(rows):
    return pd.DataFrame(
        [
            {
                "regimen": f"{frac:.0%}",
                "frac": frac,
                "class": name,
                "arm": arm,
                "auc": auc,
                "ci_low": auc - 0.02,
                "ci_high": auc + 0.02,
            }
            for frac, name, arm, auc in rows
        ]
    )


def test_none_is_set_beside_the_papers_no_augmentation_auc_and_judged_against_the_band():
    table = beside_paper(
        aucs(
            [
                (0.01, "Lung Lesion", "none", 0.741),  # paper 0.727: +0.014, within
                (0.01, "Lung Lesion", "gan", 0.751),
                (0.01, "Pleural Other", "none", 0.610),  # paper 0.566: +0.044, off
                (0.1, "Fracture", "none", 0.663),  # paper 0.700: -0.037, off
                (0.05, "Fracture", "none", 0.650),  # no such regimen in the paper: left out
                (0.1, "Fracture", "oversample", 0.700),  # no `none` row of its own
            ]
        )
    )
    assert list(zip(table["regimen"], table["class"])) == [("1%", "Lung Lesion"), ("1%", "Pleural Other"), ("10%", "Fracture")]
    assert list(table["here − paper"]) == ["+0.014", "+0.044", "-0.037"]
    assert list(table["within ±0.03"]) == ["yes", "no", "no"]
    assert list(table["gan − none, paper"]) == ["+0.031", "+0.028", "+0.042"]
    assert list(table["gan − none, here"]) == ["+0.010", "— (not run)", "— (not run)"]
    line = paper_line(table, phantom=True)
    assert "on 1 of 3" in line and "Pleural Other at 1% (+0.044), Fracture at 10% (-0.037)" in line
