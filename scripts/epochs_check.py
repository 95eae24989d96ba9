"""Does training longer change which arm wins? The ranking of two arms at two epoch counts, one seed.

Issue 26 lets the 10% regimen train for fewer epochs than 1% if the ranking of `none` and
`oversample` holds when the runs train longer. This reads four finished runs (each arm at each epoch
count, same seed and split) and prints each target's test AUC, the difference between the arms at
each epoch count, and whether its sign is the same.

.venv/bin/python scripts/epochs_check.py \
    --short runs/phantom-64/frac-0.1 --long runs/check-10-epochs/phantom-64/frac-0.1 \
    --arms none oversample --run lr0.001-bs32-adam-seed0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TARGETS = ("Lung Lesion", "Pleural Other", "Fracture")


def test_aucs(run: Path) -> tuple[int, dict[str, float]]:
    """The run's recorded epochs and its test AUC per target class (by name, from metrics.json)."""
    metrics = json.loads((run / "metrics.json").read_text())
    return metrics["epochs"], {name: metrics["test"]["auc"][name] for name in TARGETS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=Path, required=True, help="Regimen folder of the shorter runs")
    parser.add_argument("--long", type=Path, required=True, help="Regimen folder of the longer runs")
    parser.add_argument("--arms", nargs=2, default=["none", "oversample"])
    parser.add_argument("--run", default="lr0.001-bs32-adam-seed0", help="Run folder name inside each arm")
    args = parser.parse_args()
    first, second = args.arms
    table = {}
    for folder in (args.short, args.long):
        runs = [folder / arm / args.run for arm in args.arms]
        missing = [str(r) for r in runs if not (r / "metrics.json").exists()]
        if missing:
            print(f"error: no finished run at {', '.join(missing)}", file=sys.stderr)
            return 1
        (epochs, a), (_, b) = test_aucs(runs[0]), test_aucs(runs[1])
        table[epochs] = (a, b)
    if len(table) < 2:
        print(f"error: both folders' runs trained for {next(iter(table))} epochs", file=sys.stderr)
        return 1
    (short, (a_short, b_short)), (long, (a_long, b_long)) = sorted(table.items())
    print(f"{second} − {first}, test AUC, {args.run}: at {short} epochs | at {long} epochs | same sign")
    for name in TARGETS:
        d_short, d_long = b_short[name] - a_short[name], b_long[name] - a_long[name]
        cells = [f"{a[name]:.3f} → {b[name]:.3f} ({b[name] - a[name]:+.3f})" for a, b in ((a_short, b_short), (a_long, b_long))]
        print(f"{name:<14} {cells[0]} | {cells[1]} | {'yes' if (d_short > 0) == (d_long > 0) else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
