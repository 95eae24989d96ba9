"""Which training settings are fastest on this CPU: the bare DenseNet-121 step under each, side by side.

    .venv/bin/python scripts/bench_settings.py [--size 64] [--images 320] [--rounds 2]

Variants, interleaved round by round (the best round of each is kept, so a burst of other work on a
shared machine hurts every variant alike): fp32 with contiguous tensors, fp32 channels_last (what
`--amp off` runs), bf16 autocast channels_last (what `--amp auto` runs where the CPU has bf16 units),
and inference alone (the test set is scored at the end of every run). Prints img/s per variant and
ratios to fp32 channels_last; the last line is `ratio <fp32 channels_last / fp32 contiguous>`.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from chexbal.classify import classifier


def step_rate(model, optimizer, x, y, images: int, amp: bool) -> float:
    model.train()
    start = time.perf_counter()
    for _ in range(images // len(x)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (images // len(x)) * len(x) / (time.perf_counter() - start)


@torch.no_grad()
def inference_rate(model, x, images: int) -> float:
    model.eval()
    start = time.perf_counter()
    for _ in range(images // len(x)):
        model(x)
    return (images // len(x)) * len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    y = (torch.rand(args.batch_size, 14) < 0.2).float()
    x = torch.randn(args.batch_size, 1, args.size, args.size)
    variants = {
        "fp32 contiguous": (torch.contiguous_format, False),
        "fp32 channels_last": (torch.channels_last, False),
        "bf16 channels_last": (torch.channels_last, True),
    }
    models = {}
    for name, (memory_format, _) in variants.items():
        model = classifier.Classifier().to(memory_format=memory_format)
        models[name] = (model, torch.optim.Adam(model.parameters(), lr=1e-3), x.contiguous(memory_format=memory_format))
    rates: dict[str, list[float]] = {name: [] for name in [*variants, "inference fp32 channels_last (batch 64)"]}
    for _ in range(args.rounds):
        for name, (_, amp) in variants.items():
            model, optimizer, inputs = models[name]
            step_rate(model, optimizer, inputs, y, len(inputs), amp)  # warm-up
            rates[name].append(step_rate(model, optimizer, inputs, y, args.images, amp))
        model, _, inputs = models["fp32 channels_last"]
        batch = torch.cat([inputs, inputs]).contiguous(memory_format=torch.channels_last)
        rates["inference fp32 channels_last (batch 64)"].append(inference_rate(model, batch, 4 * args.images))
    best = {name: max(values) for name, values in rates.items()}
    print(f"CPU, {torch.get_num_threads()} threads; DenseNet-121, {args.size} px, batch {args.batch_size}")
    for name, rate in best.items():
        print(f"{name:40s} {rate:8.1f} img/s   {rate / best['fp32 channels_last']:.2f}× fp32 channels_last")
    print(f"ratio {best['fp32 channels_last'] / best['fp32 contiguous']:.3f}")


if __name__ == "__main__":
    main()
