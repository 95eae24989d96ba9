"""`chexbal train-diffusion`: train the label-conditioned diffusion model on one regimen's training rows.

The DDPM objective (predict the noise added at a random timestep, mean squared error), AdamW, bf16
autocast where it pays, an exponential moving average of the weights (what gets sampled and
shipped), label dropout (so one network also predicts without the label, for classifier-free
guidance) and batches that oversample the target findings, as the GAN's do. The training rows are
exactly the rows `chexbal train --frac F` trains on with the same split seed: never a validation or
test patient. The run folder holds what a GAN run's does: config.json, training-rows.csv,
generator.json, losses.csv, sample grids (one row per target finding), last.pt and generator.pt.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from chexbal import files, stopping
from chexbal.checkpoint import started_in_bf16
from chexbal.data.dataset import DEFAULT_DATASET
from chexbal.data.labels import PATHOLOGIES
from chexbal.data.splits import check_frac
from chexbal.devices import keep_precision, pick_device
from chexbal.errors import ChexbalError
from chexbal.generators import training
from chexbal.generators.diffusion.model import TRAIN_TIMESTEPS, DiffusionGenerator, LabelConditionedUNet, noise_schedule
from chexbal.generators.gan.nets import to_uint8
from chexbal.generators.training import BalancedRows, descend, ema_decay, grid_conditions, update_ema
from chexbal.progress import bar
from chexbal.seeds import stream


@dataclasses.dataclass
class DiffusionConfig:
    frac: float = 1.0
    steps: int = 8000
    batch_size: int = 32
    lr: float = 3e-4
    widths: tuple[int, ...] = (16, 32, 64, 128)  # UNet channels per resolution, full size first
    layers: int = 1  # ResNet layers per UNet block
    ema: float = 0.999
    label_dropout: float = 0.1  # share of rows trained without their label (classifier-free guidance)
    target_share: float = 0.5  # of each batch, rows drawn positive for a target (see BalancedRows)
    sample_steps: int = 25  # DDIM steps when sampling (recorded in generator.pt, used by generate)
    guidance: float = 2.0  # classifier-free guidance scale when sampling (0: ignore the label, 1: none)
    seed: int = 0
    split_seed: int = 0  # the train/validation split whose training rows the model learns from
    sample_every: int = 1000
    checkpoint_every: int = 250
    amp: str = "auto"
    device: str = "auto"
    data_dir: str = "data"
    dataset: str = DEFAULT_DATASET
    run_dir: str | None = None

    def check(self) -> DiffusionConfig:
        """Refuse impossible settings with one line, for the CLI and Python callers alike."""
        check_frac(self.frac)
        if self.steps < 1 or self.batch_size < 2 or self.lr <= 0 or self.layers < 1:
            raise ChexbalError("--steps and --layers must be at least 1, --batch-size at least 2 and --lr positive", 2)
        if not 0 <= self.label_dropout < 1:
            raise ChexbalError(f"--label-dropout must be in [0, 1), got {self.label_dropout:g}", 2)
        if not 0 <= self.target_share <= 1:
            raise ChexbalError(f"--target-share must be between 0 and 1, got {self.target_share:g}", 2)
        if self.sample_steps < 1 or self.sample_steps > TRAIN_TIMESTEPS or self.guidance < 0:
            raise ChexbalError(f"--sample-steps must be 1 to {TRAIN_TIMESTEPS} and --guidance at least 0", 2)
        if self.amp not in ("auto", "on", "off"):
            raise ChexbalError(f"--amp must be auto, on or off, not {self.amp!r}", 2)
        return self

    def default_run_dir(self) -> Path:
        return training.model_run_dir("diffusion", self.dataset, self.frac, self.seed)


RESUME_KEYS = (
    "frac",
    "batch_size",
    "lr",
    "widths",
    "layers",
    "ema",
    "label_dropout",
    "target_share",
    "seed",
    "split_seed",
    "dataset",
)


def train_diffusion(cfg: DiffusionConfig, resume: bool = False, quiet: bool = False) -> Path:
    cfg.check()
    device = pick_device(cfg.device)
    pool, seen, images, labels = training.regimen_data(cfg, device)
    size = images.shape[-1]
    run_dir = Path(cfg.run_dir) if cfg.run_dir else cfg.default_run_dir()
    torch.manual_seed(cfg.seed)
    nets = build_nets(cfg, size, device)  # before the run folder exists: a UNet that cannot be built leaves none
    with files.locked(run_dir, "diffusion run"):
        use_amp = keep_precision(cfg.amp, device, started_in_bf16(run_dir) if resume else None, run_dir)
        start, losses = training.start_or_resume(
            run_dir, cfg, nets, resume, keys=RESUME_KEYS, rows=pool, size=size, device=device, amp_enabled=use_amp
        )
        run = DiffusionRun(run_dir, cfg, nets, (images, labels, pool), seen, use_amp)
        with stopping.graceful(), bar(disable=quiet) as progress:
            task = progress.add_task("train-diffusion", total=cfg.steps, completed=start, note="")
            run_steps(run, start, losses, progress, task)
    return run_dir


@dataclasses.dataclass
class DiffusionRun:
    """A diffusion run in progress: its folder, settings, networks, training data (images, labels,
    rows), what it saw, and whether bf16 autocast is on."""

    run_dir: Path
    cfg: DiffusionConfig
    nets: dict
    data: tuple
    seen: dict
    use_amp: bool


def build_nets(cfg: DiffusionConfig, size: int, device) -> dict:
    """The model, its EMA and the optimizer, as a checkpoint holds them."""
    try:
        model = LabelConditionedUNet(size, tuple(cfg.widths), cfg.layers).to(device)
    except ValueError as err:
        raise ChexbalError(str(err), 2) from None
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    return {"model": model, "ema": ema, "opt": torch.optim.AdamW(model.parameters(), lr=cfg.lr)}


def run_steps(run: DiffusionRun, start: int, losses: list[dict], progress, task) -> None:
    """The steps left, checkpointing every `checkpoint_every`; on SIGTERM, a checkpoint where it stands."""
    cfg, nets, (images, labels, pool) = run.cfg, run.nets, run.data
    rows, schedule = BalancedRows(pool, cfg.target_share), noise_schedule()
    _, grid_labels, names = grid_conditions(pool, 1)
    for step in range(start, cfg.steps):
        if stopping.requested():
            checkpoint(run, step, losses)
            raise stopping.Stopped(f"step {step} of {run.run_dir}")
        rng = stream(cfg.seed, step)  # resumable: one stream per step
        batch = rows(cfg.batch_size, rng)
        loss = train_step(nets, (images, labels), batch, schedule, rng, dropout=cfg.label_dropout, use_amp=run.use_amp)
        update_ema(nets["ema"], nets["model"], ema_decay(cfg.ema, step))
        if step % 50 == 0 or step == cfg.steps - 1:  # reading the loss waits for the GPU: only when logged
            losses.append({"step": step + 1, "loss": loss.item()})
            progress.update(task, note=f"loss {losses[-1]['loss']:.4f}")
        done = step + 1
        if done % cfg.sample_every == 0 or done == cfg.steps:
            sampler = DiffusionGenerator(nets["ema"], cfg.sample_steps, cfg.guidance)
            training.write_grid(
                to_uint8(sampler.draw(grid_labels, stream(0, 0))), len(names), run.run_dir / "samples" / f"step-{done:06d}.png"
            )
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            checkpoint(run, done, losses)
        progress.update(task, advance=1)


def train_step(
    nets: dict, data: tuple, rows: torch.Tensor, schedule, rng: torch.Generator, *, dropout: float, use_amp: bool
) -> torch.Tensor:
    """One DDPM step: noise the batch at random timesteps, predict that noise, descend on the MSE.
    `dropout` of the rows are shown without their label."""
    images, labels = data
    device = images.device
    clean = images[rows.to(device)].unsqueeze(1).float() / 127.5 - 1
    noise = torch.randn(clean.shape, generator=rng).to(device)
    t = torch.randint(TRAIN_TIMESTEPS, (len(clean),), generator=rng).to(device)
    keep = (torch.rand(len(clean), generator=rng) >= dropout).to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
        predicted = nets["model"](schedule.add_noise(clean, noise, t), t, labels[rows.to(device)], keep)
    loss = F.mse_loss(predicted.float(), noise)
    descend(nets["opt"], loss)
    return loss.detach()


def generator_config(cfg: DiffusionConfig, size: int, steps: int, seen: dict) -> dict:
    return {
        "kind": "diffusion",
        "size": size,
        "widths": list(cfg.widths),
        "layers": cfg.layers,
        "labels": list(PATHOLOGIES),
        "dataset": cfg.dataset,
        "frac": cfg.frac,
        "steps": steps,
        "seed": cfg.seed,
        "trained_on": seen,
        "train_timesteps": TRAIN_TIMESTEPS,
        "sample_steps": cfg.sample_steps,
        "guidance": cfg.guidance,
        "label_dropout": cfg.label_dropout,
        "target_share": cfg.target_share,
    }


def checkpoint(run: DiffusionRun, step: int, losses: list[dict]) -> None:
    size = run.data[0].shape[-1]
    config = generator_config(run.cfg, size, step, run.seen)
    training.save_checkpoint(run.run_dir, run.cfg, run.nets, step, ema=run.nets["ema"], config=config, losses=losses)
