"""Peak resident memory per process of a run's data loading under torchrun (2 processes, gloo).

    .venv/bin/python scripts/peak_memory.py [--patients 1500] [--size 224]

Writes a CheXpert-format fixture here, prepares it at --size px, then starts `torchrun
--nproc-per-node=2` three times; each process joins the gloo group, loads the 100% regimen the way
`chexbal train` does and prints its peak resident memory (ru_maxrss) above what it held before:

- `whole`: the former path (read the store's prefix up to the regimen's last row at once, take the
  regimen's rows from it, then copy each split out of them) onto the CPU;
- `streamed`: `load_data` today (each split copied a store block at a time) onto the CPU, where the
  tensors are the training data itself;
- `streamed, device meta`: the same onto PyTorch's meta device, which stores nothing: what the host
  holds when the data lives on a GPU.

The three are measured in one run, side by side, against the regimen's size in bytes.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = ("whole", "streamed", "streamed, device meta")


def main() -> None:
    args = parse_args()
    if args.worker:
        return worker(args)
    from chexbal.data.dataset import read_subset
    from chexbal.data.prepare import prepare
    from chexbal.testing import make_chexpert

    with tempfile.TemporaryDirectory() as tmp:
        root = make_chexpert(Path(tmp) / "CheXpert-v1.0-small", n_patients=args.patients)
        data = Path(tmp) / "data"
        prepare("chexpert", root, 1.0, args.size, data_dir=data, dataset="fixture", workers=1, quiet=True)
        rows = len(read_subset(data / "fixture", 1.0))
        print(f"regimen: {rows} images at {args.size} px = {rows * args.size**2 / 2**20:.0f} MiB of uint8")
        for mode in MODES:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", __file__]
            command += ["--worker", "--mode", mode, "--data", str(data)]
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            lines = [line for line in done.stdout.splitlines() if line.startswith("rank")]
            print(f"{mode:>22}: " + ("; ".join(lines) if done.returncode == 0 else f"FAILED: {done.stderr[-400:]}"))


def worker(args) -> None:
    import numpy as np
    import torch
    import torch.distributed as dist

    from chexbal.classify.train import TrainConfig
    from chexbal.classify.training_set import load_data
    from chexbal.data import store
    from chexbal.data.dataset import open_images, read_subset, split_regimen

    dist.init_process_group("gloo")
    cfg = TrainConfig(frac=1.0, aug="none", data_dir=args.data, dataset="fixture")
    before = peak_mib()
    if args.mode == "whole":  # the former load_data: one array of the regimen, then a copy per split
        folder = Path(args.data) / "fixture"
        subset = read_subset(folder, 1.0)
        train_rows, val_rows = split_regimen(folder, subset, 1.0, 0)
        indices = subset["index"].to_numpy()  # the former load_images: the store's whole prefix, then the rows
        images = store.read(open_images(folder, 0), slice(0, int(indices.max()) + 1), "")[indices]
        position = {index: i for i, index in enumerate(subset["index"])}
        splits = [
            torch.from_numpy(np.ascontiguousarray(images[[position[i] for i in rows["index"]]]))
            for rows in (train_rows, val_rows, subset[subset["split"] == "test"])
        ]
    else:
        splits = load_data(cfg, torch.device("meta" if "meta" in args.mode else "cpu"))
    print(f"rank {dist.get_rank()} +{peak_mib() - before:.0f} MiB", flush=True)
    del splits
    dist.destroy_process_group()


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1500)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    main()
