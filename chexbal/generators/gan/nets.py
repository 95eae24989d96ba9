"""A label-conditioned generator and a projection discriminator for square single-channel images.

Conditioning follows the recipes that hold up on small data: the 14-element label vector enters the
generator through a learned embedding joined to the latent and through conditional batch norm in
every block (Miyato & Koyama 2018; Brock et al. 2019), and the discriminator scores it by projection:
the inner product of its pooled features with a linear embedding of the label vector (Miyato &
Koyama 2018), which for multi-label vectors is the sum of the positive classes' embeddings. Spectral
norm on every discriminator layer (Miyato et al. 2018). A separate label classifier, trained on real
images, supplies the auxiliary classification loss of AC-GAN (Odena et al. 2017) to the generator.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from chexbal.data.labels import PATHOLOGIES

N_LABELS = len(PATHOLOGIES)


def n_blocks(size: int) -> int:
    """Upsampling steps from a 4 to 7 pixel start to `size`: 64 = 4·2⁴, 224 = 7·2⁵, 256 = 4·2⁶."""
    for blocks in range(2, 10):
        if size % 2**blocks == 0 and 4 <= size // 2**blocks <= 7:
            return blocks
    raise ValueError(f"GAN image size must be 4 to 7 times a power of two, at least 16 (64, 128, 224, 256), not {size}")


def widths(size: int, base: int) -> list[int]:
    """Channels per resolution from the start up to size/2: wide at low resolution, halving as images grow."""
    return [base * 2 ** (n_blocks(size) - 1 - i) for i in range(n_blocks(size))]


class ConditionalBatchNorm(nn.Module):
    def __init__(self, channels: int, cond: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain, self.bias = nn.Linear(cond, channels), nn.Linear(cond, channels)
        nn.init.zeros_(self.gain.weight), nn.init.zeros_(self.gain.bias), nn.init.zeros_(self.bias.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * (1 + self.gain(c)[:, :, None, None]) + self.bias(c)[:, :, None, None]


class UpBlock(nn.Module):
    """Conditional batch norm, ReLU, nearest-neighbour upsampling and a 3x3 convolution: upsampling
    this way avoids the checkerboard artefacts of strided transposed convolutions (Odena et al. 2016)."""

    def __init__(self, cin: int, cout: int, cond: int):
        super().__init__()
        self.norm, self.conv = ConditionalBatchNorm(cin, cond), nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(F.relu(self.norm(x, c)), scale_factor=2.0))


class Generator(nn.Module):
    def __init__(self, size: int = 64, z_dim: int = 128, base: int = 32, embed: int = 64):
        """base: channels at the highest inner resolution (size/2); doubled at each lower one."""
        super().__init__()
        self.size, self.z_dim = size, z_dim
        ch = widths(size, base)
        self.embed = nn.Linear(N_LABELS, embed)
        cond = z_dim + embed
        self.start = size // 2 ** n_blocks(size)
        self.stem = nn.Linear(cond, ch[0] * self.start**2)
        self.blocks = nn.ModuleList(UpBlock(a, b, cond) for a, b in zip(ch, [*ch[1:], 1]))

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], shape (B, 1, size, size), for latents z and 0/1 label vectors."""
        c = torch.cat([z, self.embed(labels)], dim=1)
        h = self.stem(c).view(len(z), -1, self.start, self.start)
        for block in self.blocks:
            h = block(h, c)
        return torch.tanh(h)

    @torch.no_grad()
    def draw(self, labels: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """Images for 0/1 label vectors, their latents drawn from `rng` (what every generator offers)."""
        z = torch.randn(len(labels), self.z_dim, generator=rng)
        device = next(self.parameters()).device
        return self(z.to(device), labels.to(device))


class DownBlock(nn.Module):
    """A spectrally normalised stride-2 convolution and LeakyReLU (DCGAN's downsampling)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x), 0.2)


class Discriminator(nn.Module):
    def __init__(self, size: int = 64, base: int = 32):
        super().__init__()
        self.size = size
        ch = widths(size, base)[::-1]
        self.blocks = nn.Sequential(*(DownBlock(a, b) for a, b in zip([1, *ch[:-1]], ch)))
        self.score = spectral_norm(nn.Linear(ch[-1], 1))
        self.project = spectral_norm(nn.Linear(N_LABELS, ch[-1], bias=False))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """A realness score per image given the label vector it claims to show."""
        h = self.blocks(images).sum(dim=(2, 3))
        return self.score(h).squeeze(1) + (self.project(labels) * h).sum(dim=1)


class LabelClassifier(nn.Module):
    """14 label logits per image: the auxiliary classifier of AC-GAN (Odena et al. 2017), trained on
    real images (and, with `--negatives`, told which findings generated images do not show), whose
    loss on generated images pushes the generator to draw what it is asked for.

    Kept apart from the discriminator: a head on its spectrally normalised, realness-trained features
    barely sees small signs (docs/generator.md has the measurements). Plain convolutions with batch
    norm learn them faster, and global max pooling asks the question the findings pose, "is there
    such a spot anywhere", instead of averaging a small spot away.
    """

    def __init__(self, size: int = 64, base: int = 32):
        super().__init__()
        ch = widths(size, base)[::-1]
        self.blocks = nn.Sequential(
            *(nn.Sequential(nn.Conv2d(a, b, 3, 2, 1), nn.BatchNorm2d(b), nn.LeakyReLU(0.2)) for a, b in zip([1, *ch[:-1]], ch))
        )
        self.classify = nn.Linear(ch[-1], N_LABELS)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.blocks(images).amax(dim=(2, 3)))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator output in [-1, 1], (B, 1, S, S) -> uint8 (B, S, S)."""
    return ((images.squeeze(1).float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
