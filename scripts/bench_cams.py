"""The report's Grad-CAM cost per model: one prepared copy for every target against a copy per call.

    .venv/bin/python scripts/bench_cams.py [--size 64] [--images 100] [--targets 3]

The pointing game and the CAM figure ask one model for maps of several targets. `GradCam(model,
size)` makes the float32 CPU copy and finds the layer once; before, each call did both. Both sides
use the same untrained DenseNet-121 (speed does not depend on the weights) and the same images, and
give the same maps (checked). Alternates twice, keeps the best of each. Last line: `ratio <value>`
(prepared once over prepared per call, in maps per second).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from chexbal.classify.cam import GradCam
from chexbal.classify.classifier import Classifier
from chexbal.data.labels import TARGETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=100, help="per target (the pointing game uses 100)")
    parser.add_argument("--targets", type=int, default=3, choices=range(1, len(TARGETS) + 1))
    args = parser.parse_args()
    torch.manual_seed(0)
    model = Classifier().to(memory_format=torch.channels_last)
    images = np.random.default_rng(0).integers(0, 256, (args.images, args.size, args.size), dtype=np.uint8)
    targets = TARGETS[: args.targets]
    n = args.images * len(targets)
    once, per_call = [], []
    for _ in range(2):
        start = time.perf_counter()
        cams = GradCam(model, args.size)
        prepared = [cams.maps(images, t) for t in targets]
        once.append(n / (time.perf_counter() - start))
        start = time.perf_counter()
        fresh = [GradCam(model, args.size).maps(images, t) for t in targets]
        per_call.append(n / (time.perf_counter() - start))
        assert all(np.array_equal(a, b) for a, b in zip(prepared, fresh)), "the two sides' maps differ"
    print(f"{args.size} px, {args.images} images x {len(targets)} targets, {torch.get_num_threads()} threads")
    print(f"prepared once:     {max(once):7.1f} maps/s")
    print(f"prepared per call: {max(per_call):7.1f} maps/s")
    print(f"ratio {max(once) / max(per_call):.2f}")


if __name__ == "__main__":
    main()
