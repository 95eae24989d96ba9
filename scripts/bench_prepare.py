"""Images per second of `chexbal prepare` (CheXpert source, 224 px) against torchxrayvision's
CheX_Dataset with XRayCenterCrop + XRayResizer(224), on the same generated JPEG folder, in one run.

    .venv/bin/python scripts/bench_prepare.py [--images 400]

The last line is `ratio <prepare img/s over torchxrayvision img/s>` (faster is larger).
prepare runs with all cores (its default) and with one, so the per-core ratio shows too;
torchxrayvision's dataset is read in one process, as a DataLoader with no workers does.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torchxrayvision as xrv
from PIL import Image, ImageFilter

from chexbal.data.prepare import prepare
from chexbal.testing import make_chexpert  # the tests' CheXpert-format folder builder


def add_texture(root: Path, seed: int = 0) -> None:
    """Rewrite every JPEG with smooth noise, so files decode like radiographs (about 20 KB each),
    not like the tests' flat images."""
    rng = np.random.default_rng(seed)
    for file in sorted(root.rglob("*.jpg")):
        width, height = Image.open(file).size
        noise = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8))
        noise.filter(ImageFilter.GaussianBlur(2)).save(file, quality=90)


def time_prepare(root: Path, out: Path, workers: int) -> float:
    start = time.perf_counter()
    prepare("chexpert", root, 1.0, 224, data_dir=out, dataset=f"bench-{workers}", workers=workers, quiet=True)
    return time.perf_counter() - start


def time_xrv(root: Path) -> tuple[float, int]:
    transform = xrv.datasets.XRayCenterCrop(), xrv.datasets.XRayResizer(224, engine="skimage")
    dataset = xrv.datasets.CheX_Dataset(
        imgpath=str(root),
        csvpath=str(root / "train.csv"),
        views=["AP", "PA"],
        unique_patients=False,
        transform=lambda image: transform[1](transform[0](image)),
    )
    start = time.perf_counter()
    for i in range(len(dataset)):
        dataset[i]
    return time.perf_counter() - start, len(dataset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="about how many frontal JPEGs to generate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_chexpert(Path(tmp) / "CheXpert-v1.0-small", n_patients=round(args.images / 1.33))
        add_texture(root)
        xrv_seconds, n = time_xrv(root)
        all_cores = time_prepare(root, Path(tmp) / "data", os.cpu_count() or 1)
        one_core = time_prepare(root, Path(tmp) / "data", 1)
    rates = {
        "torchxrayvision CheX_Dataset (1 process)": n / xrv_seconds,
        f"chexbal prepare ({os.cpu_count()} processes)": n / all_cores,
        "chexbal prepare (1 process)": n / one_core,
    }
    print(f"{n} frontal JPEGs (320x390, 390x320, 300x300) to 224x224 uint8")
    for name, rate in rates.items():
        print(f"{name:45s} {rate:8.1f} img/s")
    print(f"per-core ratio {rates['chexbal prepare (1 process)'] / rates['torchxrayvision CheX_Dataset (1 process)']:.2f}")
    print(f"ratio {n / all_cores / (n / xrv_seconds):.2f}")


if __name__ == "__main__":
    main()
