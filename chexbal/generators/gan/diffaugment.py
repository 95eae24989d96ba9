"""Differentiable augmentation applied to real and generated images alike (DiffAugment, Zhao et al.
2020), so the discriminator cannot memorise a small training set. No flips: the heart is on the left.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def diff_augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness, contrast and translation (up to 1/8 of the side) of images in [-1, 1]."""
    n, _, h, w = x.shape

    def uniform(*shape):
        return torch.rand(*shape, generator=generator, device="cpu").to(x.device)

    x = x + (uniform(n, 1, 1, 1) - 0.5) * 0.4
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (uniform(n, 1, 1, 1) * 0.6 + 0.7) + mean
    shift = h // 8
    dy, dx = ((uniform(2, n) * (2 * shift + 1)).long() - shift).unbind(0)
    padded = F.pad(x, (shift, shift, shift, shift), mode="replicate")
    rows = (torch.arange(h, device=x.device)[None, :] + shift - dy.to(x.device)[:, None]).clamp(0, h + 2 * shift - 1)
    cols = (torch.arange(w, device=x.device)[None, :] + shift - dx.to(x.device)[:, None]).clamp(0, w + 2 * shift - 1)
    index = torch.arange(n, device=x.device)[:, None, None]
    return padded[index, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)
