"""Seconds per training step of the GAN and of the diffusion model on this CPU, their weights in
channels_last against contiguous, side by side in one run.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_generator_step.py [--size 64] [--steps 6] [--rounds 2]

Each side builds the nets as `train-gan` and `train-diffusion` do (`build_nets`, default recipes,
untrained: speed does not depend on the weights), then converts them to the layout it measures, and
runs `train_step` on the same random images and labels. Rounds alternate; the best of each is kept.
Last line: `ratio <contiguous seconds / channels_last seconds>` for the GAN (larger: channels_last faster).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from chexbal.data.labels import PATHOLOGIES
from chexbal.generators.diffusion import train as diffusion
from chexbal.generators.gan import train as gan
from chexbal.generators.training import BalancedRows
from chexbal.seeds import stream

CPU = torch.device("cpu")


def seconds_per_step(kind: str, layout, data: tuple, steps: int) -> float:
    images, labels, pool = data
    torch.manual_seed(0)
    if kind == "gan":
        cfg = gan.GanConfig()
        nets = gan.build_nets(cfg, images.shape[-1], CPU)
        rows, rng = BalancedRows(pool, cfg.target_share), torch.Generator().manual_seed(0)

        def step(i):
            gan.train_step(nets, images, labels, rows, cfg, rng, denied=[])
    else:
        cfg = diffusion.DiffusionConfig()
        nets = diffusion.build_nets(cfg, images.shape[-1], CPU)
        rows, schedule = BalancedRows(pool, cfg.target_share), diffusion.noise_schedule()

        def step(i):
            rng = stream(0, i)
            diffusion.train_step(nets, (images, labels), rows(cfg.batch_size, rng), schedule, rng, dropout=0.1, use_amp=False)

    for net in nets.values():
        if isinstance(net, torch.nn.Module):
            net.to(memory_format=layout)
    step(0)  # warm-up
    start = time.perf_counter()
    for i in range(steps):
        step(i + 1)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    pool = pd.DataFrame(np.eye(len(PATHOLOGIES), dtype=np.uint8)[np.arange(256) % len(PATHOLOGIES)], columns=list(PATHOLOGIES))
    images = torch.randint(0, 256, (len(pool), args.size, args.size), dtype=torch.uint8)
    data = (images, torch.tensor(pool.to_numpy(np.float32)), pool)
    layouts = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    seconds = {(kind, name): [] for kind in ("gan", "diffusion") for name in layouts}
    for _ in range(args.rounds):
        for kind, name in seconds:
            seconds[kind, name].append(seconds_per_step(kind, layouts[name], data, args.steps))
    best = {key: min(values) for key, values in seconds.items()}
    print(f"CPU, {torch.get_num_threads()} threads; default recipes, {args.size} px, best of {args.rounds} rounds")
    for (kind, name), value in best.items():
        print(f"{kind:10s} {name:14s} {value:7.3f} s/step   {best[kind, 'contiguous'] / value:.2f}x contiguous")
    print(f"ratio {best['gan', 'contiguous'] / best['gan', 'channels_last']:.3f}")


if __name__ == "__main__":
    main()
