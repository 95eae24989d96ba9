"""Batch augmentation of the classifier's inputs, on the device (flips are in classifier.to_input)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BLACK = -1024.0  # the darkest value of torchxrayvision's range: what lies outside a moved image


def random_affine(x: torch.Tensor, draws: torch.Tensor, degrees: float, translate: float, scale: float) -> torch.Tensor:
    """Rotate, translate and scale each image of `x` (B, 1, S, S) by its own row of `draws` (B, 4),
    uniform in [0, 1): rotation in ±degrees, shift in ±translate of the side on each axis, zoom in
    1 ± scale. Uncovered pixels become black, as in torchvision's RandomAffine (fill 0)."""
    u = draws.to(x.dtype) * 2 - 1  # [-1, 1)
    angle = u[:, 0] * math.radians(degrees)
    zoom = 1 + u[:, 1] * scale
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # affine_grid maps output coordinates to input ones, in [-1, 1]: a shift of t of the side is 2t.
    theta = torch.stack(
        [torch.stack([cos, -sin, -2 * translate * u[:, 2]], 1), torch.stack([sin, cos, -2 * translate * u[:, 3]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    moved = F.grid_sample(x - BLACK, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + BLACK
    return moved.contiguous(memory_format=torch.channels_last)
