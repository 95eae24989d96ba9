"""What a lent GPU must know of the trainings finished here, so that its plan skips them: a tar of
each finished training's selection file and its selected run's metrics.json (a few KB each), read
from a worktree's runs/. The device starts bare; carried there and unpacked by
scripts/gpu_numbers.sh, these make the runner count those tasks done. Checkpoints stay here.

    .venv/bin/python scripts/gpu_state.py WORKTREE gpu-state/done.tar.gz   # then carry gpu-state

Only finished runs travel: a selection whose run has no metrics.json yet is left out.
"""

from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path


def finished_trainings(worktree: Path) -> list[Path]:
    """Each selection file under runs/ whose selected run has finished, and that run's metrics.json,
    relative to the worktree."""
    found = []
    for selection in sorted(worktree.glob("runs/*/frac-*/*/selected-seed*.json")):
        metrics = selection.parent / Path(json.loads(selection.read_text())["selected"]["run"]).name / "metrics.json"
        if metrics.is_file():
            found += [selection.relative_to(worktree), metrics.relative_to(worktree)]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("worktree", type=Path, help="the checkout whose runs/ the experiment fills")
    parser.add_argument("out", type=Path, nargs="?", default=Path("gpu-state/done.tar.gz"))
    args = parser.parse_args()
    if not (args.worktree / "runs").is_dir():
        raise SystemExit(f"no runs/ in {args.worktree}")
    paths = finished_trainings(args.worktree)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    part = args.out.with_name(args.out.name + ".part")
    with tarfile.open(part, "w:gz") as tar:
        for path in paths:
            tar.add(args.worktree / path, arcname=str(path))
    part.replace(args.out)
    print(f"{len(paths) // 2} finished trainings in {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
