"""Calibrate the phantom's learning curve: render a variant of the renderer, train the `none` arm, log.

    .venv/bin/python scripts/calibrate_phantom.py --name v2a --fracs 0.01 --seeds 0 1 2 \
        [--shown "Lung Lesion=0.78,0.4,0.002"] [--contrast "Pleural Other=0.85"] \
        [--faint "Lung Lesion=0.22,0.3"] [--no-gap-follows-strength] [--parallel 2] [--amp off]

A variant overrides `phantom.SHOWN` (the label-noise model), `phantom.CONTRAST` (each target's
conspicuity), `phantom.FAINT` (the share of faint signs) and `phantom.GAP_FOLLOWS_STRENGTH` in this process, prepares
data/calib-<name>/ with them (rendered here, so the override holds), and trains `none` with the experiment's protocol (64 px, Adam, lr 1e-3, batch 32, split seed
0; each regimen's epochs as experiments/phantom.toml sets them), `--parallel` single-thread processes at a time. Each finished run
appends a row to docs/phantom-calibration.csv: the settings, the test AUC per class against the
labels, against the drawn signs, the oracle ceiling, and the precision and machine it trained on
(bf16 autocast and fp32 runs of the same settings differ at 10%: docs/phantom.md). Resumable: a logged run is skipped, an
interrupted one resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from chexbal.analysis.oracle import oracle_ceiling, read_signs, sign_aucs
from chexbal.data.dataset import read_subset
from chexbal.data.labels import PATHOLOGIES, TARGETS
from chexbal.data.prepare import prepare
from chexbal.data.sources import phantom
from chexbal.experiment.plan import read_plan

LOG = Path("docs/phantom-calibration.csv")
PLAN = Path("experiments/phantom.toml")
PROTOCOL = ["--aug", "none", "--lr", "0.001", "--batch-size", "32", "--optimizer", "adam", "--split-seed", "0"]


def main() -> None:
    args = parse_args()
    apply_overrides(args.shown, args.contrast, args.faint)
    if args.gap_follows_strength is not None:
        phantom.GAP_FOLLOWS_STRENGTH = args.gap_follows_strength
    dataset = f"calib-{args.name}"
    settings = {
        "shown": phantom.SHOWN,
        "contrast": phantom.CONTRAST,
        "faint": phantom.FAINT,
        "gap_follows_strength": phantom.GAP_FOLLOWS_STRENGTH,
        "renderer_version": phantom.RENDERER_VERSION,
    }
    folder = Path("data") / dataset
    for frac in args.fracs:
        prepare("phantom", frac=frac, dataset=dataset, workers=1)
    (folder / "calibration.json").write_text(json.dumps(settings, indent=2))
    jobs = [(frac, seed) for frac in args.fracs for seed in args.seeds if not logged(args.name, frac, seed)]
    running: list[tuple[subprocess.Popen, float, int, float]] = []
    while jobs or running:
        while jobs and len(running) < args.parallel:
            frac, seed = jobs.pop(0)
            running.append((launch(dataset, frac, seed, args.epochs, args.amp), frac, seed, time.time()))
        time.sleep(5)
        for job in [j for j in running if j[0].poll() is not None]:
            running.remove(job)
            process, frac, seed, started = job
            if process.returncode != 0:
                print(
                    f"{args.name} {frac:g} seed {seed}: failed ({process.returncode}), see {run_dir(dataset, frac, seed)}/log.txt"
                )
                continue
            row = record(args.name, settings, folder, frac, seed, time.time() - started)
            print(" ".join(f"{k}={v}" for k, v in row.items() if k != "settings"), flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--fracs", type=float, nargs="+", default=[0.01])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="default: the experiment's (experiments/phantom.toml)")
    parser.add_argument("--shown", action="append", default=[], help="FINDING=P_POSITIVE,P_UNCERTAIN,P_NEGATIVE")
    parser.add_argument("--contrast", action="append", default=[], help="TARGET=MULTIPLIER")
    parser.add_argument("--faint", action="append", default=[], help="TARGET=SHARE,FACTOR: faint signs")
    parser.add_argument(
        "--gap-follows-strength",
        action=argparse.BooleanOptionalAction,
        help="a fracture's rib gap as deep as its sign (--no-: version 3's full gap)",
    )
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--amp", choices=("auto", "on", "off"), default="auto", help="train's --amp (bf16 autocast)")
    return parser.parse_args()


def apply_overrides(shown: list[str], contrast: list[str], faint: list[str]) -> None:
    """Set a variant's tables in this process (`FINDING=V[,V…]` each); a finding without a sign, or
    a value that is not a number list of the table's length, stops the script with one line."""
    for table, items, flag in (
        (phantom.SHOWN, shown, "--shown"),
        (phantom.CONTRAST, contrast, "--contrast"),
        (phantom.FAINT, faint, "--faint"),
    ):
        for item in items:
            name, _, values = item.partition("=")
            if name not in table:
                raise SystemExit(f"{flag}: {name!r} is not one of {', '.join(table)}")
            try:
                parsed = tuple(float(v) for v in values.split(","))
            except ValueError:
                parsed = ()
            expected = len(table[name]) if isinstance(table[name], tuple) else 1
            if len(parsed) != expected:
                raise SystemExit(f"{flag} {item!r}: give {name}={','.join(['V'] * expected)} (numbers)")
            table[name] = parsed if isinstance(table[name], tuple) else parsed[0]


def plan_epochs(frac: float) -> int:
    """The calibration targets the experiment's protocol, so it trains each data size as long as the
    plan does (read when a run starts, not on import: phantom_cooccurrence.py imports this module)."""
    return {regimen.frac: regimen.epochs for regimen in read_plan(PLAN).regimens}[frac]


def run_dir(dataset: str, frac: float, seed: int) -> Path:
    return Path("runs") / "calibration" / dataset / f"frac-{frac:g}" / f"seed{seed}"


def launch(dataset: str, frac: float, seed: int, epochs: int | None, amp: str) -> subprocess.Popen:
    where = run_dir(dataset, frac, seed)
    where.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "chexbal.cli", "train", "--dataset", dataset, "--frac", f"{frac:g}", *PROTOCOL]
    command += ["--seed", str(seed), "--epochs", str(epochs or plan_epochs(frac)), "--amp", amp, "--run-dir", str(where)]
    if (where / "last.pt").exists():
        command.append("--resume")
    log = open(where / "log.txt", "a")  # noqa: SIM115 (the child writes it until it ends)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})


def logged(name: str, frac: float, seed: int) -> bool:
    if not LOG.exists():
        return False
    table = pd.read_csv(LOG)
    return bool(((table["name"] == name) & (table["frac"] == frac) & (table["seed"] == seed)).any())


def record(name: str, settings: dict, folder: Path, frac: float, seed: int, seconds: float) -> dict:
    where = run_dir(folder.name, frac, seed)
    metrics = json.loads((where / "metrics.json").read_text())
    config = json.loads((where / "config.json").read_text())
    predictions = pd.read_csv(where / "test-predictions.csv")
    signs = read_signs(folder)
    test = read_subset(folder, frac).query("split == 'test'")
    ceiling, seen = oracle_ceiling(test, signs), sign_aucs(predictions, signs)
    row = {"name": name, "frac": frac, "seed": seed, "epochs": metrics["epochs"], "best_epoch": metrics["best_epoch"]}
    for target in TARGETS:
        short = "".join(word[0] for word in target.split())
        row |= {f"{short} auc": round(metrics["test"]["auc"][target], 4), f"{short} sign auc": round(seen[target], 4)}
        row[f"{short} ceiling"] = round(ceiling[target], 4)
    row["mean14"] = round(metrics["test"]["mean_auc"], 4)
    row["others"] = json.dumps({n: round(metrics["test"]["auc"][n], 3) for n in PATHOLOGIES if n not in TARGETS})
    row["minutes"] = round(seconds / 60, 1)
    row["precision"] = "bf16" if config["amp_enabled"] else "fp32"
    row["machine"] = config["provenance"]["machine"]
    row["settings"] = json.dumps(
        {
            "shown": {t: settings["shown"][t] for t in TARGETS},
            "contrast": settings["contrast"],
            "faint": settings["faint"],
            "gap_follows_strength": settings["gap_follows_strength"],
        }
    )
    table = pd.concat([pd.read_csv(LOG), pd.DataFrame([row])]) if LOG.exists() else pd.DataFrame([row])
    LOG.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(LOG, index=False)
    return row


if __name__ == "__main__":
    main()
