"""Seeded random streams: one per (seed, step), so a resumed run draws what an uninterrupted one would."""

from __future__ import annotations

import torch


def stream(seed: int, step: int) -> torch.Generator:
    """The torch generator of one step (an epoch, a GAN step, a block of generated images) of a run."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)
