"""Whether runs trained again repeat a published page's per-seed test AUCs, target by target.

    .venv/bin/python scripts/reproduces_published.py --page docs/experiment/report.md \
        --regimen 1% runs/phantom-64/frac-0.01/*/*seed*

The page's appendix "test AUC of each seed's run" rounds each AUC to three decimals; each run's
metrics.json holds it in full. A run matches when all three targets lie within half a unit of the
third decimal. Prints each run that does not, then the count. A re-run on a machine of the same kind
should match exactly: the runs are seeded end to end.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chexbal import files
from chexbal.data.labels import TARGETS

SECTION = "## Appendix: test AUC of each seed's run"


def published(page: Path, regimen: str) -> dict[tuple[str, str, int], float]:
    """(arm, target, seed) → the AUC the page printed for that regimen."""
    text = page.read_text().split(SECTION)[1].strip().split("\n\n")[0]  # its first table (the tests follow)
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in text.splitlines()]
    header = next(row for row in rows if row[:3] == ["regimen", "class", "arm"])
    seeds = [int(column.removeprefix("seed ")) for column in header[3:]]
    table = {}
    for row in rows:
        if len(row) == len(header) and row[0] == regimen:
            table |= {(row[2], row[1], seed): float(v) for seed, v in zip(seeds, row[3:]) if v not in ("", "—")}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (…/ARM/lr…-seedN) with metrics.json")
    parser.add_argument("--page", type=Path, required=True, help="a published report.md")
    parser.add_argument("--regimen", required=True, help="the page's regimen column, e.g. 1%%")
    args = parser.parse_args()
    table = published(args.page, args.regimen)
    matched = compared = 0
    for run in sorted(args.runs):
        if not (run / "metrics.json").exists():
            continue  # still training
        arm, seed = run.parent.name, int(run.name.rsplit("seed", 1)[1])
        aucs = files.read_json(run / "metrics.json")["test"]["auc"]
        off = {t: (aucs[t], table.get((arm, t, seed))) for t in TARGETS}
        missing = [t for t, (_, printed) in off.items() if printed is None]
        differs = {t: pair for t, pair in off.items() if pair[1] is not None and abs(pair[0] - pair[1]) > 5e-4 + 1e-9}
        compared += 1
        if missing or differs:
            print(f"{arm} seed {seed}: not on the page {missing}" if missing else f"{arm} seed {seed}: differs {differs}")
        else:
            matched += 1
    print(f"{matched} of {compared} finished runs repeat the page's three target AUCs ({args.page}, {args.regimen})")


if __name__ == "__main__":
    main()
