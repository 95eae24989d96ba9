"""`chexbal generate`: run a regimen's plan through the generator into a synthetic store.

The plan's label vectors (drawn from the regimen's training rows only) condition one image each.
Blocks are generated with a latent stream seeded per block, so an interrupted run resumes by
generating the missing blocks and ends with the same images.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import zarr

from chexbal import files, stopping
from chexbal.data import store
from chexbal.data.dataset import DEFAULT_DATASET, locate, settings, training_rows
from chexbal.data.labels import PATHOLOGIES, label_matrix
from chexbal.devices import amp_enabled, keep_precision, pick_device
from chexbal.errors import ChexbalError
from chexbal.generators import synthetic
from chexbal.generators.gan.nets import Generator, to_uint8
from chexbal.generators.plan import SHARE, make_plan
from chexbal.generators.training import model_run_dir
from chexbal.progress import bar
from chexbal.seeds import stream

WEIGHTS = Path(__file__).parents[1] / "weights"
SHIPPED = WEIGHTS / "phantom-64-generator.pt"  # the pool GAN
SHIPPED_DIFFUSION = WEIGHTS / "phantom-64-diffusion.pt"  # the pool diffusion model (`make diffusion` remakes it)


def load_generator(path: Path, dataset_settings: dict, device: torch.device):
    """A generator (GAN or diffusion model) rebuilt from its checkpoint's config, refused if it does
    not fit the dataset (its recorded settings: size, and for a phantom the renderer version).
    Both kinds offer `draw(labels, rng)`."""
    size = dataset_settings["size"]
    if not path.is_file() and path == SHIPPED_DIFFUSION:
        raise ChexbalError(
            f"the shipped diffusion model {path} is missing: remake it (`make diffusion`) or train one "
            "(`chexbal train-diffusion --frac 1`) and pass --checkpoint runs/diffusion/<dataset>/frac-1/generator.pt"
        )
    if not path.is_file():
        raise ChexbalError(
            f"generator checkpoint {path} not found: train one with `chexbal train-gan` or `chexbal train-diffusion`"
        )
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        config, weights = saved["config"], saved["generator"]
    except Exception as err:  # any unreadable or foreign file
        raise ChexbalError(f"{path} is not a chexbal generator checkpoint ({type(err).__name__})") from None
    if config.get("labels") != list(PATHOLOGIES):
        raise ChexbalError(f"{path} was trained on another label set ({config.get('labels')}), not CheXpert's 14 in CSV order")
    if config.get("size") != size:
        raise ChexbalError(f"{path} makes {config.get('size')} px images, but the dataset holds {size} px images")
    check_renderer(path, config, dataset_settings)
    network, generator = build_generator(config)
    try:
        network.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})
    except (RuntimeError, ValueError):
        raise ChexbalError(f"{path}'s weights do not match its config: it was written by another chexbal") from None
    return generator.to(device).eval(), config


def build_generator(config: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The network whose weights a checkpoint holds, and the generator that draws with it."""
    if model_kind(config) == "diffusion":
        from chexbal.generators.diffusion.model import DiffusionGenerator, LabelConditionedUNet  # diffusers: seconds to import

        network = LabelConditionedUNet(config["size"], tuple(config["widths"]), config["layers"])
        return network, DiffusionGenerator(network, config["sample_steps"], config["guidance"])
    network = Generator(config["size"], config["z_dim"], config["base"])
    return network, network


def model_kind(config: dict) -> str:
    return config.get("kind", "gan")  # GANs were written before the kind was recorded


def check_renderer(path: Path, config: dict, dataset_settings: dict) -> None:
    """A phantom generator draws the signs of the renderer whose images it learnt from: refuse one
    made on another version (generators written before versions were recorded learnt version 1)."""
    if dataset_settings.get("source") != "phantom":
        return
    made = (config.get("trained_on") or {}).get("renderer_version", 1)
    if made != dataset_settings.get("renderer_version"):
        raise ChexbalError(
            f"{path} learnt from phantom renderer version {made}, the dataset is drawn by version "
            f"{dataset_settings.get('renderer_version')}: it draws other signs; retrain it (`make generator` or `chexbal train-gan`)"
        )


def generate(
    frac: float,
    checkpoint: Path | None = None,
    *,
    split_seed: int = 0,
    share: float = SHARE,
    data_dir: Path = Path("data"),
    dataset: str = DEFAULT_DATASET,
    device: str = "auto",
    quiet: bool = False,
    generator: str = "pool",
    amp: str = "auto",
) -> Path:
    """Generate regimen `frac`'s planned images with the pool generator (default: the shipped one) or
    the regimen's own (default: runs/gan/<dataset>/frac-<F>/generator.pt). `split_seed` is the split seed
    the plan draws its training rows from, and seeds the latents. `amp`: whether a diffusion model
    samples in bf16 (sampling_in_bf16); a GAN's forward pass costs milliseconds and stays in fp32."""
    if generator not in synthetic.GENERATORS:
        raise ChexbalError(f"--generator must be one of {', '.join(synthetic.GENERATORS)}, not {generator!r}", 2)
    folder = locate(Path(data_dir), dataset)
    dataset_settings = settings(folder)
    size = dataset_settings["size"]
    checkpoint = Path(checkpoint or default_checkpoint(generator, dataset, frac))
    torch_device = pick_device(device)
    net, generator_config = load_generator(checkpoint, dataset_settings, torch_device)
    seen = trained_on(generator_config)
    check_kind(checkpoint, generator_config, generator, (frac, split_seed))
    plan = make_plan(training_rows(folder, frac, split_seed), share, split_seed)
    where = synthetic.folder(folder, frac, generator)
    net.use_amp = sampling_in_bf16(where / "images.zarr", amp, generator_config, torch_device)
    recorded = {
        "kind": "synthetic",
        "checkpoint_sha256": files.sha256(checkpoint),
        "seed": split_seed,
        "share": share,
        "frac": frac,
        **({"sampling": "bf16"} if getattr(net, "use_amp", False) else {}),  # absent: fp32, as in sets made before
    }
    images = store.open_or_create(where / "images.zarr", max(len(plan.vectors), 1), size, recorded)
    labels = plan.vectors.assign(index=np.arange(len(plan.vectors)))[["index", "target", *PATHOLOGIES]]
    provenance = {
        **recorded,
        "split_seed": split_seed,
        "generator_kind": generator,
        "checkpoint": str(checkpoint),
        "trained_on": seen,
        "generator": generator_config,
        "plan": plan.summary(),
        "dataset": dataset,
    }
    vectors = torch.from_numpy(label_matrix(labels))
    blocks = store.missing_blocks(images, len(labels))
    with files.locked(where, "generate"), stopping.graceful(), bar(disable=quiet or not blocks) as progress:
        task = progress.add_task(f"generate → {where.name}", total=len(blocks), note=f"{len(labels)} images")
        fill(images, blocks, net, vectors, split_seed, advance=lambda: progress.update(task, advance=1))
    store.mark_complete(images, len(labels))
    files.write_atomic(where / "labels.csv", labels.to_csv(index=False))
    files.write_atomic(where / "provenance.json", json.dumps(provenance, indent=2))
    return where


def check_sampling_amp(amp: str, config: dict, device: torch.device) -> bool:
    """Whether `--amp` may put this model's sampling in bf16 here: a diffusion model's yes or no; a
    GAN samples in fp32 always (its forward pass costs milliseconds), so `--amp on` is refused for it
    rather than silently ignored."""
    wanted = amp_enabled(amp, device)  # validates the value for every kind of model
    if model_kind(config) == "diffusion":
        return wanted
    if amp == "on":
        raise ChexbalError("--amp on: a GAN samples in fp32 (its forward pass costs milliseconds); leave --amp at auto or off", 2)
    return False


def sampling_in_bf16(images: Path, amp: str, config: dict, device: torch.device) -> bool:
    """Whether a diffusion model samples in bf16 (2.1x faster on one CPU thread with AMX:
    docs/benchmarks.md): as `--amp` says for a new set. A started set is finished in the precision it
    was started in, since the two draw different images; refused only when --amp names the other one."""
    wanted = check_sampling_amp(amp, config, device)
    if model_kind(config) != "diffusion" or not (images / "zarr.json").exists():
        return wanted
    made = zarr.open_array(images, mode="r").attrs.get("sampling") == "bf16"
    return keep_precision(amp, device, made, images, " sampling")


def default_checkpoint(generator: str, dataset: str, frac: float) -> Path:
    """The shipped pool model of the generator's kind, or the regimen model `train-gan` or
    `train-diffusion --frac F` writes by default."""
    kind = synthetic.GENERATORS[generator]
    if not kind.regimen:
        return SHIPPED if kind.model == "gan" else SHIPPED_DIFFUSION
    return model_run_dir(kind.model, dataset, frac, kind.seed) / "generator.pt"


def check_kind(checkpoint: Path, config: dict, generator: str, regimen: tuple[float, int]) -> None:
    """The checkpoint must be of the generator's kind and, for a regimen generator, trained on this
    regimen's training rows with this split seed."""
    kind, made = synthetic.GENERATORS[generator], model_kind(config)
    if made != kind.model:
        raise ChexbalError(f"{checkpoint} is a {made} model, --generator {generator} needs a {kind.model} model")
    seen = trained_on(config)
    if kind.regimen and (seen.get("frac"), seen.get("split_seed")) != regimen:
        frac, seed = regimen
        raise ChexbalError(
            f"{checkpoint} was trained on regimen {seen.get('frac')} split {seen.get('split_seed')}, not on "
            f"regimen {frac:g} split {seed}: train it with `chexbal train-{kind.model} --frac {frac:g} --split-seed {seed}`"
        )
    if kind.seed and config.get("seed") != kind.seed:  # else the second generator's arm repeats the first's
        raise ChexbalError(
            f"{checkpoint} was trained with seed {config.get('seed')}, --generator {generator} needs seed {kind.seed}: "
            f"train it with `chexbal train-{kind.model} --frac {regimen[0]:g} --seed {kind.seed}`"
        )


def trained_on(config: dict) -> dict:
    """What a generator saw. Generators written before chexbal recorded it (the shipped one among
    them) trained on every pool row of their regimen, validation patients included."""
    return config.get("trained_on") or {
        "dataset": config.get("dataset"),
        "frac": config.get("frac"),
        "split_seed": None,
        "rows": "all pool rows",
        "validation_patients_excluded": False,
    }


def fill(images, blocks: list[int], generator, vectors: torch.Tensor, seed: int, *, advance=lambda: None) -> None:
    """Generate and write `blocks`; Zarr compresses and writes each block in a second thread while
    the next one is generated."""
    with ThreadPoolExecutor(1) as writer, stopping.droppable():
        pending = []
        for block in blocks:
            try:
                stopping.check()
                pixels = generate_block(generator, vectors[store.block_rows(images, block)], seed, block)
            except stopping.Dropped:
                break  # the blocks written so far stay, an unfinished one is dropped; a re-run writes the rest
            pending.append(writer.submit(store.write_block, images, block, pixels))
            advance()
        for done in pending:
            done.result()
    if stopping.requested():
        total = store.block_count(images, images.shape[0])
        on_disk = total - len(store.missing_blocks(images, images.shape[0]))
        saved = f"{images.store.root} with {on_disk} of its {total} blocks ({len(pending)} new in this run)"
        raise stopping.Stopped(saved, "run the same command again")


@torch.no_grad()
def generate_block(generator, vectors: torch.Tensor, seed: int, block: int) -> np.ndarray:
    """uint8 images for one block; latents come from a stream seeded per block, so resuming
    after an interruption gives the same images as an uninterrupted run."""
    return to_uint8(generator.draw(vectors, stream(seed, block)))
