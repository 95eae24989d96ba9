"""Draw the phantom's sample grid for the README: one row per finding, positive then uncertain.

    .venv/bin/python scripts/phantom_samples.py [--size 64] [--out docs/phantom-findings.png]

Each row shows the same four patients with no finding, with the finding positive (1) and with it
uncertain (-1), so the sign is the only difference within a column pair. The label noise is off here
(every positive and uncertain label shows its sign), so the figure shows what the signs look like.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from chexbal.data.labels import PATHOLOGIES
from chexbal.data.sources import phantom
from chexbal.data.sources.phantom import render

LABEL_WIDTH = 190


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("docs/phantom-findings.png"))
    args = parser.parse_args()
    s, rows = args.size, []
    phantom.SHOWN.update({name: (1.0, 1.0, 0.0) for name in phantom.SHOWN})
    for name in PATHOLOGIES[1:]:
        tiles = []
        for k in range(4):
            path = f"CheXpert-v1.0-small/train/patient{k:05d}/study1/view1_frontal.jpg"
            for value in (np.nan, 1, -1):
                raw = np.full(len(PATHOLOGIES), np.nan)
                raw[PATHOLOGIES.index(name)] = value
                tiles.append(render(path, raw, s, seed=0))
        rows.append(np.concatenate(tiles, axis=1))
    grid = Image.fromarray(np.concatenate(rows, axis=0)).resize((12 * 2 * s, len(rows) * 2 * s), Image.NEAREST)
    canvas = Image.new("L", (grid.width + LABEL_WIDTH, grid.height + 24), 255)
    canvas.paste(grid, (LABEL_WIDTH, 24))
    draw = ImageDraw.Draw(canvas)
    for i, name in enumerate(PATHOLOGIES[1:]):
        draw.text((6, 24 + i * 2 * s + s), name, fill=0)
    for k in range(4):
        for j, head in enumerate(("none", "positive", "uncertain")):
            draw.text((LABEL_WIDTH + (3 * k + j) * 2 * s + 6, 6), head, fill=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
