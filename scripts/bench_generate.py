"""Generated images per second written to Zarr against bare generator forward passes, in one run.

    .venv/bin/python scripts/bench_generate.py [--size 64] [--blocks 8] [--device auto]

Both sides use the same generator (64 px, the shipped architecture) and the same label vectors:
`generate`'s own path (seeded latents, forward, uint8 conversion, Zarr chunk writes in a second
thread) against the forward passes alone. Alternates twice, keeps the best of each. Last line: `ratio <value>`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from chexbal.data import store
from chexbal.devices import pick_device
from chexbal.generators.gan.nets import Generator
from chexbal.generators.generate import fill


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    torch.manual_seed(0)
    generator = Generator(args.size).to(device).eval()
    n = args.blocks * store.BLOCK
    vectors = (torch.rand(n, 14) < 0.2).float()
    z = torch.randn(n, generator.z_dim)
    written, bare = [], []
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for trial in range(2):
            images = store.open_or_create(Path(tmp) / f"s{trial}.zarr", n, args.size, {"kind": "bench"})
            start = time.perf_counter()
            fill(images, list(range(args.blocks)), generator, vectors, 0, device)
            written.append(n / (time.perf_counter() - start))
            start = time.perf_counter()
            for i in range(0, n, store.BLOCK):
                generator(z[i : i + store.BLOCK].to(device), vectors[i : i + store.BLOCK].to(device)).cpu()
            bare.append(n / (time.perf_counter() - start))
    print(f"{n} images at {args.size} px on {device}")
    print(f"generate to Zarr   {max(written):8.1f} img/s")
    print(f"bare forward       {max(bare):8.1f} img/s")
    print(f"ratio {max(written) / max(bare):.3f}")


if __name__ == "__main__":
    main()
