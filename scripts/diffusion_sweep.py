"""Sampling steps and guidance of a diffusion model: quality against time, judged away from test patients.

    .venv/bin/python scripts/diffusion_sweep.py --checkpoint runs/diffusion/phantom-64/frac-1/generator.pt \\
        --judge runs/phantom-64/frac-0.01/none/lr0.001-bs32-adam-seed2 [--steps 10 25] [--guidance 1 2 4] [--n 64]

For each setting (a GAN checkpoint gets one row, for comparison): seconds per generated image; the Fréchet distance, in the judge's feature space,
between the images and real training rows of the pool (never a test patient); per target, the
judge's median probability shift between images from the same noise with the target's bit on and off
(counterfactual fidelity, with its 95% interval). Use a judge the report does not use (the
experiment judges with `none` seeds 0 and 1). Appends to docs/diffusion-sweep.csv.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from chexbal.classify import classifier
from chexbal.data.dataset import load_images, locate, settings, training_rows
from chexbal.data.labels import TARGETS
from chexbal.generators.evaluation import (
    counterfactual_images,
    counterfactual_shift,
    evaluation_conditions,
    frechet_distance,
    generate_for,
    load_judge,
)
from chexbal.generators.generate import load_generator

LOG = Path("docs/diffusion-sweep.csv")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    folder = locate(Path("data"), args.dataset)
    generator, config = load_generator(Path(args.checkpoint), settings(folder), torch.device("cpu"))
    judge = load_judge(Path(args.judge))
    rows = training_rows(folder, 1.0, 0)  # the pool model's training rows: no validation or test patient
    real_features, _ = classifier.embed_and_score(judge, load_images(folder, rows.sample(args.n, random_state=0)))
    conditions = evaluation_conditions(rows, args.n, 0)
    gan = config.get("kind", "gan") == "gan"  # a GAN has no sampling settings: one row, for comparison
    for steps, guidance in [(None, None)] if gan else [(s, g) for s in args.steps for g in args.guidance]:
        if not gan:
            generator.sample_steps, generator.guidance = steps, guidance
        row = {"model_steps": config["steps"], "sample_steps": steps, "guidance": guidance}
        row.update(measure(generator, conditions, judge, real_features))
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        record = {"checkpoint": args.checkpoint, **row, "judge": args.judge}
        pd.DataFrame([record]).to_csv(LOG, mode="a", header=not LOG.exists(), index=False)


def measure(generator, conditions: pd.DataFrame, judge, real_features) -> dict:
    """Seconds per image, the Fréchet distance to the real rows, and each target's counterfactual shift."""
    start = time.perf_counter()
    fake = generate_for(generator, conditions, 0)
    seconds = (time.perf_counter() - start) / len(fake)
    fake_features, _ = classifier.embed_and_score(judge, fake)
    shift = counterfactual_shift(judge, counterfactual_images(generator, conditions, 0), 200, 0)
    return {
        "images": len(fake),
        "seconds_per_image": round(seconds, 3),
        "frechet_vs_training_rows": round(frechet_distance(real_features, fake_features), 2),
        **{f"{t} shift": round(shift[t]["median_shift"], 3) for t in TARGETS},
        **{f"{t} shift CI": f"[{shift[t]['ci'][0]:.3f}, {shift[t]['ci'][1]:.3f}]" for t in TARGETS},
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--judge", required=True)
    parser.add_argument("--dataset", default="phantom-64")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25])
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    main()
