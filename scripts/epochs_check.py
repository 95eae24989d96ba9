"""Does training longer change which arm wins? The ranking of two arms at two epoch counts, one seed.

Issue 26 lets the 10% regimen train for fewer epochs than 1% if the ranking of `none` and
`oversample` holds when the runs train longer. Train both arms for the shorter count, then sweep
them again with more epochs: each run is extended, and keeps the shorter run's scores beside it as
`metrics-epochs<N>.json` (the first N epochs of the longer run are that run). This reads both
from each arm's run folder and prints each target's test AUC, the difference between the arms at
each epoch count, and whether its sign is the same.

.venv/bin/python scripts/epochs_check.py --regimen runs/check/phantom-64/frac-0.1 \
    --arms none oversample --run lr0.001-bs32-adam-seed0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TARGETS = ("Lung Lesion", "Pleural Other", "Fracture")


def test_aucs(metrics_file: Path) -> tuple[int, int, dict[str, float]]:
    """A run's recorded epochs, the best epoch (by validation) that scored it, and its test AUC per
    target class (by name)."""
    metrics = json.loads(metrics_file.read_text())
    return metrics["epochs"], metrics["best_epoch"], {name: metrics["test"]["auc"][name] for name in TARGETS}


def shorter_and_longer(run: Path) -> tuple[tuple[int, int, dict], tuple[int, int, dict]]:
    """The run's scores before it was extended (its one metrics-epochs<N>.json) and after."""
    kept = sorted(run.glob("metrics-epochs*.json"))
    if not (run / "metrics.json").exists() or len(kept) != 1:
        raise SystemExit(f"error: {run} is not a finished run extended once (metrics.json and one metrics-epochs<N>.json)")
    return test_aucs(kept[0]), test_aucs(run / "metrics.json")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regimen", type=Path, required=True, help="Regimen folder holding one folder per arm")
    parser.add_argument("--arms", nargs=2, default=["none", "oversample"])
    parser.add_argument("--run", default="lr0.001-bs32-adam-seed0", help="Run folder name inside each arm")
    args = parser.parse_args()
    first, second = args.arms
    (short, a_best_short, a_short), (long, a_best_long, a_long) = shorter_and_longer(args.regimen / first / args.run)
    (short_b, b_best_short, b_short), (long_b, b_best_long, b_long) = shorter_and_longer(args.regimen / second / args.run)
    if (short, long) != (short_b, long_b):
        print(f"error: {first} trained {short} then {long} epochs, {second} {short_b} then {long_b}", file=sys.stderr)
        return 1
    print(f"{second} − {first}, test AUC, {args.run}: at {short} epochs | at {long} epochs | same sign")
    print(f"{'best epoch':<14} {a_best_short}, {b_best_short} | {a_best_long}, {b_best_long} |")
    for name in TARGETS:
        d_short, d_long = b_short[name] - a_short[name], b_long[name] - a_long[name]
        cells = [f"{a[name]:.3f} → {b[name]:.3f} ({b[name] - a[name]:+.3f})" for a, b in ((a_short, b_short), (a_long, b_long))]
        print(f"{name:<14} {cells[0]} | {cells[1]} | {'yes' if (d_short > 0) == (d_long > 0) else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
