"""An experiment plan: the fair protocol as data (experiments/*.toml), read and checked whole.

A plan names the dataset, the training recipe, the generators' recipes (`[generator]` for the GANs,
`[diffusion]` for the diffusion models; each recipe's `pool` says whether the pool model is the shipped
phantom one or trained with the recipe), the judges of the generator
evaluation, the report, and per regimen the arms, seeds and epochs. `read_plan` refuses a plan that
could not run (an unknown arm or key, a regimen without a prepared source, an arm that cannot run at
its regimen) with one line per problem, before anything runs.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from chexbal.classify.arms import ARMS, GENERATED, is_arm
from chexbal.classify.sweep import GRID
from chexbal.data import sources
from chexbal.errors import ChexbalError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclasses.dataclass(frozen=True)
class Regimen:
    frac: float
    arms: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: int


@dataclasses.dataclass(frozen=True)
class Plan:
    path: Path
    name: str  # the report's name under reports/
    publish: Path | None  # where the report is published, or None
    source: str
    root: Path | None
    size: int
    dataset: str
    prepare_workers: int
    training: dict  # `chexbal sweep` options for every run: lr, batch_size, optimizer (or grid = true), split_seed, weights
    generator: dict  # `chexbal train-gan` options of every regimen GAN (and of a trained pool GAN)
    pool_generator: str  # "shipped" (the phantom's) or "train" (a pool GAN trained with `generator`)
    pool_diffusion: str  # "shipped" (the phantom's) or "train" (the default: trained with `diffusion`)
    diffusion: dict  # `chexbal train-diffusion` options of every diffusion model (pool and regimen)
    judges: tuple[float, tuple[int, ...]]  # the regimen and seeds of the `none` runs that judge the generators
    eval_images: int  # images per generator in its gan-eval
    eval_images_diffusion: int  # the same for a diffusion model (default eval_images; its sampling is slow on a CPU)
    regimens: tuple[Regimen, ...]


TOP = {"name", "publish", "dataset", "training", "generator", "diffusion", "evaluation", "regimen"}
DATASET = {"source", "root", "size", "name", "prepare_workers", "renderer_version"}
TRAINING = {"lr", "batch_size", "optimizer", "grid", "split_seed", "weights", "compile"}
GENERATOR = {"pool", "steps", "batch_size", "base", "negatives", "negatives_from", "seed"}
DIFFUSION = {"pool", "steps", "batch_size", "lr", "widths", "layers", "label_dropout", "sample_steps", "guidance", "seed"}
EVALUATION = {"judge_frac", "judge_seeds", "images", "diffusion_images"}
REGIMEN = {"frac", "arms", "seeds", "epochs"}


def read_plan(path: Path, root: Path | None = None) -> Plan:
    """The plan at `path`, checked; `root` (a CheXpert folder) overrides the plan's dataset.root."""
    path = Path(path)
    if not path.is_file():
        raise ChexbalError(f"no plan file at {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ChexbalError(f"{path} is not valid TOML: {err}") from None
    problems: list[str] = []
    plan = _build(path, raw, root, problems)
    if problems:
        raise ChexbalError(f"{path}: " + "\n".join(problems), 2)
    return plan


def _build(path: Path, raw: dict, root: Path | None, problems: list[str]) -> Plan | None:
    _unknown(raw, TOP, "", problems)
    data = raw.get("dataset", {})
    _unknown(data, DATASET, "dataset.", problems)
    _unknown(raw.get("training", {}), TRAINING, "training.", problems)
    _unknown(raw.get("generator", {}), GENERATOR, "generator.", problems)
    _unknown(raw.get("diffusion", {}), DIFFUSION, "diffusion.", problems)
    _unknown(raw.get("evaluation", {}), EVALUATION, "evaluation.", problems)
    source = data.get("source", "phantom")
    if source not in sources.SOURCES:
        problems.append(f"dataset.source {source!r} is not one of {', '.join(sources.SOURCES)}")
        return None
    _check_renderer(data, source, problems)
    root = root or (Path(data["root"]).expanduser() if data.get("root") else None)
    if source != "phantom" and (root is None or not root.is_dir()):
        problems.append(f"dataset.root {root} is not a folder: give the {source} download (or DATA=… to make reproduce)")
    size = int(data.get("size", sources.SOURCES[source].default_size))
    regimens = tuple(_regimen(r, k, problems) for k, r in enumerate(raw.get("regimen", [])))
    if not regimens:
        problems.append("the plan has no [[regimen]]")
    evaluation = raw.get("evaluation", {})
    judges = (
        float(evaluation.get("judge_frac", regimens[0].frac if regimens else 0.01)),
        tuple(evaluation.get("judge_seeds", (0, 1))),
    )
    _check_judges(judges, regimens, problems)
    generator = dict(raw.get("generator", {}))
    pool = generator.pop("pool", "shipped" if source == "phantom" else "train")
    if pool not in ("shipped", "train") or (pool == "shipped" and source != "phantom"):
        problems.append(f"generator.pool {pool!r}: 'train' (a pool generator with this recipe), or 'shipped' for the phantom")
    if int(generator.get("seed", 0)) == 1 and any("gan-regimen-seed1" in r.arms for r in regimens):
        problems.append("generator.seed 1 is the second regimen GAN's (gan-regimen-seed1): give the first another seed")
    diffusion = dict(raw.get("diffusion", {}))
    pool_diffusion = diffusion.pop("pool", "train")
    _check_pool_diffusion(pool_diffusion, source, problems)
    training = dict(raw.get("training", {}))
    _check_training(training, problems)
    _check_diffusion(diffusion, size, problems)
    return Plan(
        path=path,
        name=raw.get("name", path.stem),
        publish=Path(raw["publish"]) if raw.get("publish") else None,
        source=source,
        root=root,
        size=size,
        dataset=data.get("name", f"{source}-{size}"),
        prepare_workers=int(data.get("prepare_workers", 1)),
        training=training,
        generator=generator,
        pool_generator=pool,
        pool_diffusion=pool_diffusion,
        diffusion=diffusion,
        judges=judges,
        eval_images=int(evaluation.get("images", 2000)),
        eval_images_diffusion=int(evaluation.get("diffusion_images", evaluation.get("images", 2000))),
        regimens=regimens,
    )


def _regimen(raw: dict, k: int, problems: list[str]) -> Regimen:
    where = f"regimen {k + 1}"
    _unknown(raw, REGIMEN, f"{where}: ", problems)
    frac = float(raw.get("frac", 0))
    if not 0 < frac <= 1:
        problems.append(f"{where}: frac must be in (0, 1], not {frac:g}")
    arms = tuple(raw.get("arms", ("none",)))
    problems += [f"{where}: unknown arm {arm!r} (the arms: {', '.join(ARMS)}, synthetic:NAME)" for arm in arms if not is_arm(arm)]
    if frac == 1 and "real-extra" in arms:
        problems.append(f"{where}: real-extra cannot run at frac 1 (no pool patient lies outside the regimen)")
    seeds = raw.get("seeds", 1)
    seeds = tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds)
    epochs = int(raw.get("epochs", 10))
    if not seeds or epochs < 1:
        problems.append(f"{where}: needs at least one seed and one epoch")
    return Regimen(frac, arms, seeds, epochs)


def _check_judges(judges, regimens: tuple[Regimen, ...], problems: list[str]) -> None:
    if not any(arm in GENERATED for r in regimens for arm in r.arms):
        return
    frac, seeds = judges
    judged = next((r for r in regimens if r.frac == frac), None)
    if judged is None or "none" not in judged.arms or not set(seeds) <= set(judged.seeds):
        problems.append(f"evaluation: the judges (none at {frac:g}, seeds {list(seeds)}) are not runs of the plan")


def _check_renderer(data: dict, source: str, problems: list[str]) -> None:
    """A phantom plan may name the renderer version its publication was drawn by, so that running it
    on another version is refused instead of overwriting that publication with another benchmark."""
    from chexbal.data.sources.phantom import RENDERER_VERSION

    version = data.get("renderer_version")
    if version is None:
        return
    if source != "phantom":
        problems.append(f"dataset.renderer_version is for the phantom source, not {source}")
    elif version != RENDERER_VERSION:
        problems.append(
            f"dataset.renderer_version {version}: this plan's publication was drawn by phantom renderer version {version} "
            f"and this chexbal draws {RENDERER_VERSION}; copy the plan with renderer_version = {RENDERER_VERSION} and a new publish folder"
        )


def _check_pool_diffusion(pool: str, source: str, problems: list[str]) -> None:
    from chexbal.generators.generate import SHIPPED_DIFFUSION

    if pool not in ("shipped", "train") or (pool == "shipped" and source != "phantom"):
        problems.append(f"diffusion.pool {pool!r}: 'train' (a pool model with this recipe), or 'shipped' for the phantom")
    elif pool == "shipped" and not SHIPPED_DIFFUSION.is_file():
        problems.append(f"diffusion.pool 'shipped': {SHIPPED_DIFFUSION} is missing (`make diffusion` makes it)")


def _check_diffusion(recipe: dict, size: int, problems: list[str]) -> None:
    from chexbal.generators.diffusion.model import check_shape

    try:
        check_shape(size, tuple(recipe.get("widths", (16, 32, 64, 128))))
    except (ValueError, TypeError) as err:
        problems.append(f"diffusion.widths: {err}")


def _check_training(training: dict, problems: list[str]) -> None:
    if not isinstance(training.get("compile", False), bool):
        problems.append("training.compile: true (torch.compile, CUDA graphs on a GPU) or false")
    if training.get("grid"):
        clash = {"lr", "batch_size", "optimizer"} & set(training)
        if clash:
            problems.append(f"training: grid = true searches {', '.join(GRID)}; drop {', '.join(sorted(clash))}")
    elif not {"lr", "batch_size", "optimizer"} <= set(training):
        problems.append("training: give lr, batch_size and optimizer (one point), or grid = true (the paper's search)")


def _unknown(table: dict, known: set[str], where: str, problems: list[str]) -> None:
    problems += [f"{where}{key}: unknown key (known: {', '.join(sorted(known))})" for key in table if key not in known]
