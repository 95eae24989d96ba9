"""The experiment's state between this machine and a lent GPU, which starts bare.

    .venv/bin/python scripts/gpu_state.py pack WORKTREE gpu-state/done.tar.gz   # then carry gpu-state
    .venv/bin/python scripts/gpu_state.py merge runs.tar.gz WORKTREE             # what the GPU returned

`pack`: a tar of each finished training's selection file and its selected run's metrics.json (a few
KB each), read from WORKTREE's runs/. Unpacked there by scripts/gpu_numbers.sh, they make the
runner count those tasks done. Checkpoints stay here; a run still training is left out.

`merge`: the runs a GPU returned, added to WORKTREE without touching anything there. A run folder
that exists here, finished or not, is kept as it is and the GPU's copy is skipped whole (never a
mix of two machines' files), and so is a selection file naming it; any other file is added only
where none exists. Stop the runner of WORKTREE first, so no run starts while files arrive.
"""

from __future__ import annotations

import argparse
import json
import re
import tarfile
from pathlib import Path

RUN = re.compile(r"^(runs/[^/]+/frac-[^/]+/[^/]+/[^/]+)/[^/]+$")  # a file inside a training's run folder
SELECTION = re.compile(r"^runs/[^/]+/frac-[^/]+/[^/]+/selected-seed\d+\.json$")


def finished_trainings(worktree: Path) -> list[Path]:
    """Each selection file under runs/ whose selected run has finished, and that run's metrics.json,
    relative to the worktree."""
    found = []
    for selection in sorted(worktree.glob("runs/*/frac-*/*/selected-seed*.json")):
        metrics = selection.parent / Path(json.loads(selection.read_text())["selected"]["run"]).name / "metrics.json"
        if metrics.is_file():
            found += [selection.relative_to(worktree), metrics.relative_to(worktree)]
    return found


def pack(worktree: Path, out: Path) -> int:
    paths = finished_trainings(worktree)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    with tarfile.open(part, "w:gz") as tar:
        for path in paths:
            tar.add(worktree / path, arcname=str(path))
    part.replace(out)
    return len(paths) // 2


def merge(archive: Path, worktree: Path) -> tuple[int, int]:
    """(run folders added, run folders skipped because they exist here)."""
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        runs = {match.group(1) for m in members if (match := RUN.match(m.name))}
        new_runs = {run for run in runs if not (worktree / run).exists()}
        wanted = [m for m in members if _wanted(m, tar, new_runs, worktree)]
        tar.extractall(worktree, members=wanted, filter="data")
    return len(new_runs), len(runs) - len(new_runs)


def _wanted(member: tarfile.TarInfo, tar: tarfile.TarFile, new_runs: set[str], worktree: Path) -> bool:
    if match := RUN.match(member.name):
        return match.group(1) in new_runs
    if (worktree / member.name).exists():
        return False
    if SELECTION.match(member.name):  # only beside the run it names, arriving with it
        selected = Path(json.loads(tar.extractfile(member).read())["selected"]["run"]).name
        return str(Path(member.name).parent / selected) in new_runs
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    packing = verbs.add_parser("pack", help="the finished trainings' markers, for a GPU")
    packing.add_argument("worktree", type=Path)
    packing.add_argument("out", type=Path, nargs="?", default=Path("gpu-state/done.tar.gz"))
    merging = verbs.add_parser("merge", help="a GPU's returned runs.tar.gz, into the worktree")
    merging.add_argument("archive", type=Path)
    merging.add_argument("worktree", type=Path)
    args = parser.parse_args()
    if args.verb == "pack":
        if not (args.worktree / "runs").is_dir():
            raise SystemExit(f"no runs/ in {args.worktree}: nothing has finished there")
        print(f"{pack(args.worktree, args.out)} finished trainings in {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")
        return
    if not args.archive.is_file() or not args.worktree.is_dir():
        raise SystemExit(f"no archive at {args.archive}" if args.worktree.is_dir() else f"no folder {args.worktree}")
    try:
        added, kept = merge(args.archive, args.worktree)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise SystemExit(f"{args.archive}: not a readable runs archive ({err}); nothing was added") from None
    print(f"{added} run folders added to {args.worktree}; {kept} skipped (they exist there)")


if __name__ == "__main__":
    main()
