"""Images per second that gan-eval's judge embeds and scores, as chexbal sets it up against the setup
it had before 2026-12-07, side by side in one run.

    .venv/bin/python scripts/bench_scoring.py [--size 64] [--images 512] [--rounds 2]

Both sides call `classifier.embed_and_score` (the pooled features and probabilities of uint8 images,
on the CPU) with the same untrained DenseNet-121 and the same images; speed does not depend on the
weights. chexbal's setup: the weights in channels_last like the inputs (`for_scoring`, as `load_run`
returns them) and `SCORING_BATCH` images a batch. Before: contiguous weights and batch 256. Also
prints chexbal's layout at other batch sizes. Rounds alternate; the best round of each is kept.
Last line: `ratio <chexbal's / before>`.
"""

from __future__ import annotations

import argparse
import time

import torch

from chexbal.classify import classifier


def rate(model, images, batch_size: int) -> float:
    start = time.perf_counter()
    classifier.embed_and_score(model, images, batch_size)
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    images = torch.randint(0, 256, (args.images, args.size, args.size), dtype=torch.uint8).numpy()
    before = classifier.Classifier().eval()
    now = classifier.Classifier()
    now.load_state_dict(before.state_dict())
    classifier.for_scoring(now)
    variants = {"before: contiguous weights, batch 256": (before, 256)}
    variants |= {f"chexbal: channels_last, batch {b}": (now, b) for b in sorted({32, classifier.SCORING_BATCH, 128, 256})}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (model, batch) in variants.items():
            rate(model, images[:batch], batch)  # warm-up
            rates[name].append(rate(model, images, batch))
    best = {name: max(values) for name, values in rates.items()}
    baseline = best["before: contiguous weights, batch 256"]
    print(f"CPU, {torch.get_num_threads()} threads; DenseNet-121 embed and score, {args.size} px, {args.images} images")
    for name, value in best.items():
        print(f"{name:42s} {value:8.1f} img/s   {value / baseline:.2f}x before")
    print(f"ratio {best[f'chexbal: channels_last, batch {classifier.SCORING_BATCH}'] / baseline:.3f}")


if __name__ == "__main__":
    main()
