"""What switching one finding on changes in a generator's images: pairs drawn from the same noise.

    .venv/bin/python scripts/counterfactual_pairs.py --checkpoint chexbal/weights/phantom-64-diffusion.pt \
        [--finding Fracture] [--n 8] [--frac 0.01] [--out runs/pairs-fracture.png]

`--checkpoint renderer` draws the phantom's own pairs instead (rows whose sign signs.csv says is
drawn, the same row rendered with that sign hidden): what a generator that draws the sign would show.

Takes the first N training rows of the regimen that are positive for the finding (their whole label
vectors, as the generation plan does), draws each with the finding on and off from the same starting
noise, and writes a grid: on, off, and |on - off| brightened 4 times. It prints what `chexbal
gan-eval` reports beside its judges' shifts (`pair_change`): the mean |on - off| (pixels in [-1, 1])
and the median share of it held by the 5% of pixels that changed most. A generator that draws a sign
changes a small area (a high share); one that does not changes the whole image a little (a share
near 5%), or nothing.
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
from chexbal.generators.evaluation import pair_change
from chexbal.generators.gan.nets import to_uint8
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
    renderer = str(args.checkpoint) == "renderer"
    if renderer:  # only rows whose sign the label noise let through
        positives = positives[shows_sign(folder, positives, args.finding)]
    positives = positives.head(args.n)
    if positives.empty:
        raise SystemExit(f"regimen {args.frac:g} of {folder} has no training row positive for {args.finding}")
    if renderer:
        drawn_on, drawn_off = renderer_pairs(folder, positives, args.finding)
    else:
        drawn_on, drawn_off = generator_pairs(args.checkpoint, folder, positives, args.finding, args.seed)
    change = pair_change(drawn_on, drawn_off)
    print(f"{args.finding}, {len(positives)} pairs: mean |on - off| {change['mean_change']:.4f}, "
          f"top 5% of pixels hold {change['top_share']:.0%} of it (median over pairs)")  # fmt: skip
    write_grid(args.out, drawn_on, drawn_off)


def generator_pairs(checkpoint: Path, folder: Path, positives, finding: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    generator, _ = load_generator(checkpoint, settings(folder), torch.device("cpu"))
    on = torch.tensor(positives[list(PATHOLOGIES)].to_numpy(np.float32))
    off = on.clone()
    off[:, PATHOLOGIES.index(finding)] = 0
    with torch.no_grad():  # the same starting noise for both halves of every pair
        return tuple(to_uint8(generator.draw(labels, torch.Generator().manual_seed(seed))) for labels in (on, off))


def shows_sign(folder: Path, rows: pd.DataFrame, finding: str) -> np.ndarray:
    signs = read_signs(folder)
    if signs is None:
        raise SystemExit(f"--checkpoint renderer needs a phantom dataset: {folder} has no signs.csv")
    return drawn_matrix(signs, rows["index"])[:, PATHOLOGIES.index(finding)] == 1


def renderer_pairs(folder: Path, positives, finding: str) -> tuple[np.ndarray, np.ndarray]:
    raw = pd.read_csv(folder / "raw-labels.csv").set_index("index").loc[positives["index"], list(PATHOLOGIES)]
    drawn = settings(folder)
    size, seed = drawn["size"], drawn["seed"]
    pairs = [
        [phantom.render(path, labels, size, seed, hidden) for hidden in ((), (finding,))]
        for path, labels in zip(positives["Path"], raw.to_numpy(float))
    ]
    return tuple(np.stack(half) for half in zip(*pairs))


def write_grid(out: Path, drawn_on: np.ndarray, drawn_off: np.ndarray) -> None:
    change = np.minimum(4 * np.abs(drawn_on.astype(int) - drawn_off.astype(int)), 255).astype(np.uint8)
    grid = np.concatenate([np.concatenate(list(half), axis=1) for half in (drawn_on, drawn_off, change)])
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(out)
    print(f"written to {out}")


if __name__ == "__main__":
    try:
        main()
    except ChexbalError as error:  # a missing dataset or a checkpoint that does not fit: one line
        raise SystemExit(str(error)) from None
