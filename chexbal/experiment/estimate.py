"""How long a plan takes on this machine, from a few seconds of measured throughput here.

Each kind of task is timed for a couple of steps at the plan's size, on the device and with the
threads its processes will have (one thread per process on a CPU), after a warm-up step: images
rendered or decoded per second, DenseNet-121 training and scoring images per second, GAN steps per
second, generated images per second. A task's estimate is its work over its rate, times how much
longer than priced the plan's tasks of its kind that finished here took (`corrections`). The
estimate leaves out the report, whose time grows with the runs, and a GPU shared by several processes.
`gan-eval` is priced from what it does (`gan_eval_seconds`), on the CPU where it runs.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
import torch

from chexbal.classify import classifier
from chexbal.classify.train import Step, TrainConfig, make_optimizer, train_epoch
from chexbal.classify.training_set import Split
from chexbal.data import sources
from chexbal.data.labels import PATHOLOGIES
from chexbal.data.prepare import index_table
from chexbal.data.splits import VALIDATION_SHARE, order_rows, regimen_length
from chexbal.devices import amp_enabled, pick_device
from chexbal.experiment.plan import Plan
from chexbal.experiment.tasks import Task
from chexbal.generators.diffusion.model import DiffusionGenerator, noise_schedule
from chexbal.generators.diffusion.train import DiffusionConfig
from chexbal.generators.diffusion.train import build_nets as diffusion_nets
from chexbal.generators.diffusion.train import train_step as diffusion_step
from chexbal.generators.gan.train import GanConfig, build_nets, train_step
from chexbal.generators.training import BalancedRows

DIFFUSION_SHAPE = ("batch_size", "widths", "layers", "label_dropout", "sample_steps", "guidance")  # what sets its speed


@dataclasses.dataclass(frozen=True)
class Rates:
    prepare: float  # images rendered or decoded per second
    train: float  # training images per second, one process
    score: float  # images scored per second
    judge: float  # images a gan-eval judge scores per second (on the CPU, in fp32, as `gan-eval` does)
    gan_step: float  # GAN steps per second
    generate: float  # images per second the GAN generates
    diffusion_step: float  # diffusion training steps per second (0: the plan has no diffusion arm)
    diffusion_generate: float  # images per second the diffusion model samples, at the plan's steps

    def seconds(self, task: Task, test_images: int, phantom: bool = False, whole: bool = False) -> float:
        """What the task has left (`whole`: all of it) takes at these rates."""
        if task.kind == "train":  # plus validation each epoch (about 6% of the rows) and the test set
            return task.work / self.train + (0.06 * task.work + test_images) / self.score
        if task.kind.startswith("gan-eval-"):
            return self.gan_eval_seconds(task, test_images, phantom)
        rate = {
            "prepare": self.prepare,
            "train-gan": self.gan_step,
            "train-diffusion": self.diffusion_step,
            "generate-gan": self.generate,
            "generate-diffusion": self.diffusion_generate,
        }[task.kind]
        return (task.work if whole else task.work_left()) / rate

    def gan_eval_seconds(self, task: Task, test_images: int, phantom: bool) -> float:
        """`gan-eval` with n images draws them and 1.5 n more (each target's quarter of the conditions
        as pairs, its bit on and off); each judge scores the test set, the n images and the pairs; on a
        phantom, n phantoms are rendered for the same labels and the first judge scores them. Priced
        as 3 x n and one judge once, it read 6 times low (0.8 min against 4.8 measured)."""
        n = task.work
        judges = 1 + ("--second-judge" in task.command)
        generate = {"gan": self.generate, "diffusion": self.diffusion_generate}[task.kind.split("-")[-1]]
        scored = judges * (test_images + 2.5 * n) + (n if phantom else 0)
        return 2.5 * n / generate + scored / self.judge + (n / self.prepare if phantom else 0)


def corrections(done: list[Task], finished: dict[str, float], price) -> dict[str, tuple[float, int]]:
    """Per kind of task, the wall time that the `done` tasks `finished` here took over their price
    (`price(task)`: the whole task at the measured rates), and how many there were. The rates are
    measured in seconds beside whatever runs then; the finished tasks ran beside the plan's own other
    processes, as the rest will (a GAN priced at 73 min took 104, paused twice for 13 min)."""
    spent: dict[str, float] = {}
    priced: dict[str, float] = {}
    counted: dict[str, int] = {}
    for task in done:
        if task.name in finished:
            spent[task.kind] = spent.get(task.kind, 0.0) + finished[task.name]
            priced[task.kind] = priced.get(task.kind, 0.0) + price(task)
            counted[task.kind] = counted.get(task.kind, 0) + 1
    return {kind: (spent[kind] / priced[kind], counted[kind]) for kind in spent if priced[kind] > 0}


def regimen_sizes(plan: Plan) -> dict[float, tuple[int, int]]:
    """Per regimen of the plan (and the whole pool), its training images and test images, from the
    source's table alone: the rows `prepare` would write, less the validation share."""
    table = sources.get(plan.source).read_table(plan.root, "frontal")
    index = index_table(order_rows(table, 0), "ones")
    n_test = int((index["split"] == "test").sum())
    fracs = {r.frac for r in plan.regimens} | {1.0}
    return {f: (round((regimen_length(index, f) - n_test) * (1 - VALIDATION_SHARE)), n_test) for f in fracs}


def measure(plan: Plan, device_name: str = "auto") -> Rates:
    device = pick_device(device_name)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # the runner's processes are single-threaded on a CPU
    try:
        diffusion = any(arm.startswith("diffusion") for r in plan.regimens for arm in r.arms)
        diffusion_rates = _diffusion_rates(plan, device) if diffusion else (0.0, 0.0)
        return Rates(_prepare_rate(plan), *_classifier_rates(plan, device), *_gan_rates(plan, device), *diffusion_rates)
    finally:
        torch.set_num_threads(threads)


def _timed(fn, repeats: int = 2) -> float:
    """Seconds per call of `fn`, after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def _prepare_rate(plan: Plan) -> float:
    source = sources.get(plan.source)
    rows = source.read_table(plan.root, "frontal").head(8)
    raw = rows[list(PATHOLOGIES)].to_numpy(float)
    seconds = _timed(lambda: source.images(plan.root, list(rows["Path"]), raw, plan.size, 0), repeats=1)
    return len(rows) / seconds


def _classifier_rates(plan: Plan, device) -> tuple[float, float, float]:
    batch = int(plan.training.get("batch_size", 32))
    cfg = TrainConfig(batch_size=batch)
    model = classifier.build()[0].to(device, memory_format=torch.channels_last)
    images = torch.randint(0, 256, (2 * batch, plan.size, plan.size), dtype=torch.uint8, device=device)
    part = Split(images, (torch.rand(2 * batch, len(PATHOLOGIES), device=device) < 0.2).float(), pd.DataFrame())
    step = Step(device, amp_enabled("auto", device))
    train_seconds = _timed(lambda: train_epoch(model, make_optimizer(cfg, model), part, cfg, 0, step)[0], repeats=1)
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=step.use_amp):
        score_seconds = _timed(lambda: model(classifier.to_input(images)))
    judge = classifier.for_scoring(classifier.build()[0])  # as gan-eval loads its judges: on the CPU, fp32
    judge_seconds = _timed(lambda: classifier.embed_and_score(judge, images.cpu().numpy()))
    return 2 * batch / train_seconds, 2 * batch / score_seconds, 2 * batch / judge_seconds


def _gan_rates(plan: Plan, device) -> tuple[float, float]:
    cfg = GanConfig(**{k: v for k, v in plan.generator.items() if k in ("batch_size", "base")})
    nets = build_nets(cfg, plan.size, device)
    pool = pd.DataFrame(np.eye(len(PATHOLOGIES), dtype=np.uint8)[np.arange(64) % len(PATHOLOGIES)], columns=list(PATHOLOGIES))
    images = torch.randint(0, 256, (len(pool), plan.size, plan.size), dtype=torch.uint8, device=device)
    labels = torch.tensor(pool.to_numpy(np.float32), device=device)
    rows, rng = BalancedRows(pool, cfg.target_share), torch.Generator().manual_seed(0)
    step_seconds = _timed(lambda: train_step(nets, images, labels, rows, cfg, rng, denied=[]))
    z = torch.randn(len(pool), cfg.z_dim, device=device)
    with torch.no_grad():
        generate_seconds = _timed(lambda: nets["G_ema"](z, labels))
    return 1 / step_seconds, len(pool) / generate_seconds


def _diffusion_rates(plan: Plan, device) -> tuple[float, float]:
    cfg = DiffusionConfig(**{k: tuple(v) if k == "widths" else v for k, v in plan.diffusion.items() if k in DIFFUSION_SHAPE})
    nets = diffusion_nets(cfg, plan.size, device)
    images = torch.randint(0, 256, (cfg.batch_size, plan.size, plan.size), dtype=torch.uint8, device=device)
    labels = (torch.rand(cfg.batch_size, len(PATHOLOGIES), device=device) < 0.2).float()
    rows, rng, schedule = torch.arange(cfg.batch_size), torch.Generator().manual_seed(0), noise_schedule()
    use_amp = amp_enabled("auto", device)

    def step():
        diffusion_step(nets, (images, labels), rows, schedule, rng, dropout=cfg.label_dropout, use_amp=use_amp)

    step_seconds = _timed(step, 1)
    sampler = DiffusionGenerator(nets["ema"], sample_steps=1, guidance=cfg.guidance, use_amp=use_amp)  # one step, scaled below
    sample_seconds = _timed(lambda: sampler.draw(labels, torch.Generator().manual_seed(0)), 1) * cfg.sample_steps
    return 1 / step_seconds, cfg.batch_size / sample_seconds
