"""Epoch throughput of `chexbal train`'s loop against the bare model's ceiling, in one run.

    .venv/bin/python scripts/bench_train.py [--size 64] [--images 640] [--batch-size 32] [--device auto] [--compile]

The epoch runs chexbal's own `train_epoch` (uint8 images in memory, shuffling, normalisation and
flips on the device, BCE loss, optimizer step). The ceiling is forward + backward + step of the same
model on random float tensors of the same shape, with nothing else. Both alternate twice and the
best of each is kept. `--compile` runs the epoch as `train --compile` does (torch.compile, CUDA graphs
on a GPU, whole batches only) against the same eager ceiling, after one warm-up epoch that compiles.
The last line is `ratio <epoch img/s / bare img/s>`.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from chexbal.classify import classifier
from chexbal.classify.train import Step, TrainConfig, compiled, make_optimizer, train_epoch
from chexbal.classify.training_set import Split
from chexbal.devices import amp_enabled, pick_device


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare(model, optimizer, n: int, cfg: TrainConfig, size: int, use_amp: bool, device) -> float:
    """img/s of forward + backward + step on random tensors: the ceiling for the loop."""
    x = torch.randn(cfg.batch_size, 1, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(cfg.batch_size, 14, device=device) < 0.2).float()
    model.train()
    sync(device)
    start = time.perf_counter()
    for _ in range(n // cfg.batch_size):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(x)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return (n // cfg.batch_size) * cfg.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--aug", default="standard", choices=("none", "standard"))
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    device = pick_device(args.device)
    cfg = TrainConfig(batch_size=args.batch_size, aug=args.aug, compile=args.compile)
    use_amp = amp_enabled("auto", device)
    torch.manual_seed(0)
    model = classifier.build()[0].to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model)
    part = Split(
        torch.randint(0, 256, (args.images, args.size, args.size), dtype=torch.uint8, device=device),
        (torch.rand(args.images, 14, device=device) < 0.2).float(),
        rows=None,
    )
    bare(model, optimizer, 2 * args.batch_size, cfg, args.size, use_amp, device)  # warm-up
    looped = compiled(model, device) if args.compile else model
    if args.compile:
        train_epoch(looped, optimizer, part, cfg, 99, Step(device, use_amp))  # compiles (and records graphs)
    epoch_rates, bare_rates = [], []
    for trial in range(2):
        seconds, _ = train_epoch(looped, optimizer, part, cfg, trial, Step(device, use_amp))
        epoch_rates.append(args.images / seconds)
        bare_rates.append(bare(model, optimizer, args.images, cfg, args.size, use_amp, device))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"{name}; DenseNet-121, {args.size} px, batch {args.batch_size}, bf16 autocast {'on' if use_amp else 'off'}, "
        f"aug {args.aug}, {'compiled' if args.compile else 'eager'}"
    )
    print(f"train epoch  {max(epoch_rates):8.1f} img/s")
    print(f"bare model   {max(bare_rates):8.1f} img/s")
    print(f"ratio {max(epoch_rates) / max(bare_rates):.3f}")


if __name__ == "__main__":
    main()
