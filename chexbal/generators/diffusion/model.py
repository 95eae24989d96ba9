"""A label-conditioned denoising diffusion model for single-channel images, built on diffusers.

The network is diffusers' `UNet2DModel` with `class_embed_type="identity"`: whatever is passed as
`class_labels` is added to the timestep embedding, and here that is a learnt linear projection of
the 14-element label vector. Label dropout replaces the projection by a learnt null embedding, so
one network predicts the noise both with and without the label and sampling can use
classifier-free guidance (Ho & Salimans 2022):

    eps = eps(no label) + guidance * (eps(label) - eps(no label))

Guidance 0 ignores the label, 1 is the plain conditional model, above 1 strengthens the label.
Sampling runs diffusers' DDIM scheduler (eta 0: deterministic given the starting noise) for a
stated number of steps. No UNet or noise schedule is written here.
"""

from __future__ import annotations

import torch
from torch import nn

from chexbal import stopping
from chexbal.data.labels import PATHOLOGIES

N_LABELS = len(PATHOLOGIES)
TRAIN_TIMESTEPS = 1000


def check_shape(size: int, widths: tuple[int, ...]) -> None:
    """Refuse a UNet that cannot be built for `size` px images, with one line."""
    if len(widths) < 2 or any(w < 8 or w % 8 for w in widths):
        raise ValueError(f"diffusion widths must be at least two multiples of 8, got {','.join(map(str, widths))}")
    halvings = len(widths) - 1
    if size % 2**halvings or size // 2**halvings < 4:
        raise ValueError(f"{size} px images cannot be halved {halvings} times down to at least 4 px: use fewer --widths")


class LabelConditionedUNet(nn.Module):
    def __init__(self, size: int = 64, widths: tuple[int, ...] = (16, 32, 64, 128), layers: int = 1):
        """widths: channels per resolution, from full size down; self-attention at the lowest only."""
        super().__init__()
        check_shape(size, widths)
        self.size, self.widths, self.layers = size, tuple(widths), layers
        from diffusers import UNet2DModel  # imported where used: diffusers takes seconds to import

        down = ("DownBlock2D",) * (len(widths) - 1) + ("AttnDownBlock2D",)
        self.unet = UNet2DModel(
            sample_size=size,
            in_channels=1,
            out_channels=1,
            block_out_channels=tuple(widths),
            layers_per_block=layers,
            down_block_types=down,
            up_block_types=tuple(b.replace("Down", "Up") for b in reversed(down)),
            class_embed_type="identity",
            norm_num_groups=8,
            attention_head_dim=min(32, widths[-1]),  # channels per attention head
        )
        embedding = widths[0] * 4  # UNet2DModel's timestep embedding width
        self.project = nn.Linear(N_LABELS, embedding)
        self.null = nn.Parameter(torch.zeros(embedding))

    def forward(self, noisy: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor | None = None):
        """The predicted noise. `keep` (bool per image): False where the label is dropped."""
        condition = self.project(labels)
        if keep is not None:
            condition = torch.where(keep[:, None], condition, self.null.to(condition.dtype))
        return self.unet(noisy, t, class_labels=condition).sample


def noise_schedule():
    """The training schedule (DDPM, linear betas); sampling uses DDIM on the same betas."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, beta_schedule="linear", clip_sample=True)


class DiffusionGenerator(nn.Module):
    """A trained model with its sampling settings: `draw(labels, rng)` as a GAN's `draw`."""

    def __init__(self, model: LabelConditionedUNet, sample_steps: int = 25, guidance: float = 2.0, use_amp: bool = False):
        super().__init__()
        self.model, self.sample_steps, self.guidance = model, sample_steps, guidance
        self.size = model.size
        self.use_amp = use_amp  # the UNet in bf16 autocast; the DDIM update stays in fp32

    @torch.no_grad()
    def draw(self, labels: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """Images in [-1, 1], (B, 1, S, S), for 0/1 label vectors; the starting noise comes from `rng`."""
        device = next(self.model.parameters()).device
        x = torch.randn(len(labels), 1, self.size, self.size, generator=rng).to(device)
        labels = labels.to(device)
        from diffusers import DDIMScheduler

        scheduler = DDIMScheduler.from_config(noise_schedule().config)
        scheduler.set_timesteps(self.sample_steps)
        for t in scheduler.timesteps:
            stopping.check()  # a block of samples takes minutes on a CPU: SIGTERM must not wait for it
            x = scheduler.step(self.guided_noise(x, t, labels), t, x, eta=0.0).prev_sample
        return x.clamp(-1, 1)

    def guided_noise(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        steps = t.expand(len(x)).to(x.device)
        if self.guidance == 1:
            return self.predict(x, steps, labels)
        dropped = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        if self.guidance == 0:
            return self.predict(x, steps, labels, keep=dropped)
        # one batch of twice the size: the unconditional and the conditional prediction
        both = self.predict(
            torch.cat([x, x]), torch.cat([steps, steps]), torch.cat([labels, labels]), torch.cat([dropped, ~dropped])
        )
        unconditional, conditional = both.chunk(2)
        return unconditional + self.guidance * (conditional - unconditional)

    def predict(self, x: torch.Tensor, steps: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor | None = None):
        """The UNet's noise prediction, in fp32 whatever precision it ran in."""
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            return self.model(x, steps, labels, keep).float()
