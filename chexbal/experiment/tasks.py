"""A plan's tasks: each a `chexbal` command, what it needs first, and the file that says it is done.

Every finished output is found through the function the stage itself uses (`subset_path`,
`GanConfig.default_run_dir`, `synthetic.folder`, `selection_path`), so a task is done exactly when its
stage would find its work done. Order: the regimens' preparation, the generators and their sets,
then the trainings (smallest regimen first, so its results come first), then the generator checks.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from chexbal.classify.arms import GENERATED
from chexbal.classify.sweep import selection_path
from chexbal.classify.train import TrainConfig
from chexbal.data.dataset import subset_path
from chexbal.experiment.plan import Plan, Regimen
from chexbal.generators import synthetic
from chexbal.generators.gan.train import GanConfig

CHEXBAL = [sys.executable, "-m", "chexbal.cli"]


@dataclasses.dataclass
class Task:
    name: str
    command: list[str]  # after `chexbal`
    output: Path  # exists once the task is finished
    kind: str  # prepare, train-gan, generate, train, gan-eval: what the estimate prices
    work: float  # in the kind's unit: images to render, GAN steps, images to generate, training images x epochs
    needs: tuple[str, ...] = ()
    steps: int | None = None  # a GAN task: finished when its generator.json records these steps

    def done(self) -> bool:
        if self.steps is None or not self.output.exists():
            return self.output.exists()
        return json.loads(self.output.read_text()).get("steps") == self.steps

    def argv(self) -> list[str]:
        """The command line; a GAN run that was started resumes."""
        started = self.steps is not None and (self.output.parent / "last.pt").exists()
        return [*CHEXBAL, *self.command, *(["--resume"] if started else [])]


def plan_tasks(plan: Plan, sizes: dict[float, tuple[int, int]]) -> list[Task]:
    """Every task of the plan in the order it should start. `sizes`: per regimen, its (training
    images, test images), for the estimate (`regimen_sizes` reads them from the labels)."""
    fracs = sorted({r.frac for r in plan.regimens} | ({1.0} if _needs_whole_pool(plan) else set()))
    tasks = prepare_tasks(plan, fracs, sizes)
    if plan.pool_generator == "train" and any("gan" in r.arms for r in plan.regimens):
        tasks.append(gan_task(plan, 1.0, sizes))
    for regimen in sorted(plan.regimens, key=lambda r: r.frac):
        tasks += generator_tasks(plan, regimen, sizes)
    for regimen in sorted(plan.regimens, key=lambda r: r.frac):
        tasks += [classifier_task(plan, regimen, arm, seed, sizes) for seed in regimen.seeds for arm in regimen.arms]
    tasks += gan_eval_tasks(plan, sizes)
    return list({t.name: t for t in tasks}.values())  # at 100% the regimen generator is the pool one


def _needs_whole_pool(plan: Plan) -> bool:
    return plan.pool_generator == "train" or any("real-extra" in r.arms for r in plan.regimens)


def dataset_folder(plan: Plan) -> Path:
    return Path("data") / plan.dataset


def prepare_tasks(plan: Plan, fracs: list[float], sizes) -> list[Task]:
    """One per regimen, each after the smaller one: they write one image store."""
    source = ["--source", plan.source, *(["--root", str(plan.root)] if plan.root else [])]
    tasks, previous = [], ()
    for frac in fracs:
        command = ["prepare", *source, "--frac", f"{frac:g}", "--size", str(plan.size), "--dataset", plan.dataset]
        command += ["--workers", str(plan.prepare_workers)]
        name = f"prepare {frac:g}"
        tasks.append(Task(name, command, subset_path(dataset_folder(plan), frac), "prepare", sum(sizes[frac]), previous))
        previous = (name,)
    return tasks


def gan_config(plan: Plan, frac: float) -> GanConfig:
    split_seed = plan.training.get("split_seed", 0)
    return GanConfig(frac=frac, split_seed=split_seed if frac < 1 else 0, dataset=plan.dataset)


def gan_task(plan: Plan, frac: float, sizes) -> Task:
    cfg = gan_config(plan, frac)
    command = ["train-gan", "--frac", f"{frac:g}", "--split-seed", str(cfg.split_seed), "--dataset", plan.dataset]
    for key, value in plan.generator.items():
        for item in value if isinstance(value, list) else [value]:
            command += [f"--{key.replace('_', '-')}", str(item)]
    steps = int(plan.generator.get("steps", cfg.steps))
    output = cfg.default_run_dir() / "generator.json"
    return Task(f"train-gan {frac:g}", command, output, "train-gan", steps, (f"prepare {frac:g}",), steps)


def generator_tasks(plan: Plan, regimen: Regimen, sizes) -> list[Task]:
    """The regimen's pool-generator set and, for gan-regimen, its own generator and set."""
    frac, split_seed = regimen.frac, str(plan.training.get("split_seed", 0))
    tasks = []
    for arm in (a for a in regimen.arms if a in GENERATED):
        kind = GENERATED[arm]
        if kind == "pool":
            checkpoint = gan_config(plan, 1.0).default_run_dir() / "generator.pt" if plan.pool_generator == "train" else None
            needs = (f"prepare {frac:g}", *(("train-gan 1",) if checkpoint else ()))
        else:
            tasks.append(gan_task(plan, frac, sizes))
            checkpoint, needs = gan_config(plan, frac).default_run_dir() / "generator.pt", (f"train-gan {frac:g}",)
        command = ["generate", "--frac", f"{frac:g}", "--seed", split_seed, "--generator", kind, "--dataset", plan.dataset]
        command += ["--checkpoint", str(checkpoint)] if checkpoint else []
        output = synthetic.folder(dataset_folder(plan), frac, kind) / "provenance.json"
        tasks.append(Task(f"generate {kind} {frac:g}", command, output, "generate", 0.45 * sizes[frac][0], needs))
    return tasks


def train_config(plan: Plan, regimen: Regimen, arm: str, seed: int) -> TrainConfig:
    point = {k: plan.training[k] for k in ("lr", "batch_size", "optimizer") if k in plan.training}
    return TrainConfig(
        frac=regimen.frac, aug=arm, seed=seed, epochs=regimen.epochs, dataset=plan.dataset, **point
    )  # the default run folder of the grid's points is all a task needs to know


def classifier_task(plan: Plan, regimen: Regimen, arm: str, seed: int, sizes) -> Task:
    frac = regimen.frac
    cfg = train_config(plan, regimen, arm, seed)
    command = ["sweep", "--frac", f"{frac:g}", "--aug", arm, "--seed", str(seed), "--epochs", str(regimen.epochs)]
    command += ["--dataset", plan.dataset, "--split-seed", str(plan.training.get("split_seed", 0))]
    if not plan.training.get("grid"):
        command += ["--lr", str(cfg.lr), "--batch-size", str(cfg.batch_size), "--optimizer", cfg.optimizer]
    if plan.training.get("weights"):
        command += ["--weights", str(plan.training["weights"])]
    needs = [f"prepare {frac:g}"] + (["prepare 1"] if arm == "real-extra" else [])
    needs += [f"generate {GENERATED[arm]} {frac:g}"] if arm in GENERATED else []
    extra = 0.45 * sizes[frac][0] if arm in (*GENERATED, "oversample", "real-extra") else 0  # about the plan's share
    points = 18 if plan.training.get("grid") else 1
    work = points * regimen.epochs * (sizes[frac][0] + extra)
    return Task(f"train {frac:g} {arm} seed {seed}", command, selection_path(cfg), "train", work, tuple(needs))


def gan_eval_tasks(plan: Plan, sizes) -> list[Task]:
    """Each generator judged by the plan's `none` runs: the pool generator once, each regimen's own."""
    judge_frac, judge_seeds = plan.judges
    judged = next((r for r in plan.regimens if r.frac == judge_frac), None)
    judges = [train_config(plan, judged, "none", s).default_run_dir() for s in judge_seeds] if judged else []
    wanted = [("pool", judge_frac)] if any("gan" in r.arms for r in plan.regimens) else []
    wanted += [("regimen", r.frac) for r in plan.regimens if "gan-regimen" in r.arms]
    tasks = []
    for kind, frac in wanted:
        out = Path("runs") / plan.dataset / f"gan-eval-{kind}-{frac:g}.json"
        checkpoint = gan_config(plan, 1.0 if kind == "pool" else frac).default_run_dir() / "generator.pt"
        own = kind == "regimen" or plan.pool_generator == "train"
        command = ["gan-eval", "--n", str(plan.eval_images), "--classifier", str(judges[0]), "--out", str(out)]
        command += ["--dataset", plan.dataset, *(["--second-judge", str(judges[1])] if len(judges) > 1 else [])]
        command += ["--checkpoint", str(checkpoint)] if own else []
        needs = tuple(f"train {judge_frac:g} none seed {s}" for s in judge_seeds)
        needs += (f"train-gan {1 if kind == 'pool' else frac:g}",) if own else ()
        tasks.append(Task(f"gan-eval {kind} {frac:g}", command, out, "gan-eval", plan.eval_images, needs))
    return tasks
