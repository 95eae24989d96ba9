"""`chexbal train`: fine-tune DenseNet-121 on one regimen under one arm of the experiment (arms.py).

The loop reads top to bottom: per epoch, train -> validate -> log -> checkpoint. The regimen's uint8
images live in memory (on the GPU when there is one); normalisation, flips and affine transforms
happen there, on whole batches. At the end the best epoch (by mean validation AUC) scores the test set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from chexbal import files, stopping
from chexbal.analysis.evaluate import auc_per_class, mean_auc
from chexbal.checkpoint import load_for_resume, save, start_run, started_in_bf16
from chexbal.classify import arms, classifier, distributed
from chexbal.classify.batch_augment import random_affine
from chexbal.classify.classifier import to_input
from chexbal.classify.training_set import TrainingSet, load_data
from chexbal.data.dataset import DEFAULT_DATASET
from chexbal.data.labels import PATHOLOGIES
from chexbal.data.splits import check_frac, frac_name
from chexbal.devices import keep_precision, pick_device
from chexbal.errors import ChexbalError
from chexbal.progress import bar
from chexbal.provenance import provenance
from chexbal.seeds import stream

OPTIMIZERS = ("sgd", "adam")


@dataclasses.dataclass
class TrainConfig:
    frac: float = 0.01
    aug: str = "none"
    lr: float = 1e-3
    batch_size: int = 32
    optimizer: str = "adam"
    epochs: int = 10
    seed: int = 0
    split_seed: int | None = None  # seed of the train/validation split; None: the same as `seed`
    pos_weight_cap: float = arms.POS_WEIGHT_CAP  # the `weighted` arm's largest positive weight
    weights: str = "random"  # initialisation: random, imagenet, nih or a file (classifier.build)
    device: str = "auto"
    amp: str = "auto"  # bf16 autocast: auto = on for CUDA and for CPUs with bf16 matrix units
    compile: bool = False  # torch.compile (CUDA graphs on a GPU): opt-in; no gain for DenseNet-121 on a CPU
    data_dir: str = "data"
    dataset: str = DEFAULT_DATASET
    runs_root: str = "runs"  # where the default run folder goes
    run_dir: str | None = None

    def check(self) -> TrainConfig:
        check_frac(self.frac)
        if not arms.is_arm(self.aug):
            raise ChexbalError(f"--aug must be one of {', '.join(arms.ARMS)} or synthetic:NAME, not {self.aug!r}", 2)
        for name, value, allowed in (
            ("--optimizer", self.optimizer, OPTIMIZERS),
            ("--amp", self.amp, ("auto", "on", "off")),
        ):
            if value not in allowed:
                raise ChexbalError(f"{name} must be one of {', '.join(allowed)}, not {value!r}", 2)
        for name, ok, rule in (
            ("--lr", self.lr > 0, "positive"),
            ("--batch-size", self.batch_size >= 2, "at least 2"),
            ("--epochs", self.epochs >= 1, "at least 1"),
        ):
            if not ok:
                value = getattr(self, name[2:].replace("-", "_"))
                raise ChexbalError(f"{name} must be {rule}, not {value:g}", 2)
        if not self.pos_weight_cap >= 1:
            raise ChexbalError(f"--pos-weight-cap must be at least 1, not {self.pos_weight_cap:g}", 2)
        return self

    def splitting_seed(self) -> int:
        return self.seed if self.split_seed is None else self.split_seed

    def default_run_dir(self) -> Path:
        name = f"lr{self.lr:g}-bs{self.batch_size}-{self.optimizer}-seed{self.seed}"
        return Path(self.runs_root) / self.dataset / frac_name(self.frac) / self.aug / name


# What must agree between an interrupted run and its resumption.
RESUME_KEYS = (
    "frac",
    "aug",
    "lr",
    "batch_size",
    "optimizer",
    "seed",
    "split_seed",
    "pos_weight_cap",
    "weights",
    "dataset",
    "amp",
)


@dataclasses.dataclass(frozen=True)
class Step:
    """How each training step runs: where, in which precision, over which processes, and with which
    per-class positive weights (the `weighted` arm's, else None)."""

    device: torch.device
    use_amp: bool = False
    ranks: distributed.Ranks = distributed.SINGLE
    pos_weight: torch.Tensor | None = None


@dataclasses.dataclass
class Run:
    """One run in progress: its folder, settings, data and how it steps; what the helpers share."""

    run_dir: Path
    cfg: TrainConfig
    data: TrainingSet
    step: Step
    init_note: str = ""
    model: torch.nn.Module | None = None  # the model as trained (wrapped for DDP, compiled), once fit() has run


def train(cfg: TrainConfig, resume: bool = False, quiet: bool = False) -> Path:
    cfg.check()
    started = time.perf_counter()
    run_dir = Path(cfg.run_dir) if cfg.run_dir else cfg.default_run_dir()
    ranks, device = distributed.setup(pick_device(cfg.device))
    try:
        if cfg.batch_size % ranks.world:
            raise ChexbalError(f"--batch-size {cfg.batch_size} does not split over {ranks.world} processes", 2)
        with files.locked(run_dir) if ranks.main else contextlib.nullcontext():  # rank 0 speaks for the run
            data = load_data(cfg, device)
            pos_weight = torch.tensor([data.weights[n] for n in PATHOLOGIES], device=device) if data.weights else None
            begun_in_bf16 = started_in_bf16(run_dir) if resume else None
            step = Step(device, keep_precision(cfg.amp, device, begun_in_bf16, run_dir), ranks, pos_weight)
            torch.manual_seed(cfg.seed)
            model, init_note = classifier.build(cfg.weights)
            run = Run(run_dir, cfg, data, step, init_note)
            fit(run, model.to(device, memory_format=torch.channels_last), resume, quiet or not ranks.main)
            score_best_epoch(run, run.model, time.perf_counter() - started)
    finally:
        distributed.teardown(ranks)
    return run_dir


def fit(run: Run, model, resume: bool, quiet: bool) -> None:
    """The epochs left: train, validate, checkpoint; the trained (wrapped) model is left in run.model."""
    cfg, data, step = run.cfg, run.data, run.step
    optimizer = make_optimizer(cfg, model)
    start, best, history, partial = start_or_resume(run, model, optimizer, resume)
    model = distributed.wrap(model, step.ranks, step.device)
    run.model = compiled(model, step.device) if cfg.compile else model
    with stopping.graceful(), bar(disable=quiet) as progress:
        task = progress.add_task(f"train {cfg.aug}", total=cfg.epochs, completed=start, note="")
        for epoch in range(start, cfg.epochs):
            try:
                seconds, train_loss = train_epoch(run.model, optimizer, data.train, cfg, epoch, step, resume_at=partial)
            except PartialEpoch as stop:
                save(checkpoint_of(run, optimizer, epoch, best) | {"partial": stop.state}, run.run_dir / "last.pt")
                raise stopping.Stopped(f"epoch {epoch + 1} at image {stop.state[0]} in {run.run_dir / 'last.pt'}") from None
            partial = None
            val_loss, val_probs = predict(run.model, data.val, eval_batch(cfg.batch_size, data.val), step.use_amp, step.ranks)
            row = epoch_row(epoch, train_loss, val_loss, val_probs, data, seconds)
            history = pd.concat([history, pd.DataFrame([row])], ignore_index=True)
            improved = not math.isnan(row["val_mean_auc"]) and (math.isnan(best) or row["val_mean_auc"] > best)
            best = row["val_mean_auc"] if improved else best
            if step.ranks.main:
                save_epoch(run, run.model, optimizer, (epoch, best, improved), history)
            distributed.barrier(step.ranks)
            progress.update(
                task,
                advance=1,
                note=f"loss {train_loss:.3f} val {val_loss:.3f} AUC {row['val_mean_auc']:.3f} {row['train_img_per_s']:.0f} img/s",
            )


def save_epoch(run: Run, model, optimizer, progress: tuple[int, float, bool], history: pd.DataFrame) -> None:
    """last.pt (and best.pt when validation improved, or after the first epoch) and history.csv."""
    epoch, best, improved = progress
    checkpoint = checkpoint_of(run, optimizer, epoch + 1, best)
    if improved or epoch == 0:
        save(checkpoint, run.run_dir / "best.pt")
    save(checkpoint, run.run_dir / "last.pt")
    files.write_atomic(run.run_dir / "history.csv", history.to_csv(index=False))


def checkpoint_of(run: Run, optimizer, epochs_done: int, best: float) -> dict:
    return {
        "model": distributed.unwrap(run.model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epochs_done,
        "best_val_auc": best,
        "config": dataclasses.asdict(run.cfg),
    }


def epoch_row(epoch: int, train_loss: float, val_loss: float, val_probs: np.ndarray, data, seconds: float) -> dict:
    val_auc = auc_per_class(data.val.labels.cpu().numpy(), val_probs)
    return {
        "epoch": epoch + 1,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "val_mean_auc": mean_auc(val_auc),
        "train_img_per_s": len(data.train.labels) / seconds,
        **{f"val_auc/{k}": v for k, v in val_auc.items()},
    }


def compiled(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """torch.compile; on a GPU with CUDA graphs ("reduce-overhead"): a small-image step is bound by
    Python and kernel launches, which a replayed graph removes. Graphs need static shapes, so a
    compiled run drops each epoch's last partial batch (see train_epoch)."""
    return torch.compile(model, mode="reduce-overhead" if device.type == "cuda" else None)


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """On a GPU, one fused kernel updates every parameter (far fewer launches per step than one
    kernel per tensor); a CPU keeps the default, so CPU results are unchanged."""
    fused = next(model.parameters()).device.type == "cuda" or None  # None: torch's default
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, fused=fused)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=fused)


class PartialEpoch(Exception):
    """SIGTERM between two batches: where the epoch stands (next batch's start, loss sum, images)."""

    def __init__(self, at: int, total: float, count: float):
        super().__init__(at, total, count)
        self.state = [at, total, count]


def train_epoch(
    model, optimizer, part, cfg: TrainConfig, epoch: int, step: Step, *, resume_at: list | None = None
) -> tuple[float, float]:
    """One pass over the training split in a seeded order (each rank its shard); returns
    (seconds, mean loss over all ranks). `resume_at`: a PartialEpoch's state, to finish that epoch
    exactly as an uninterrupted one; on SIGTERM (one process only) it raises PartialEpoch."""
    device, ranks = step.device, step.ranks
    model.train()
    generator = stream(cfg.seed, epoch)  # same order after a resume
    order = torch.randperm(len(part.labels), generator=generator)
    flips = torch.rand(len(order), 2, generator=generator) < 0.5
    affine = torch.rand(len(order), 4, generator=generator) if cfg.aug == "affine" else torch.zeros(len(order), 4)
    mine = distributed.shard(torch.arange(len(order)), ranks)
    order, flips, affine = order[mine].to(device), flips[mine].to(device), affine[mine].to(device)
    batch_size = cfg.batch_size // ranks.world
    at, total, count = resume_at or (0, 0.0, 0.0)
    total, count = torch.tensor(total, device=device), torch.tensor(count, device=device)
    timer = Timer(device)
    for i in range(at, len(order), batch_size):
        if stopping.requested() and ranks.world == 1:
            raise PartialEpoch(i, float(total), float(count))
        batch = order[i : i + batch_size]
        if len(batch) < 2 or (cfg.compile and len(batch) < batch_size):
            # BatchNorm cannot train on one image; a compiled step keeps one shape. The order is
            # reshuffled every epoch, so the dropped rows differ from epoch to epoch.
            continue
        x = to_input(part.images[batch], flips[i : i + len(batch)] if cfg.aug == "standard" else None)
        if cfg.aug == "affine":
            x = random_affine(x, affine[i : i + len(batch)], **arms.AFFINE)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=step.use_amp):
            logits = model(x)
        loss = F.binary_cross_entropy_with_logits(logits.float(), part.labels[batch], pos_weight=step.pos_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(batch)
        count += len(batch)
    seconds = timer.seconds()
    return seconds, float(distributed.total(total, ranks) / distributed.total(count, ranks).clamp_min(1))


class Timer:
    """Wall time of device work: CUDA events on a GPU (no host sync inside the loop), else a clock."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.start = time.perf_counter()

    def seconds(self) -> float:
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            return self.start.elapsed_time(self.end) / 1000
        return time.perf_counter() - self.start


EVAL_BATCH_224 = 256  # images per scoring batch on a GPU at 224 px; more at smaller sizes (same memory)


def eval_batch(train_batch: int, part) -> int:
    """Scoring has no batch-size hyperparameter (eval mode: each image's output is its own), so a GPU
    scores in large batches to keep busy; a CPU gains nothing from them and keeps twice the training batch."""
    if part.images.device.type != "cuda":
        return 2 * train_batch
    size = part.images.shape[-1]
    return max(2 * train_batch, EVAL_BATCH_224 * (224 * 224) // (size * size))


@torch.no_grad()
def predict(
    model, part, batch_size: int, use_amp: bool, ranks: distributed.Ranks = distributed.SINGLE
) -> tuple[float, np.ndarray]:
    """Mean BCE loss and sigmoid probabilities (n, 14) of a split, in eval mode; each rank scores
    its rows and every rank gets all of them."""
    model.eval()
    device = part.images.device
    n = len(part.labels)
    mine = torch.arange(ranks.rank, n, ranks.world, device=device)
    logits = [torch.zeros(0, len(PATHOLOGIES), device=device)]
    for i in range(0, len(mine), batch_size):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits.append(distributed.unwrap(model)(to_input(part.images[mine[i : i + batch_size]])).float())
    logits = distributed.gather_rows(torch.cat(logits), n, ranks)
    loss = F.binary_cross_entropy_with_logits(logits, part.labels).item() if n else float("nan")
    return loss, torch.sigmoid(logits).cpu().numpy()


def start_or_resume(run: Run, model, optimizer, resume: bool):
    """Start a new run folder (rank 0 writes it), or restore the last checkpoint of an interrupted one:
    (first epoch to run, best validation AUC, history, where a stopped epoch stands or None)."""
    if not resume:
        if (run.run_dir / "last.pt").exists():  # every rank refuses, not only the one that writes
            raise ChexbalError(f"{run.run_dir} already holds a run: pass --resume to continue it, or choose another --run-dir")
        if run.step.ranks.main:
            write_run_files(run)
        distributed.barrier(run.step.ranks)
        return 0, float("nan"), pd.DataFrame(), None
    saved = load_for_resume(run.run_dir, run.cfg, RESUME_KEYS, run.step.device)
    if run.step.ranks.main:
        keep_shorter_run(run.run_dir, run.cfg.epochs)
    distributed.barrier(run.step.ranks)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    history = pd.read_csv(run.run_dir / "history.csv") if (run.run_dir / "history.csv").exists() else pd.DataFrame()
    history = history[history["epoch"] <= saved["epoch"]] if len(history) else history
    return saved["epoch"], saved["best_val_auc"], history, saved.get("partial")


def keep_shorter_run(run_dir: Path, epochs: int) -> None:
    """Resuming a finished run with more epochs extends it, and gives what a run of that many epochs
    from the start gives: the learning rate is constant and each epoch's batch order depends on the
    seed and the epoch only. The shorter run's scores are kept beside it (metrics-epochs<N>.json,
    test-predictions-epochs<N>.csv), and moved out of the way first, so an interrupted extension is
    never taken for a finished one."""
    config = files.read_json(run_dir / "config.json")
    recorded = config.get("epochs")
    if recorded is None or recorded >= epochs:
        return
    for name, kept in (
        ("metrics.json", f"metrics-epochs{recorded}.json"),
        ("test-predictions.csv", f"test-predictions-epochs{recorded}.csv"),
    ):
        if (run_dir / name).exists():
            os.replace(run_dir / name, run_dir / kept)
    files.write_atomic(run_dir / "config.json", json.dumps({**config, "epochs": epochs}, indent=2))


def write_run_files(run: Run) -> None:
    """config.json (settings, what the extra images are, loss weights), split.csv (the real rows and
    their split) and, for arms adding real rows, extra-rows.csv: enough to audit the run from files."""
    cfg, data, extra = run.cfg, run.data, run.data.extra
    config = {
        **dataclasses.asdict(cfg),
        "split_seed_used": cfg.splitting_seed(),
        "amp_enabled": run.step.use_amp,
        "device_used": str(run.step.device),
        "init": run.init_note,
        "train_images": len(data.train.labels),
        "val_images": len(data.val.labels),
        "test_images": len(data.test.labels),
        "extra_images": extra.record if extra else None,
        "pos_weight": data.weights,
        "threads": torch.get_num_threads(),
        "processes": run.step.ranks.world,
        "provenance": provenance(),
    }
    start_run(run.run_dir, config)
    split = pd.concat(
        [part.rows[["index", "patient"]].assign(split=name) for name, part in (("train", data.train), ("val", data.val))]
    )
    files.write_atomic(run.run_dir / "split.csv", split.to_csv(index=False))
    if extra is not None and extra.rows is not None:
        files.write_atomic(run.run_dir / "extra-rows.csv", extra.rows.to_csv(index=False))


def score_best_epoch(run: Run, model, seconds: float) -> None:
    """Score validation and test with the best checkpoint; rank 0 writes predictions and metrics.
    `wall_seconds` covers this process only (a resumed run counts its last session)."""
    step = run.step
    saved = torch.load(run.run_dir / "best.pt", map_location=step.device, weights_only=False)
    distributed.unwrap(model).load_state_dict(saved["model"])
    metrics = {"best_epoch": saved["epoch"], "epochs": run.cfg.epochs}
    for name in ("val", "test"):
        part = getattr(run.data, name)
        loss, probs = predict(model, part, eval_batch(run.cfg.batch_size, part), step.use_amp, step.ranks)
        aucs = auc_per_class(part.labels.cpu().numpy(), probs)
        metrics[name] = {"loss": loss, "mean_auc": mean_auc(aucs), "auc": aucs}
        if name == "test" and step.ranks.main:
            write_predictions(run.run_dir / "test-predictions.csv", part.rows, probs)
    metrics["wall_seconds"] = seconds
    if step.ranks.main:
        files.write_atomic(run.run_dir / "metrics.json", json.dumps(metrics, indent=2))


def write_predictions(path: Path, rows: pd.DataFrame, probs: np.ndarray) -> None:
    table = rows[["index", "Path", "patient", *PATHOLOGIES]].rename(columns={n: f"label/{n}" for n in PATHOLOGIES})
    for i, name in enumerate(PATHOLOGIES):
        table[f"prob/{name}"] = probs[:, i]
    files.write_atomic(path, table.to_csv(index=False))
