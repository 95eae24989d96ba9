"""The Typer app: thin commands over the stage functions. User errors end here as one red line."""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from chexbal.data.dataset import DEFAULT_DATASET, locate
from chexbal.errors import ChexbalError
from chexbal.progress import console, results

app = typer.Typer(
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Does GAN augmentation of rare chest X-ray findings beat flips or nothing, and at which data sizes?",
)


def show_version(value: bool) -> None:
    if value:
        from chexbal import __version__

        typer.echo(f"chexbal {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Does generated data of rare chest X-ray findings beat the obvious alternatives, and at which data sizes?"""


DataDir = Annotated[Path, typer.Option(help="Folder holding prepared datasets.")]
Dataset = Annotated[str, typer.Option(help="Prepared dataset name (a folder in --data-dir).")]
Frac = Annotated[float, typer.Option(help="Regimen: the fraction of the pool (non-test patients), in (0, 1].")]
Seed = Annotated[int, typer.Option(help="Seed of the test split and of the phantom's rendering.")]
Aug = Annotated[
    str,
    typer.Option(
        metavar="ARM",
        help="Arm: none, standard (h/v flips), affine (rotation, shift, scale), weighted (positive "
        "weights in the loss), oversample, gan (pool GAN), gan-regimen (regimen GAN), gan-regimen-seed1 (a second regimen GAN, seed 1), diffusion (pool "
        "diffusion model), diffusion-regimen (regimen diffusion model), real-extra (real positives from "
        "outside the regimen).",
    ),
]
PosWeightCap = Annotated[
    float, typer.Option(help="weighted: the largest positive weight (negatives / positives is capped here).")
]
Weights = Annotated[
    str,
    typer.Option(
        help="Initial weights: random, imagenet (torchvision's, the paper's), nih (torchxrayvision's, from its cache) "
        "or a local torchxrayvision/torchvision DenseNet-121 file. Recorded in config.json."
    ),
]
RunsRoot = Annotated[Path, typer.Option("--runs", help="Folder of the default run folders (runs/<dataset>/frac-<F>/<aug>/…).")]
Checkpoint = Annotated[
    Optional[Path],
    typer.Option(
        help="Generator checkpoint (a regimen generator: runs/gan/ or runs/diffusion/<dataset>/frac-<F>/generator.pt).",
        show_default="the shipped phantom-64 generator of that kind",
    ),
]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")]
Compile = Annotated[
    bool,
    typer.Option(
        "--compile",
        help="torch.compile the model, with CUDA graphs on a GPU; drops each epoch's last partial batch (one shape).",
    ),
]
SamplingAmp = Annotated[
    str,
    typer.Option(
        help="A diffusion model samples in bf16 autocast: auto (CUDA, or CPUs with bf16 units), on, off (a GAN: fp32 always)."
    ),
]
OptionalSplitSeed = Annotated[
    Optional[int], typer.Option(help="Seed of the train/validation split by patient.", show_default="--seed")
]
GeneratorSeed = Annotated[int, typer.Option(help="Seed of initialisation and of each step's draws (the split: --split-seed).")]
SplitSeed = Annotated[int, typer.Option(help="Seed of the train/validation split (by patient) whose training rows are used.")]


def user_errors(command):
    """Show a ChexbalError (and a full disk) as one red line and exit non-zero, never as a traceback;
    a real bug keeps its traceback. CHEXBAL_DEBUG=1 shows the traceback of a full disk too."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ChexbalError as err:
            console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            sys.exit(err.exit_code)
        except OSError as err:
            if err.errno != errno.ENOSPC or os.environ.get("CHEXBAL_DEBUG") == "1":
                raise
            where = f" writing {err.filename}" if err.filename else ""
            message = f"no space left on the device{where}: free space and run the same command again"
            console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            sys.exit(1)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: run the same command again to resume[/]")
            sys.exit(130)

    return wrapper


@app.command()
@user_errors
def prepare(
    *,
    source: Annotated[str, typer.Option(help="phantom (embedded, needs no files) or chexpert.")] = "phantom",
    root: Annotated[Optional[Path], typer.Option(help="CheXpert folder holding train.csv (--source chexpert).")] = None,
    frac: Frac = 0.01,
    size: Annotated[Optional[int], typer.Option(help="Image side in pixels.", show_default="64 phantom, 224 chexpert")] = None,
    seed: Seed = 0,
    views: Annotated[str, typer.Option(help="frontal or all.")] = "frontal",
    uncertain: Annotated[str, typer.Option(help="Uncertain labels become ones (U-Ones, the paper's) or zeros.")] = "ones",
    data_dir: DataDir = Path("data"),
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name.", show_default="<source>-<size>")] = None,
    skip_bad: Annotated[bool, typer.Option(help="Skip missing or unreadable images, recorded in skipped.csv.")] = False,
    workers: Annotated[Optional[int], typer.Option(help="Processes decoding or rendering.", show_default="all cores")] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Read every written chunk first and draw the damaged ones again.")
    ] = False,
) -> None:
    """Turn the phantom data or a CheXpert download into data/<dataset>/ for one regimen."""
    options = locals()
    from chexbal.data.prepare import prepare as run

    folder = run(**options)
    console.print(f"prepared {folder} (regimen {frac:g})")


@app.command()
@user_errors
def info(
    *, dataset: Annotated[str, typer.Argument(help="Prepared dataset name.")] = DEFAULT_DATASET, data_dir: DataDir = Path("data")
) -> None:
    """Per-class positives, uncertain labels and prevalence for the pool, the test set and each regimen."""
    from chexbal.data.info import class_table, groups

    folder = locate(data_dir, dataset)
    found = groups(folder)
    table_data = class_table(folder, found)
    table = Table(title=f"{dataset}: raw positives / uncertain, prevalence after the label policy")
    table.add_column("class")
    for name, rows in found.items():
        table.add_column(f"{name}\n{len(rows)} img, {rows['patient'].nunique()} pat", justify="right")
    for cls, row in table_data.iterrows():
        cells = [f"{int(row[(g, 'positive')])}/{int(row[(g, 'uncertain')])} {row[(g, 'prevalence')]:.1%}" for g in found]
        table.add_row(cls, *cells)
    results.print(table)


def build_config(cls, options: dict):
    """A stage's config dataclass from a command's options: paths as strings, --runs as runs_root,
    and only the options the config has (a command also parses options of its own)."""
    names = {field.name for field in dataclasses.fields(cls)}
    values = {("runs_root" if k == "runs" else k): (str(v) if isinstance(v, Path) else v) for k, v in options.items()}
    return cls(**{k: v for k, v in values.items() if k in names})


@app.command()
@user_errors
def train(
    *,
    frac: Frac = 0.01,
    aug: Aug = "none",
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 32,
    optimizer: Annotated[str, typer.Option(help="sgd (momentum 0.9) or adam.")] = "adam",
    epochs: Annotated[int, typer.Option(help="Epochs (the paper: 10).")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, batch order and augmentation.")] = 0,
    split_seed: OptionalSplitSeed = None,
    pos_weight_cap: PosWeightCap = 20.0,
    weights: Weights = "random",
    device: Device = "auto",
    amp: Annotated[str, typer.Option(help="bf16 autocast: auto (CUDA, or CPUs with bf16 units), on, off.")] = "auto",
    data_dir: DataDir = Path("data"),
    dataset: Dataset = DEFAULT_DATASET,
    runs: RunsRoot = Path("runs"),
    run_dir: Annotated[
        Optional[Path], typer.Option(help="Run folder.", show_default="runs/<dataset>/frac-<F>/<aug>/<hyperparameters>")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --run-dir.")] = False,
    compile: Compile = False,
) -> None:
    """Fine-tune DenseNet-121 on one regimen and score the test set with the best epoch.

    Runs unchanged under `torchrun --nproc-per-node=N` (DistributedDataParallel; rank 0 writes)."""
    options = locals()
    from chexbal.classify.train import TrainConfig
    from chexbal.classify.train import train as run

    console.print(f"run written to {run(build_config(TrainConfig, options), resume=resume)}")


@app.command()
@user_errors
def sweep(
    *,
    frac: Frac = 0.01,
    aug: Aug = "none",
    lr: Annotated[
        Optional[list[float]], typer.Option(help="Learning rates to try (repeat).", show_default="1e-2 5e-3 1e-3")
    ] = None,
    batch_size: Annotated[Optional[list[int]], typer.Option(help="Batch sizes (repeat).", show_default="16 32 64")] = None,
    optimizer: Annotated[Optional[list[str]], typer.Option(help="Optimizers (repeat).", show_default="sgd adam")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs per run.")] = 10,
    seed: Annotated[
        Optional[list[int]], typer.Option(help="Training seeds (repeat): one validation pick per seed.", show_default="0")
    ] = None,
    split_seed: OptionalSplitSeed = None,
    pos_weight_cap: PosWeightCap = 20.0,
    amp: Annotated[str, typer.Option(help="bf16 autocast: auto (CUDA, or CPUs with bf16 units), on, off.")] = "auto",
    compile: Compile = False,
    weights: Weights = "random",
    device: Device = "auto",
    data_dir: DataDir = Path("data"),
    dataset: Dataset = DEFAULT_DATASET,
    runs: RunsRoot = Path("runs"),
    workers: Annotated[Optional[int], typer.Option(help="local: runs at once.", show_default="one per GPU, else 1")] = None,
    launcher: Annotated[str, typer.Option(help="local (this machine) or slurm (a submitit job array).")] = "local",
    partition: Annotated[Optional[str], typer.Option(help="slurm: partition.")] = None,
    gpus: Annotated[int, typer.Option(help="slurm: GPUs per job.")] = 1,
    cpus: Annotated[int, typer.Option(help="slurm: CPUs per job.")] = 8,
    minutes: Annotated[int, typer.Option(help="slurm: time limit per job, minutes.")] = 240,
    parallel: Annotated[int, typer.Option(help="slurm: array jobs running at once.")] = 18,
) -> None:
    """The paper's grid (lr x batch size x optimizer) for one regimen and arm, per seed; picks by validation AUC."""
    gridded = {"lr", "batch_size", "optimizer", "seed"}  # lists here: the grid fills them per point
    options = {k: v for k, v in locals().items() if k not in gridded}
    from chexbal.classify.sweep import SlurmOptions, grid
    from chexbal.classify.sweep import sweep as run
    from chexbal.classify.train import TrainConfig

    base = build_config(TrainConfig, options)
    slurm = SlurmOptions(partition, gpus, cpus, minutes, parallel)
    paths = run(grid(base, lr, batch_size, optimizer, seed), workers=workers, launcher=launcher, slurm=slurm)
    console.print(f"selection written to {', '.join(map(str, paths))}")


@app.command()
@user_errors
def plan(
    *,
    frac: Frac = 0.01,
    share: Annotated[float, typer.Option(help="Least share of each target in the augmented training set.")] = 0.15,
    split_seed: SplitSeed = 0,
    source: Annotated[
        str,
        typer.Option(
            help="prepared (a dataset in --data-dir) or chexpert-labels (torchxrayvision's CheXpert labels, no images)."
        ),
    ] = "prepared",
    views: Annotated[str, typer.Option(help="frontal or all (chexpert-labels only).")] = "frontal",
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    data_dir: DataDir = Path("data"),
    dataset: Dataset = DEFAULT_DATASET,
) -> None:
    """Table 1: the fewest generated images so each target is at least --share of the training set."""
    import json

    from chexbal.generators.plan import make_plan, training_rows_for

    folder = locate(data_dir, dataset) if source == "prepared" else None
    result = make_plan(training_rows_for(source, frac, split_seed, folder, views), share, split_seed)
    if as_json:
        typer.echo(json.dumps(result.summary(), indent=2))
        return
    table = Table(title=f"generation plan, regimen {frac:g}, share {share:g}")
    for column in ("real images", *result.generate, "augmented"):
        table.add_column(column, justify="right")
    table.add_row(str(result.real), *map(str, result.generate.values()), str(result.augmented))
    table.add_row("final share", *(f"{v:.2%}" for v in result.share.values()), "")
    results.print(table)


@app.command("train-gan")
@user_errors
def train_gan(
    *,
    frac: Annotated[
        float, typer.Option(help="Train on this regimen's training rows (1 = the pool generator, as the paper's).")
    ] = 1.0,
    steps: Annotated[int, typer.Option(help="Optimisation steps (the defaults are the shipped generator's recipe).")] = 5250,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate of the generator and the discriminator.")] = 2e-4,
    base: Annotated[int, typer.Option(help="Channels at the highest inner resolution (width of both nets).")] = 32,
    target_share: Annotated[float, typer.Option(help="Share of each batch drawn from rows positive for a target finding.")] = 0.5,
    aux_weight: Annotated[
        float, typer.Option(help="Weight of the label classifier's loss on generated images, in G's objective.")
    ] = 3.0,
    negatives: Annotated[
        list[str],
        typer.Option(
            help="A finding the label classifier learns to deny on generated images asked for it (repeatable; none: no finding)."
        ),
    ] = ["Pleural Other"],  # noqa: B006 - Typer reads the default, never mutates it
    negatives_from: Annotated[int, typer.Option(help="Step from which --negatives apply.")] = 4750,
    seed: GeneratorSeed = 0,
    split_seed: SplitSeed = 0,
    sample_every: Annotated[int, typer.Option(help="Steps between sample grids.")] = 500,
    device: Device = "auto",
    data_dir: DataDir = Path("data"),
    dataset: Dataset = DEFAULT_DATASET,
    run_dir: Annotated[Optional[Path], typer.Option(help="Run folder.", show_default="runs/gan/<dataset>/frac-<F>")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --run-dir.")] = False,
) -> None:
    """Train the label-conditioned GAN on a regimen's training rows (never its validation or test patients)."""
    options = {**locals(), "negatives": tuple(n for n in negatives if n != "none")}
    from chexbal.generators.gan.train import GanConfig
    from chexbal.generators.gan.train import train_gan as run

    folder = run(build_config(GanConfig, options), resume=resume)
    console.print(f"GAN run written to {folder}; generator: {folder / 'generator.pt'}")


@app.command("train-diffusion")
@user_errors
def train_diffusion(
    *,
    frac: Annotated[float, typer.Option(help="Train on this regimen's training rows (1 = the pool model).")] = 1.0,
    steps: Annotated[int, typer.Option(help="Optimisation steps.")] = 8000,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 32,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 3e-4,
    widths: Annotated[
        str, typer.Option(help="UNet channels per resolution, full size first (comma-separated).")
    ] = "16,32,64,128",
    layers: Annotated[int, typer.Option(help="ResNet layers per UNet block.")] = 1,
    label_dropout: Annotated[float, typer.Option(help="Share of rows trained without their label (for guidance).")] = 0.1,
    target_share: Annotated[float, typer.Option(help="Share of each batch drawn from rows positive for a target finding.")] = 0.5,
    sample_steps: Annotated[int, typer.Option(help="DDIM steps when sampling (recorded with the model).")] = 25,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance scale (0: ignore the label, 1: none).")] = 2.0,
    seed: GeneratorSeed = 0,
    split_seed: SplitSeed = 0,
    sample_every: Annotated[int, typer.Option(help="Steps between sample grids.")] = 1000,
    amp: Annotated[str, typer.Option(help="bf16 autocast: auto (CUDA, or CPUs with bf16 units), on, off.")] = "auto",
    device: Device = "auto",
    data_dir: DataDir = Path("data"),
    dataset: Dataset = DEFAULT_DATASET,
    run_dir: Annotated[Optional[Path], typer.Option(help="Run folder.", show_default="runs/diffusion/<dataset>/frac-<F>")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --run-dir.")] = False,
) -> None:
    """Train the label-conditioned diffusion model on a regimen's training rows (never its validation or test patients)."""
    options = {**locals(), "widths": parse_widths(widths)}
    from chexbal.generators.diffusion.train import DiffusionConfig
    from chexbal.generators.diffusion.train import train_diffusion as run

    folder = run(build_config(DiffusionConfig, options), resume=resume)
    console.print(f"diffusion run written to {folder}; model: {folder / 'generator.pt'}")


def parse_widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ChexbalError(f"--widths must be comma-separated channel counts such as 16,32,64,128, not {text!r}", 2) from None


@app.command()
@user_errors
def generate(
    *,
    frac: Frac = 0.01,
    checkpoint: Checkpoint = None,
    split_seed: Annotated[
        int, typer.Option(help="Split seed the plan draws its training rows from (as `train --split-seed`); seeds the latents.")
    ] = 0,
    share: Annotated[float, typer.Option(help="Least share of each target in the augmented training set.")] = 0.15,
    generator: Annotated[
        str,
        typer.Option(
            help="pool (the `gan` arm's set), regimen (`gan-regimen`'s, from `train-gan --frac F`), regimen-seed1 "
            "(`gan-regimen-seed1`'s, from `train-gan --frac F --seed 1`), diffusion "
            "(`diffusion`'s) or diffusion-regimen (`diffusion-regimen`'s, from `train-diffusion --frac F`)."
        ),
    ] = "pool",
    device: Device = "auto",
    amp: SamplingAmp = "auto",
    data_dir: DataDir = Path("data"),
    dataset: Dataset = DEFAULT_DATASET,
) -> None:
    """Generate the regimen's planned images into data/<dataset>/synthetic/frac-<F>[-<generator>]/."""
    options = locals()
    from chexbal.generators.generate import generate as run

    folder = run(**options)
    console.print(f"generated set written to {folder}")


@app.command("import-synthetic")
@user_errors
def import_synthetic(
    source: Annotated[Path, typer.Argument(help="A folder of PNG/JPEG images, or a .zarr array of uint8 images (N, S, S).")],
    *,
    labels: Annotated[Path, typer.Option(help="CSV: Path (relative to the folder; not for .zarr) and the 14 label columns.")],
    name: Annotated[str, typer.Option(help="The set's name: train it with --aug synthetic:NAME.")],
    trained_on: Annotated[str, typer.Option(help="What the generator was trained on, in words (shown in the report).")],
    trained_on_rows: Annotated[
        Optional[Path], typer.Option(help="A CSV of the rows the generator was trained on, when known (counted and hashed).")
    ] = None,
    frac: Frac = 0.01,
    split_seed: SplitSeed = 0,
    share: Annotated[float, typer.Option(help="Least share of each target in the augmented training set.")] = 0.15,
    resize: Annotated[bool, typer.Option(help="Resize images of another size to the dataset's (bilinear).")] = False,
    allow_short: Annotated[bool, typer.Option(help="Take fewer images than the plan asks for (the report says so).")] = False,
    data_dir: DataDir = Path("data"),
    dataset: Dataset = DEFAULT_DATASET,
) -> None:
    """Bring any generator's images into a regimen's synthetic set, for the fair protocol (--aug synthetic:NAME)."""
    from chexbal.generators.imported import import_synthetic as run

    where, taken = run(
        source, labels, frac, name, declared=trained_on, declared_rows=trained_on_rows, resize=resize,
        allow_short=allow_short, split_seed=split_seed, share=share, data_dir=data_dir, dataset=dataset,
    )  # fmt: skip
    counts = ", ".join(f"{t} {c['taken']} of {c['planned']}" for t, c in taken.items())
    notes = [note for note, on in (("resized to the dataset's size", resize), ("short of the plan", allow_short)) if on]
    console.print(
        f"imported into {where} ({counts}{'; ' + ', '.join(notes) if notes else ''}); train it with --aug synthetic:{name}"
    )


@app.command("gan-eval")
@user_errors
def gan_eval(
    *,
    classifier: Annotated[Path, typer.Option(help="The judge: a `chexbal train --aug none` run folder (real images only).")],
    second_judge: Annotated[
        Optional[Path], typer.Option(help="Another `--aug none` run (another seed) to check the first judge.")
    ] = None,
    checkpoint: Checkpoint = None,
    imported: Annotated[
        Optional[str], typer.Option(help="Judge an imported set (`import-synthetic --name`) instead of a generator.")
    ] = None,
    frac: Annotated[float, typer.Option(help="The imported set's regimen (with --imported).")] = 0.01,
    n: Annotated[int, typer.Option(help="Images to generate.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the evaluation's label vectors and latents.")] = 0,
    amp: SamplingAmp = "auto",
    data_dir: DataDir = Path("data"),
    dataset: Dataset = DEFAULT_DATASET,
    out: Annotated[Optional[Path], typer.Option(help="JSON file.", show_default="runs/<dataset>/gan-eval.json")] = None,
) -> None:
    """Fréchet distance, label fidelity and counterfactual fidelity of a generator (of an imported set:
    what can be measured without its generator), judged by no-augmentation runs."""
    import pandas as pd

    from chexbal.generators.evaluation import gan_eval as run
    from chexbal.generators.evaluation import imported_eval, quality_table

    out = out or Path("runs") / dataset / (f"gan-eval-import-{imported}-{frac:g}.json" if imported else "gan-eval.json")
    if imported:
        result = imported_eval(classifier, imported, frac, data_dir=data_dir, dataset=dataset, out=out)
    else:
        result = run(
            classifier, checkpoint, n=n, seed=seed, amp=amp, data_dir=data_dir, dataset=dataset, out=out,
            second_judge=second_judge,
        )  # fmt: skip
    table = Table(title=f"Generator quality ({result['generated']} generated images)")
    rows = quality_table(result)
    for column in rows.columns:
        table.add_column(column, justify="right")
    for row in rows.itertuples(index=False):
        table.add_row(*(("" if pd.isna(v) else str(v)) for v in row))
    results.print(table)
    console.print(f"written to {out}")


def parse_only(specs: list[str]) -> dict[tuple[float, str], tuple[int, ...]]:
    only = {}
    for spec in specs:
        try:
            frac, arm, seeds = spec.split(":")
            only[(float(frac), arm)] = tuple(int(seed) for seed in seeds.split(","))
        except ValueError:
            raise ChexbalError(f"--only {spec!r} is not FRAC:ARM:SEED[,SEED…], such as 0.1:gan:0,1,2", 2) from None
    return only


@app.command()
@user_errors
def report(
    *,
    name: Annotated[str, typer.Option(help="Report folder name under --out.")] = "phantom",
    runs: Annotated[Path, typer.Option(help="Folder holding classifier runs.")] = Path("runs"),
    out: Annotated[Path, typer.Option(help="Folder for reports.")] = Path("reports"),
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the confidence intervals.")] = 1000,
    regimen: Annotated[
        Optional[list[float]],
        typer.Option(
            help="A regimen the report should have (repeat it); one with no finished run is marked as a gap. "
            "Default: the regimens prepared."
        ),
    ] = None,
    only: Annotated[
        Optional[list[str]],
        typer.Option(
            help="Report only these runs (repeat it): FRAC:ARM:SEED[,SEED…], e.g. 0.1:gan:0,1,2, and only the "
            "generated samples and gan-eval results of their arms; `experiment` passes its plan's. Default: every "
            "finished run under --runs."
        ),
    ] = None,
    data_dir: DataDir = Path("data"),
    dataset: Dataset = DEFAULT_DATASET,
) -> None:
    """Tables 1 and 2 with CIs and paired tests, samples, learning curves, CAMs, generator quality."""
    from chexbal.analysis.report import report as run

    kept = parse_only(only) if only else None
    folder = run(
        name=name,
        runs_root=runs,
        data_dir=data_dir,
        dataset=dataset,
        out_root=out,
        n_boot=n_boot,
        planned=regimen or (),
        only=kept,
    )
    console.print(f"report written to {folder / 'report.html'} (and report.md)")


@app.command()
@user_errors
def experiment(
    plan: Annotated[Path, typer.Argument(help="Plan file, e.g. experiments/phantom.toml.")],
    *,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the plan, list its tasks and their time; run nothing.")
    ] = False,
    launcher: Annotated[str, typer.Option(help="local (processes on this machine) or slurm (submitit job arrays).")] = "local",
    parallel: Annotated[
        Optional[int], typer.Option(help="local: tasks at once.", show_default="2 on a CPU; per GPU 8 at 64 px, else 2")
    ] = None,
    publish_only: Annotated[
        bool, typer.Option("--publish-only", help="Report what is done and publish it; run nothing.")
    ] = False,
    root: Annotated[Optional[Path], typer.Option(help="The dataset's folder, overriding the plan's dataset.root.")] = None,
    estimate: Annotated[
        bool,
        typer.Option(
            "--estimate/--no-estimate",
            help="Measure throughput here to price the tasks left (tens of seconds on a CPU); --no-estimate starts at once.",
        ),
    ] = True,
) -> None:
    """The fair protocol of a plan file: every regimen, arm and seed, resumable, then the published report."""
    from chexbal.experiment.run import Options
    from chexbal.experiment.run import experiment as run

    options = Options(
        dry_run=dry_run, launcher=launcher, parallel=parallel, publish_only=publish_only, estimate=estimate, root=root
    )
    left = run(plan, options, command=" ".join(["chexbal", *sys.argv[1:]]))
    if left:
        raise ChexbalError(f"{len(left)} tasks did not finish ({', '.join(left[:3])}…): see their logs, fix, and run again")


# `chexbal --help` lists the commands in the pipeline's order.
PIPELINE = (
    "prepare",
    "info",
    "plan",
    "train-gan",
    "train-diffusion",
    "generate",
    "import-synthetic",
    "gan-eval",
    "train",
    "sweep",
    "experiment",
    "report",
)
app.registered_commands.sort(key=lambda c: PIPELINE.index(c.name or c.callback.__name__))

if __name__ == "__main__":
    app()
