"""What switching one finding on changes in a generator's images: pairs drawn from the same noise.

    .venv/bin/python scripts/counterfactual_pairs.py --checkpoint chexbal/weights/phantom-64-diffusion.pt \
        [--finding Fracture] [--n 8] [--frac 0.01] [--out runs/pairs-fracture.png]

`--checkpoint renderer` draws the phantom's own pairs instead (rows whose sign signs.csv says is
drawn, the same row rendered with that sign hidden): what a generator that draws the sign would show.

Takes the first N training rows of the regimen that are positive for the finding (their whole label
vectors, as the generation plan does), draws each with the finding on and off from the same starting
noise, and writes a grid: on, off, and |on - off| brightened 4 times. It prints, per pair, the mean
absolute change (images in [-1, 1]) and the share of that change held by the 5% of pixels that
changed most. A generator that draws a sign changes a small area strongly (a high share); one that
does not changes little, or the whole image a little (a share near 5%). `chexbal gan-eval` measures
the same kind of pairs through a judge; this shows them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from chexbal.analysis.oracle import drawn_matrix, read_signs
from chexbal.data.dataset import locate, settings, training_rows
from chexbal.data.labels import PATHOLOGIES
from chexbal.data.sources import phantom
from chexbal.errors import ChexbalError
from chexbal.generators.generate import load_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a generator checkpoint, or `renderer`")
    parser.add_argument("--finding", default="Fracture", choices=PATHOLOGIES[1:])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--frac", type=float, default=0.01)
    parser.add_argument("--data", type=Path, default=Path("data/phantom-64"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/pairs.png"))
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")
    folder = locate(args.data.parent, args.data.name)
    rows = training_rows(folder, args.frac, 0)
    positives = rows[rows[args.finding] == 1]
    if str(args.checkpoint) == "renderer":  # only rows whose sign the label noise let through
        positives = positives[drawn_matrix(read_signs(folder), positives["index"])[:, PATHOLOGIES.index(args.finding)] == 1]
    positives = positives.head(args.n)
    if positives.empty:
        raise SystemExit(f"regimen {args.frac:g} of {folder} has no training row positive for {args.finding}")
    if str(args.checkpoint) == "renderer":
        drawn_on, drawn_off = renderer_pairs(folder, positives, args.finding)
    else:
        drawn_on, drawn_off = generator_pairs(args.checkpoint, folder, positives, args.finding, args.seed)
    change = (drawn_on - drawn_off).abs()
    report(change)
    write_grid(args.out, drawn_on, drawn_off, change)


def generator_pairs(checkpoint: Path, folder: Path, positives, finding: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator, _ = load_generator(checkpoint, settings(folder), torch.device("cpu"))
    on = torch.tensor(positives[list(PATHOLOGIES)].to_numpy(np.float32))
    off = on.clone()
    off[:, PATHOLOGIES.index(finding)] = 0
    with torch.no_grad():  # the same starting noise for both halves of every pair
        drawn_on = generator.draw(on, torch.Generator().manual_seed(seed))[:, 0]
        drawn_off = generator.draw(off, torch.Generator().manual_seed(seed))[:, 0]
    return drawn_on, drawn_off


def renderer_pairs(folder: Path, positives, finding: str) -> tuple[torch.Tensor, torch.Tensor]:
    raw = pd.read_csv(folder / "raw-labels.csv").set_index("index").loc[positives["index"], list(PATHOLOGIES)]
    size, seed = settings(folder)["size"], settings(folder)["seed"]
    pairs = [
        [phantom.render(path, labels, size, seed, hidden) for hidden in ((), (finding,))]
        for path, labels in zip(positives["Path"], raw.to_numpy(float))
    ]
    on, off = (torch.tensor(np.stack(half)).float() / 127.5 - 1 for half in zip(*pairs))
    return on, off


def report(change: torch.Tensor) -> None:
    flat = change.flatten(1)
    top = flat.topk(max(1, flat.shape[1] // 20), dim=1).values.sum(1) / flat.sum(1).clamp_min(1e-12)
    for k, (mean, share) in enumerate(zip(flat.mean(1), top)):
        print(f"pair {k}: mean |on - off| {mean:.4f}, top 5% of pixels hold {share:.0%} of it")
    print(f"all pairs: mean |on - off| {flat.mean():.4f}, top 5% share {top.mean():.0%} (median {top.median():.0%})")


def write_grid(out: Path, drawn_on: torch.Tensor, drawn_off: torch.Tensor, change: torch.Tensor) -> None:
    bands = [torch.cat(list(drawn_on), 1), torch.cat(list(drawn_off), 1), torch.cat(list((change * 4).clamp(0, 2) - 1), 1)]
    grid = ((torch.cat(bands, 0) + 1) * 127.5).clamp(0, 255).byte().numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(out)
    print(f"written to {out}")


if __name__ == "__main__":
    try:
        main()
    except ChexbalError as error:  # a missing dataset or a checkpoint that does not fit: one line
        raise SystemExit(str(error)) from None
