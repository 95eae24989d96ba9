"""A plan's tasks: each a `chexbal` command, what it needs first, and the file that says it is done.

Every finished output is found through the function the stage itself uses (`subset_path`,
`GanConfig.default_run_dir`, `synthetic.folder`, `selection_path`), so a task is done exactly when its
stage would find its work done. Order: the regimens' preparation (smallest first: they write one
image store) and the pool generators, then one regimen after another in the plan's order: its
generators and their sets, its trainings, its generators' checks. A plan that lists its regimens
smallest first (phantom.toml) has the smallest regimen's results and checks first on a CPU, and a
larger regimen's hour-long generation never holds them up; one that lists a larger regimen first
(phantom-cpu.toml) runs it first (on GPUs the generators still train first: runner.next_on_gpu).
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
from chexbal.generators import generate, synthetic
from chexbal.generators.diffusion.train import DiffusionConfig
from chexbal.generators.gan.train import GanConfig

# -P (Python 3.11+): the child imports the chexbal this process runs, never a `chexbal/` folder in
# the working directory (another checkout there once rendered a report its README credited to this one)
CHEXBAL = [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else []), "-m", "chexbal.cli"]


@dataclasses.dataclass
class Task:
    name: str
    command: list[str]  # after `chexbal`
    output: Path  # exists once the task is finished
    kind: str  # prepare, train-gan, train-diffusion, generate-gan, generate-diffusion, train, gan-eval-gan,
    # gan-eval-diffusion: what the estimate prices
    work: float  # in the kind's unit: images to render, GAN steps, images to generate, training images x epochs
    needs: tuple[str, ...] = ()
    steps: int | None = None  # a generator's training: finished when its generator.json records these steps
    epochs: int | None = None  # a classifier's training: finished when its selected run trained these epochs

    def done(self) -> bool:
        if not self.output.exists():
            return False
        if self.steps is not None:
            return json.loads(self.output.read_text()).get("steps") == self.steps
        if self.epochs is not None:  # run folders do not name their epochs: a shorter run must not count
            return selected_epochs(self.output) == self.epochs
        return True

    def work_left(self) -> float:
        """The work still to do: a generator's training that was started resumes from the steps its
        last checkpoint recorded."""
        if self.steps is None or not self.output.exists():
            return self.work
        return max(self.work - json.loads(self.output.read_text()).get("steps", 0), 0)

    def argv(self) -> list[str]:
        """The command line; a generator's training that was started resumes."""
        started = self.steps is not None and (self.output.parent / "last.pt").exists()
        return [*CHEXBAL, *self.command, *(["--resume"] if started else [])]


def selected_epochs(selection: Path) -> int | None:
    """The epochs the run a selection file picked has finished, found beside it as the report finds it
    (None while it is gone or being extended: its metrics.json is written last)."""
    metrics = selection.parent / Path(json.loads(selection.read_text())["selected"]["run"]).name / "metrics.json"
    return json.loads(metrics.read_text()).get("epochs") if metrics.exists() else None


def plan_tasks(plan: Plan, sizes: dict[float, tuple[int, int]]) -> list[Task]:
    """Every task of the plan in the order it should start. `sizes`: per regimen, its (training
    images, test images), for the estimate (`regimen_sizes` reads them from the labels)."""
    fracs = sorted({r.frac for r in plan.regimens} | ({1.0} if _needs_whole_pool(plan) else set()))
    tasks = prepare_tasks(plan, fracs, sizes)
    for model, arm in (("gan", "gan"), ("diffusion", "diffusion")):
        if trains_pool_model(plan, model) and any(arm in r.arms for r in plan.regimens):
            tasks.append(model_task(plan, model, 1.0))
    checks = gan_eval_tasks(plan, sizes)
    for regimen in plan.regimens:
        tasks += generator_tasks(plan, regimen, sizes)
        tasks += [classifier_task(plan, regimen, arm, seed, sizes) for seed in regimen.seeds for arm in regimen.arms]
        tasks += [task for frac, task in checks if frac == regimen.frac]
    tasks += [task for frac, task in checks if frac not in {r.frac for r in plan.regimens}]
    return list({t.name: t for t in tasks}.values())  # at 100% the regimen generator is the pool one


def _needs_whole_pool(plan: Plan) -> bool:
    pool_models = trains_pool_model(plan, "gan") and any("gan" in r.arms for r in plan.regimens)
    pool_models |= trains_pool_model(plan, "diffusion") and any("diffusion" in r.arms for r in plan.regimens)
    return pool_models or any("real-extra" in r.arms for r in plan.regimens)


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


def model_config(plan: Plan, model: str, frac: float, seed: int = 0):
    """The config of the plan's `model` ("gan" or "diffusion") for regimen `frac`: its default run
    folder is where the task's generator lands. The pool model (frac 1) splits with seed 0. `seed`:
    a second generator's training seed (synthetic.Kind.seed); 0 takes the recipe's."""
    split_seed = plan.training.get("split_seed", 0) if frac < 1 else 0
    config = GanConfig if model == "gan" else DiffusionConfig
    return config(frac=frac, split_seed=split_seed, dataset=plan.dataset, seed=seed or int(recipe_of(plan, model).get("seed", 0)))


def recipe_of(plan: Plan, model: str) -> dict:
    return plan.generator if model == "gan" else plan.diffusion


def model_task_name(model: str, frac: float, seed: int = 0) -> str:
    return f"train-{model} {frac:g}" + (f" seed {seed}" if seed else "")


def model_task(plan: Plan, model: str, frac: float, seed: int = 0) -> Task:
    """`chexbal train-gan` or `train-diffusion` on regimen `frac`, with the plan's recipe (and, for a
    second generator of the same rows, its own training seed)."""
    cfg = model_config(plan, model, frac, seed)
    recipe = {**recipe_of(plan, model), **({"seed": seed} if seed else {})}
    command = [f"train-{model}", "--frac", f"{frac:g}", "--split-seed", str(cfg.split_seed), "--dataset", plan.dataset]
    for key, value in recipe.items():
        if key == "widths":  # one option: channels joined by commas
            value = ",".join(map(str, value))
        for item in value if isinstance(value, list) else [value]:
            command += [f"--{key.replace('_', '-')}", str(item)]
    steps = int(recipe.get("steps", cfg.steps))
    output = cfg.default_run_dir() / "generator.json"
    name = model_task_name(model, frac, seed)
    return Task(name, command, output, f"train-{model}", steps, (f"prepare {frac:g}",), steps)


def trains_pool_model(plan: Plan, model: str) -> bool:
    """Whether the plan trains its own pool model of this kind, rather than use the shipped one."""
    return (plan.pool_generator if model == "gan" else plan.pool_diffusion) == "train"


def generator_tasks(plan: Plan, regimen: Regimen, sizes) -> list[Task]:
    """Per generator arm of the regimen, its set and, for a regimen generator, its own model."""
    frac, split_seed = regimen.frac, str(plan.training.get("split_seed", 0))
    tasks = []
    for arm in (a for a in regimen.arms if a in GENERATED):
        generator = GENERATED[arm]
        kind = synthetic.GENERATORS[generator]
        trained_frac = frac if kind.regimen else 1.0
        own = kind.regimen or trains_pool_model(plan, kind.model)
        if kind.regimen:
            tasks.append(model_task(plan, kind.model, frac, kind.seed))
        checkpoint = model_config(plan, kind.model, trained_frac, kind.seed).default_run_dir() / "generator.pt" if own else None
        needs = (f"prepare {frac:g}", *((model_task_name(kind.model, trained_frac, kind.seed),) if own else ()))
        command = [
            "generate",
            "--frac",
            f"{frac:g}",
            "--split-seed",
            split_seed,
            "--generator",
            generator,
            "--dataset",
            plan.dataset,
        ]
        command += ["--checkpoint", str(checkpoint)] if checkpoint else []
        output = synthetic.folder(dataset_folder(plan), frac, generator) / "provenance.json"
        tasks.append(
            Task(f"generate {generator} {frac:g}", command, output, f"generate-{kind.model}", 0.45 * sizes[frac][0], needs)
        )
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
    # the same run folder: a compiled run differs only by dropping each epoch's last partial batch
    command += ["--compile"] if plan.training.get("compile") else []
    needs = [f"prepare {frac:g}"] + (["prepare 1"] if arm == "real-extra" else [])
    needs += [f"generate {GENERATED[arm]} {frac:g}"] if arm in GENERATED else []
    extra = 0.45 * sizes[frac][0] if arm in (*GENERATED, "oversample", "real-extra") else 0  # about the plan's share
    points = 18 if plan.training.get("grid") else 1
    work = points * regimen.epochs * (sizes[frac][0] + extra)
    name = f"train {frac:g} {arm} seed {seed}"
    return Task(name, command, selection_path(cfg), "train", work, tuple(needs), epochs=regimen.epochs)


def gan_eval_tasks(plan: Plan, sizes) -> list[tuple[float, Task]]:
    """Each generator judged by the plan's `none` runs: each pool model once (at the judges' regimen),
    each regimen's own; with the regimen each belongs to."""
    judge_frac, judge_seeds = plan.judges
    judged = next((r for r in plan.regimens if r.frac == judge_frac), None)
    judges = [train_config(plan, judged, "none", s).default_run_dir() for s in judge_seeds] if judged else []
    wanted = []
    for arm, generator in GENERATED.items():
        if synthetic.GENERATORS[generator].regimen:
            wanted += [(generator, r.frac) for r in plan.regimens if arm in r.arms]
        elif any(arm in r.arms for r in plan.regimens):
            wanted.append((generator, judge_frac))
    return [(frac, gan_eval_task(plan, generator, frac, judges)) for generator, frac in wanted]


def gan_eval_task(plan: Plan, generator: str, frac: float, judges: list[Path]) -> Task:
    kind = synthetic.GENERATORS[generator]
    trained_frac = frac if kind.regimen else 1.0
    out = Path("runs") / plan.dataset / f"gan-eval-{generator}-{frac:g}.json"
    own = kind.regimen or trains_pool_model(plan, kind.model)
    shipped = generate.SHIPPED if kind.model == "gan" else generate.SHIPPED_DIFFUSION
    checkpoint = model_config(plan, kind.model, trained_frac, kind.seed).default_run_dir() / "generator.pt" if own else shipped
    images = plan.eval_images if kind.model == "gan" else plan.eval_images_diffusion
    command = ["gan-eval", "--n", str(images), "--classifier", str(judges[0]), "--out", str(out)]
    command += ["--dataset", plan.dataset, *(["--second-judge", str(judges[1])] if len(judges) > 1 else [])]
    command += ["--checkpoint", str(checkpoint)]
    judge_frac, judge_seeds = plan.judges
    needs = tuple(f"train {judge_frac:g} none seed {s}" for s in judge_seeds)
    needs += (model_task_name(kind.model, trained_frac, kind.seed),) if own else ()
    return Task(f"gan-eval {generator} {frac:g}", command, out, f"gan-eval-{kind.model}", images, needs)
