"""Images per second that `generate` writes to Zarr against bare network forward passes, in one run.

    .venv/bin/python scripts/bench_generate.py [--generator gan|diffusion] [--size 64] [--blocks 8]
        [--sample-steps 25] [--guidance 2] [--widths 16,32,64,128] [--device auto] [--amp-against-fp32]

Both sides use the same network (the shipped architecture of that kind, or the UNet `--widths` names;
untrained: speed does not depend on the weights) and the same label vectors: `generate`'s own path
(seeded noise, the GAN's forward pass or the diffusion model's DDIM loop with classifier-free
guidance, uint8 conversion, Zarr chunk writes in a second thread) against the bare forward passes
alone (for diffusion: the UNet at the same steps and the same doubled batch that guidance needs).
Alternates twice, keeps the best of each. Last line: `ratio <value>`.

With `--amp-against-fp32` (diffusion): `generate`'s path sampling in bf16 autocast (`generate --amp on`)
against the same path in fp32 (`--amp off`), same noise and labels; `ratio` is bf16 over fp32.
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
    parser.add_argument("--generator", choices=("gan", "diffusion"), default="gan")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--sample-steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--widths", default="16,32,64,128", help="diffusion: the UNet's channels per resolution")
    parser.add_argument("--amp-against-fp32", action="store_true", help="diffusion: bf16 sampling against fp32")
    args = parser.parse_args()
    if args.amp_against_fp32 and args.generator != "diffusion":
        parser.error("--amp-against-fp32 compares a diffusion model's sampling precisions")
    device = pick_device(args.device)
    torch.manual_seed(0)
    generator, bare_block = build(args, device)
    n = args.blocks * store.BLOCK
    vectors = (torch.rand(n, 14) < 0.2).float()
    generated, against = [], []  # the second side: bare forward passes, or bf16 sampling
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for trial in range(2):
            images = store.open_or_create(Path(tmp) / f"s{trial}.zarr", n, args.size, {"kind": "bench"})
            start = time.perf_counter()
            fill(images, list(range(args.blocks)), generator, vectors, 0)
            generated.append(n / (time.perf_counter() - start))
            start = time.perf_counter()
            if args.amp_against_fp32:  # the same path with the UNet in bf16 autocast
                generator.use_amp = True
                fill(images, list(range(args.blocks)), generator, vectors, 0)
                generator.use_amp = False
            else:
                for i in range(0, n, store.BLOCK):
                    bare_block(vectors[i : i + store.BLOCK].to(device)).cpu()
            against.append(n / (time.perf_counter() - start))
    print(f"{n} images at {args.size} px on {device}, {args.generator}" + describe(args))
    if args.amp_against_fp32:
        print(f"generate, fp32     {max(generated):8.1f} img/s")
        print(f"generate, bf16     {max(against):8.1f} img/s")
        print(f"ratio {max(against) / max(generated):.3f}")
        return
    print(f"generate to Zarr   {max(generated):8.1f} img/s")
    print(f"bare forward       {max(against):8.1f} img/s")
    print(f"ratio {max(generated) / max(against):.3f}")


def build(args, device):
    """The generator `fill` runs, and one block's bare forward passes."""
    if args.generator == "gan":
        gan = Generator(args.size).to(device).eval()
        return gan, lambda labels: gan(torch.randn(len(labels), gan.z_dim, device=device), labels)
    from chexbal.generators.diffusion.model import DiffusionGenerator, LabelConditionedUNet

    unet = LabelConditionedUNet(args.size, tuple(int(w) for w in args.widths.split(","))).to(device).eval()
    guided = args.guidance not in (0, 1)

    def unet_passes(labels):
        batch = torch.cat([labels, labels]) if guided else labels
        x = torch.randn(len(batch), 1, args.size, args.size, device=device)
        t = torch.full((len(batch),), 500, device=device)
        for _ in range(args.sample_steps):
            x = unet(x, t, batch)
        return x

    return DiffusionGenerator(unet, args.sample_steps, args.guidance), unet_passes


def describe(args) -> str:
    if args.generator != "diffusion":
        return ""
    return f" (widths {args.widths}, {args.sample_steps} DDIM steps, guidance {args.guidance:g})"


if __name__ == "__main__":
    main()
