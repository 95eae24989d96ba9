"""`chexbal train-gan`: train the label-conditioned GAN on one regimen's training rows.

Hinge loss, spectral norm and a projection discriminator, an auxiliary label classifier trained on
real images beside it (AC-GAN; `--negatives` also teaches it to deny chosen findings on generated
images), DiffAugment on real and fake alike, Adam with beta1 = 0 for G and D (as in SNGAN/BigGAN),
batches that oversample the rare target findings, and an exponential moving average of the
generator, which is what gets sampled and shipped. The training rows are exactly the rows
`chexbal train --frac F` trains on with the same split seed: never a validation or test patient, so
a generator made for the `gan-regimen` arm saw no more than the classifier it helps. One run folder
holds config.json, training-rows.csv (`index`, `patient`), generator.json (what it saw), losses.csv,
sample grids (one row per target finding), last.pt (everything needed to resume) and generator.pt (the
EMA generator and the config that rebuilds it; state_dicts only, no pickled code).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from chexbal import files, stopping
from chexbal.data.dataset import DEFAULT_DATASET
from chexbal.data.labels import PATHOLOGIES
from chexbal.data.splits import check_frac
from chexbal.devices import pick_device
from chexbal.errors import ChexbalError
from chexbal.generators import training
from chexbal.generators.gan.diffaugment import diff_augment
from chexbal.generators.gan.nets import Discriminator, Generator, LabelClassifier, n_blocks, to_uint8
from chexbal.generators.training import BalancedRows, descend, ema_decay, grid_conditions, update_ema, write_grid
from chexbal.progress import bar
from chexbal.seeds import stream


@dataclasses.dataclass
class GanConfig:
    frac: float = 1.0
    steps: int = 5250  # the defaults are the shipped generator's recipe (`make generator`)
    batch_size: int = 64
    lr: float = 2e-4
    z_dim: int = 128
    base: int = 32
    ema: float = 0.999
    aux_weight: float = 3.0  # the label classifier's loss on generated images, in the generator's objective
    classifier_lr: float = 1e-3  # the label classifier is trained as a classifier: plain Adam
    negatives: tuple[str, ...] = ("Pleural Other",)  # findings C learns to deny on generated images asked for them
    negatives_from: int = 4750  # ... from this step on (see train_step; docs/generator.md says why)
    target_share: float = 0.5  # of each batch, rows drawn positive for a target (see BalancedRows)
    seed: int = 0
    split_seed: int = 0  # the train/validation split whose training rows the GAN learns from
    sample_every: int = 500
    checkpoint_every: int = 250
    device: str = "auto"
    data_dir: str = "data"
    dataset: str = DEFAULT_DATASET
    run_dir: str | None = None

    def check(self) -> GanConfig:
        """Refuse impossible settings with one line, for the CLI and Python callers alike."""
        check_frac(self.frac)
        if self.steps < 1 or self.batch_size < 2 or self.lr <= 0:
            raise ChexbalError("--steps must be at least 1, --batch-size at least 2 and --lr positive", 2)
        if not 0 <= self.target_share <= 1:
            raise ChexbalError(f"--target-share must be between 0 and 1, got {self.target_share:g}", 2)
        if self.aux_weight < 0:
            raise ChexbalError(f"--aux-weight must be at least 0, got {self.aux_weight:g}", 2)
        unknown = [name for name in self.negatives if name not in PATHOLOGIES]
        if unknown:
            raise ChexbalError(f"--negatives must be finding names ({', '.join(PATHOLOGIES)}), got {', '.join(unknown)}", 2)
        if self.negatives_from < 0:
            raise ChexbalError(f"--negatives-from must be at least 0, got {self.negatives_from}", 2)
        return self

    def default_run_dir(self) -> Path:
        return training.model_run_dir("gan", self.dataset, self.frac, self.seed)


RESUME_KEYS = (
    "frac",
    "batch_size",
    "lr",
    "z_dim",
    "base",
    "ema",
    "aux_weight",
    "classifier_lr",
    "negatives",
    "negatives_from",
    "target_share",
    "seed",
    "split_seed",
    "dataset",
)


def train_gan(cfg: GanConfig, resume: bool = False, quiet: bool = False) -> Path:
    cfg.check()
    device = pick_device(cfg.device)
    pool, seen, images, labels = training.regimen_data(cfg, device)
    size = images.shape[-1]
    try:
        n_blocks(size)
    except ValueError as err:
        raise ChexbalError(str(err)) from None
    run_dir = Path(cfg.run_dir) if cfg.run_dir else cfg.default_run_dir()
    with files.locked(run_dir, "GAN run"):
        torch.manual_seed(cfg.seed)
        nets = build_nets(cfg, size, device)
        start, losses = training.start_or_resume(
            run_dir, cfg, nets, resume, keys=RESUME_KEYS, rows=pool, size=size, device=device
        )
        with stopping.graceful(), bar(disable=quiet) as progress:
            task = progress.add_task("train-gan", total=cfg.steps, completed=start, note="")
            run_steps(GanRun(run_dir, cfg, nets, (images, labels, pool), seen), start, losses, progress, task)
    return run_dir


@dataclasses.dataclass
class GanRun:
    """A GAN run in progress: its folder, settings, networks, training data (images, labels, rows)
    and what it saw."""

    run_dir: Path
    cfg: GanConfig
    nets: dict
    data: tuple
    seen: dict


def run_steps(run: GanRun, start: int, losses: list[dict], progress, task) -> None:
    """The steps left, checkpointing every `checkpoint_every`; on SIGTERM, a checkpoint where it stands."""
    cfg, nets, (images, labels, pool) = run.cfg, run.nets, run.data
    fixed = grid_conditions(pool, cfg.z_dim)
    rows = BalancedRows(pool, cfg.target_share)
    denied = [PATHOLOGIES.index(name) for name in cfg.negatives]
    size = images.shape[-1]
    for step in range(start, cfg.steps):
        if stopping.requested():
            checkpoint(run.run_dir, cfg, nets, step, size=size, losses=losses, seen=run.seen)
            raise stopping.Stopped(f"step {step} of {run.run_dir}")
        rng = stream(cfg.seed, step)  # resumable: one stream per step
        d_loss, c_loss, g_loss = train_step(
            nets, images, labels, rows, cfg, rng, denied=denied if step >= cfg.negatives_from else []
        )
        update_ema(nets["G_ema"], nets["G"], ema_decay(cfg.ema, step))
        if step % 50 == 0 or step == cfg.steps - 1:
            losses.append({"step": step + 1, "d_loss": d_loss, "c_loss": c_loss, "g_loss": g_loss})
            progress.update(task, note=f"D {d_loss:.3f} C {c_loss:.3f} G {g_loss:.3f}")
        done = step + 1
        if done % cfg.sample_every == 0 or done == cfg.steps:
            write_samples(nets["G_ema"], fixed, run.run_dir / "samples" / f"step-{done:06d}.png")
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            checkpoint(run.run_dir, cfg, nets, done, size=size, losses=losses, seen=run.seen)
        progress.update(task, advance=1)


def build_nets(cfg: GanConfig, size: int, device) -> dict:
    """G, D, the label classifier C, the EMA generator and their optimizers, as a checkpoint holds them."""
    G, D = Generator(size, cfg.z_dim, cfg.base).to(device), Discriminator(size, cfg.base).to(device)
    C = LabelClassifier(size, cfg.base).to(device)
    if device.type == "cpu":  # channels_last weights: a step 1.4x faster on a CPU (scripts/bench_generator_step.py)
        for net in (G, D, C):
            net.to(memory_format=torch.channels_last)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(0.0, 0.99))
    opt_c = torch.optim.Adam(C.parameters(), lr=cfg.classifier_lr)
    return {"G": G, "D": D, "C": C, "G_ema": G_ema, "opt_g": opt_g, "opt_d": opt_d, "opt_c": opt_c}


def train_step(
    nets, images, labels, rows: BalancedRows, cfg: GanConfig, rng: torch.Generator, *, denied: list[int]
) -> tuple[float, float, float]:
    """One update of D (hinge), of the label classifier C and of G (both their verdicts).

    C learns the labels of real images and, for each column in `denied` (`--negatives`), that the
    generated images asked for that finding do not show it: a sign only C accepts stops paying, and
    G has to draw one C cannot tell from a real one (docs/generator.md says why Pleural Other needs
    it). A step without denied columns is exactly a step of a run without them."""
    G, D, C = nets["G"], nets["D"], nets["C"]
    device = images.device
    real_idx, fake_idx = rows(cfg.batch_size, rng).to(device), rows(cfg.batch_size, rng).to(device)
    real = diff_augment(images[real_idx].unsqueeze(1).float() / 127.5 - 1, rng)
    z = torch.randn(cfg.batch_size, cfg.z_dim, generator=rng).to(device)
    fake_labels = labels[fake_idx]  # conditions of real pool rows, drawn as the real batch's
    fake = G(z, fake_labels)
    shown = diff_augment(fake.detach(), rng)
    d_loss = F.relu(1 - D(real, labels[real_idx])).mean() + F.relu(1 + D(shown, fake_labels)).mean()
    descend(nets["opt_d"], d_loss)
    C.train()
    c_loss = F.binary_cross_entropy_with_logits(C(real), labels[real_idx])
    for k in denied:
        asked = fake_labels[:, k] == 1
        if asked.any():
            C.eval()  # generated images must not move batch-norm statistics
            denial = C(shown[asked])[:, k]
            c_loss = c_loss + F.binary_cross_entropy_with_logits(denial, torch.zeros_like(denial))
            C.train()
    descend(nets["opt_c"], c_loss)
    seen = diff_augment(fake, rng)
    C.eval().requires_grad_(False)  # a judge of G here: batch norm from real images, no update
    g_loss = -D(seen, fake_labels).mean() + cfg.aux_weight * F.binary_cross_entropy_with_logits(C(seen), fake_labels)
    descend(nets["opt_g"], g_loss)
    C.requires_grad_(True)
    return d_loss.item(), c_loss.item(), g_loss.item()


@torch.no_grad()
def write_samples(G: torch.nn.Module, fixed, path: Path) -> None:
    z, labels, names = fixed
    device = next(G.parameters()).device
    write_grid(to_uint8(G(z.to(device), labels.to(device))), len(names), path)


def generator_config(cfg: GanConfig, size: int, steps: int, seen: dict) -> dict:
    return {
        "size": size,
        "z_dim": cfg.z_dim,
        "base": cfg.base,
        "labels": list(PATHOLOGIES),
        "dataset": cfg.dataset,
        "frac": cfg.frac,
        "steps": steps,
        "seed": cfg.seed,
        "trained_on": seen,
        "aux_weight": cfg.aux_weight,
        "classifier_lr": cfg.classifier_lr,
        "negatives": list(cfg.negatives),
        "negatives_from": cfg.negatives_from,
        "target_share": cfg.target_share,
    }


def checkpoint(run_dir: Path, cfg: GanConfig, nets, step: int, *, size: int, losses: list[dict], seen: dict) -> None:
    training.save_checkpoint(
        run_dir, cfg, nets, step, ema=nets["G_ema"], config=generator_config(cfg, size, step, seen), losses=losses
    )
