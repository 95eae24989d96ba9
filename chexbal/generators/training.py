"""What every generator's training shares (the GAN's and the diffusion model's): batches that
oversample the target findings, an EMA of the weights, one optimizer step, sample grids, the record
of which rows a generator saw, and the run folder's life (start, checkpoint, resume)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from chexbal import files
from chexbal.checkpoint import load_for_resume, save, start_run
from chexbal.data.dataset import images_on, locate, settings, training_rows
from chexbal.data.labels import TARGETS, label_matrix
from chexbal.data.splits import frac_name
from chexbal.errors import ChexbalError
from chexbal.provenance import provenance


class BalancedRows:
    """Draws a batch's pool rows: `share` of them positive for a target (the three in turn, a random
    positive of each), the rest uniformly. The targets are 1-4% of the pool, so a uniform batch of
    64 would hold only a few of them, yet `generate` asks the generator for nothing else.
    Real and fake conditions come from this same sampler, so the discriminator cannot tell them
    apart by their label vectors alone."""

    def __init__(self, pool: pd.DataFrame, share: float):
        self.n = len(pool)
        positives = [np.flatnonzero(pool[name].to_numpy() == 1) for name in TARGETS]
        self.positives = [torch.from_numpy(p) for p in positives if len(p)]
        self.share = share if self.positives else 0.0

    def __call__(self, count: int, rng: torch.Generator) -> torch.Tensor:
        rows = torch.randint(self.n, (count,), generator=rng)
        balanced = round(count * self.share)
        picks = torch.rand(balanced, generator=rng)
        for i in range(balanced):
            positives = self.positives[i % len(self.positives)]
            rows[i] = positives[int(picks[i] * len(positives))]
        return rows


def model_run_dir(model: str, dataset: str, frac: float, seed: int = 0) -> Path:
    """Where `train-gan` or `train-diffusion --frac F` writes by default: runs/<model>/<dataset>/frac-<F>,
    with `-seed<N>` for a training seed other than 0, so a second generator of the same rows (another
    seed) never shares a folder with the first."""
    return Path("runs") / model / dataset / (frac_name(frac) + (f"-seed{seed}" if seed else ""))


def descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):  # batch-norm statistics follow the live model
        e.copy_(b)


def ema_decay(target: float, step: int) -> float:
    """Warm-up: early on the EMA follows the live weights, later it averages over ~1/(1 - target) steps."""
    return min(target, (1 + step) / (10 + step))


def write_grid(images: np.ndarray, rows: int, path: Path) -> None:
    """uint8 images (N, S, S) as a PNG of `rows` rows."""
    per_row = len(images) // rows
    grid = np.concatenate([np.concatenate(list(images[i * per_row : (i + 1) * per_row]), axis=1) for i in range(rows)])
    with files.replacing(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")


def regimen_record(dataset: str, frac: float, split_seed: int, rows: pd.DataFrame, dataset_settings: dict) -> dict:
    """What a generator saw, recorded in its checkpoint and generator.json (with, for a phantom, the
    renderer version that drew its images)."""
    version = {"renderer_version": dataset_settings["renderer_version"]} if "renderer_version" in dataset_settings else {}
    return {
        **version,
        "dataset": dataset,
        "frac": frac,
        "split_seed": split_seed,
        "rows": len(rows),
        "patients": int(rows["patient"].nunique()),
        "validation_patients_excluded": True,
    }


def grid_conditions(pool: pd.DataFrame, z_dim: int, per_row: int = 8) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Fixed latents and label vectors for sample grids: one row per target finding, each vector a
    real pool vector positive for it, plus a row of No Finding vectors."""
    rng = np.random.default_rng(0)
    rows, names = [], []
    for name in (*TARGETS, "No Finding"):
        positives = label_matrix(pool[pool[name] == 1])
        if len(positives):
            rows.append(positives[rng.integers(len(positives), size=per_row)])
            names.append(name)
    z = torch.from_numpy(rng.standard_normal((len(rows) * per_row, z_dim)).astype(np.float32))
    return z, torch.from_numpy(np.concatenate(rows)), names


def regimen_data(cfg, device) -> tuple[pd.DataFrame, dict, torch.Tensor, torch.Tensor]:
    """A generator's training rows (exactly `train --frac F --split-seed S`'s), the record of what it
    sees, and their images and label vectors on `device`."""
    folder = locate(Path(cfg.data_dir), cfg.dataset)
    rows = training_rows(folder, cfg.frac, cfg.split_seed)
    seen = regimen_record(cfg.dataset, cfg.frac, cfg.split_seed, rows, settings(folder))
    images = images_on(folder, rows, device)
    return rows, seen, images, torch.from_numpy(label_matrix(rows)).to(device)


def start_or_resume(
    run_dir: Path,
    cfg,
    nets: dict,
    resume: bool,
    *,
    keys: tuple[str, ...],
    rows: pd.DataFrame,
    size: int,
    device,
    amp_enabled: bool | None = None,
):
    """(the step to start from, the losses so far): a new run folder, or last.pt loaded into `nets`.
    `amp_enabled`: the precision a new run records (None: a model that trains in fp32 only)."""
    if resume:
        return resume_run(run_dir, cfg, nets, device, keys=keys)
    start(run_dir, cfg, size=size, rows=rows, device=device, amp_enabled=amp_enabled)
    return 0, []


def start(run_dir: Path, cfg, *, size: int, rows: pd.DataFrame, device, amp_enabled: bool | None = None) -> None:
    """A new run folder: config.json (the settings and provenance) and training-rows.csv."""
    settings = {**dataclasses.asdict(cfg), "size": size, "train_images": len(rows), "device_used": str(device)}
    if amp_enabled is not None:  # what a resumed run keeps (devices.keep_precision)
        settings["amp_enabled"] = amp_enabled
    start_run(run_dir, {**settings, "provenance": provenance()})
    files.write_atomic(run_dir / "training-rows.csv", rows[["index", "patient"]].to_csv(index=False))


def resume_run(run_dir: Path, cfg, nets: dict, device, *, keys: tuple[str, ...]) -> tuple[int, list[dict]]:
    """Load last.pt into `nets` (networks and optimizers by name); the step reached and its losses."""
    saved = load_for_resume(run_dir, cfg, keys, device, parts=tuple(nets))
    try:
        for key, module in nets.items():
            module.load_state_dict(saved[key])
    except (RuntimeError, ValueError) as err:  # a layer of another shape: written by another chexbal
        raise ChexbalError(
            f"{run_dir / 'last.pt'} holds networks of another shape ({str(err).splitlines()[0]}): start a new run"
        ) from None
    losses = pd.read_csv(run_dir / "losses.csv").to_dict("records") if (run_dir / "losses.csv").exists() else []
    return saved["step"], [r for r in losses if r["step"] <= saved["step"]]


def save_checkpoint(run_dir: Path, cfg, nets: dict, step: int, *, ema: torch.nn.Module, config: dict, losses: list[dict]) -> None:
    """last.pt (everything needed to resume), generator.pt (the EMA weights in half precision, a few
    MB, rebuilt from `config` alone), generator.json (what it saw, its steps and sha256), losses.csv."""
    state = {k: v.state_dict() for k, v in nets.items()}
    save({**state, "step": step, "config": dataclasses.asdict(cfg)}, run_dir / "last.pt")
    weights = {k: v.half() if v.is_floating_point() else v for k, v in ema.state_dict().items()}
    save({"generator": weights, "config": config}, run_dir / "generator.pt")
    card = {**config["trained_on"], "steps": step, "sha256": files.sha256(run_dir / "generator.pt")}
    files.write_atomic(run_dir / "generator.json", json.dumps(card, indent=2))
    files.write_atomic(run_dir / "losses.csv", pd.DataFrame(losses).to_csv(index=False))
