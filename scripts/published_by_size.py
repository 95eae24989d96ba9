"""Test AUC by data size, drawn from pages published one regimen at a time.

    .venv/bin/python scripts/published_by_size.py docs/experiment:1% docs/experiment-v5-10pct:10% \
        --out docs/experiment-v5-by-size.png

Each PAGE:REGIMEN takes that regimen's rows of PAGE/table2.csv (mean test AUC over seeds and its
95% interval, as the page published them) and the figure is the report's own (figures.by_size), so
it shows the same numbers as the pages. It is no substitute for one page over every regimen: that
page bootstraps the change of each Δ with data size on the same resamples of the test patients,
which needs every run's test predictions; the published tables hold only the summaries.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from chexbal.analysis import figures
from chexbal.data.labels import TARGETS


def regimen_rows(page: Path, regimen: str) -> pd.DataFrame:
    table = pd.read_csv(page / "table2.csv")
    rows = table[table["regimen"] == regimen]
    if rows.empty:
        raise SystemExit(f"{page / 'table2.csv'} has no rows of regimen {regimen}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pages", nargs="+", help="PAGE:REGIMEN, e.g. docs/experiment:1%%")
    parser.add_argument("--out", type=Path, required=True, help="the figure (PNG)")
    args = parser.parse_args()
    parts = []
    for item in args.pages:
        page, _, regimen = item.rpartition(":")
        if not page:
            raise SystemExit(f"{item}: expected PAGE:REGIMEN")
        parts.append(regimen_rows(Path(page), regimen))
    aucs = pd.concat(parts, ignore_index=True)
    if aucs.duplicated(["frac", "class", "arm"]).any():
        raise SystemExit("a regimen is named twice")
    figures.by_size(aucs, TARGETS, args.out)
    for (frac, arm), group in aucs.groupby(["frac", "arm"], sort=True):
        print(f"{frac:.0%} {arm}: {int(group['seeds'].iloc[0])} seeds")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
