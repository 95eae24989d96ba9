"""The Fréchet distance's cost: symmetric eigendecompositions against SciPy's general square root.

    .venv/bin/python scripts/bench_frechet.py [--features 1024] [--images 1000] [--rounds 2]

gan-eval computes five Fréchet distances per generator (overall, the three targets, and the
comparable one) on the judge's 1,024 penultimate features. Until 2026-12-07 each took
`scipy.linalg.sqrtm(A @ B)`; now `frechet_distance` sums the square roots of the eigenvalues of
A^1/2 B A^1/2. Both sides get the same two feature sets (correlated, as a network's features are);
the script checks they agree, alternates `--rounds` times and keeps the best of each. Last line:
`ratio <value>` (the SciPy path's seconds over the eigenvalue path's).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import linalg

from chexbal.generators.evaluation import frechet_distance


def frechet_by_sqrtm(a: np.ndarray, b: np.ndarray) -> float:
    """The previous implementation (without its singular-case fallback), kept here as the reference."""
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root.real))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=1024)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(args.features, args.features)) / np.sqrt(args.features)
    a = rng.normal(size=(args.images, args.features)) @ mixing
    b = (rng.normal(size=(args.images, args.features)) + 0.3) @ mixing
    times = {"sqrtm": [], "eigh": []}
    for _ in range(args.rounds):
        for name, function in (("sqrtm", frechet_by_sqrtm), ("eigh", frechet_distance)):
            start = time.perf_counter()
            value = function(a, b)
            times[name].append(time.perf_counter() - start)
            print(f"{name:6s} {times[name][-1]:7.3f} s  distance {value:.6f}")
    reference, new = frechet_by_sqrtm(a, b), frechet_distance(a, b)
    print(f"relative difference {abs(new - reference) / abs(reference):.2e}")
    print(f"ratio {min(times['sqrtm']) / min(times['eigh']):.2f}")


if __name__ == "__main__":
    main()
