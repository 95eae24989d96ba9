"""`chexbal generate`: run a regimen's plan through the generator into a synthetic store.

The plan's label vectors (drawn from the regimen's training rows only) condition one image each.
Blocks are generated with a latent stream seeded per block, so an interrupted run resumes by
generating the missing blocks and ends with the same images.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from . import store, synthetic
from .dataset import DEFAULT_DATASET, locate, settings
from .devices import pick_device
from .errors import ChexbalError
from .gan.nets import Generator, to_uint8
from .labels import PATHOLOGIES, label_matrix
from .plan import SHARE, make_plan, training_rows
from .progress import bar

SHIPPED = Path(__file__).parent / "weights" / "phantom-64-generator.pt"


def load_generator(path: Path, size: int, device: torch.device) -> tuple[Generator, dict]:
    """A generator rebuilt from its checkpoint's config, refused if it does not fit the dataset."""
    if not path.is_file():
        raise ChexbalError(f"generator checkpoint {path} not found: train one with `chexbal train-gan`")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        config, weights = saved["config"], saved["generator"]
    except Exception as err:  # any unreadable or foreign file
        raise ChexbalError(f"{path} is not a chexbal generator checkpoint ({type(err).__name__})") from None
    if config.get("labels") != list(PATHOLOGIES):
        raise ChexbalError(f"{path} was trained on another label set ({config.get('labels')}), not CheXpert's 14 in CSV order")
    if config.get("size") != size:
        raise ChexbalError(f"{path} makes {config.get('size')} px images, but the dataset holds {size} px images")
    generator = Generator(config["size"], config["z_dim"], config["base"])
    generator.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})
    return generator.to(device).eval(), config


def generate(frac: float, checkpoint: Path | None = None, seed: int = 0, share: float = SHARE,
             data_dir: Path = Path("data"), dataset: str = DEFAULT_DATASET, device: str = "auto",
             quiet: bool = False) -> Path:
    folder = locate(Path(data_dir), dataset)
    size = settings(folder)["size"]
    checkpoint = Path(checkpoint or SHIPPED)
    torch_device = pick_device(device)
    generator, generator_config = load_generator(checkpoint, size, torch_device)
    plan = make_plan(training_rows("prepared", frac, seed, folder), share, seed)
    where = synthetic.folder(folder, frac)
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    recorded = {"kind": "synthetic", "checkpoint_sha256": digest, "seed": seed, "share": share, "frac": frac}
    images = store.open_or_create(where / "images.zarr", max(len(plan.vectors), 1), size, recorded)
    labels = plan.vectors.assign(index=np.arange(len(plan.vectors)))[["index", "target", *PATHOLOGIES]]
    provenance = {**recorded, "checkpoint": str(checkpoint), "generator": generator_config, "plan": plan.summary(),
                  "dataset": dataset}
    vectors = torch.from_numpy(label_matrix(labels))
    blocks = store.missing_blocks(images, len(labels))
    with bar(disable=quiet or not blocks) as progress:
        task = progress.add_task(f"generate → {where.name}", total=len(blocks), note=f"{len(labels)} images")
        fill(images, blocks, generator, vectors, seed, torch_device, lambda: progress.update(task, advance=1))
    store.mark_complete(images, len(labels))
    store.write_atomic(where / "labels.csv", labels.to_csv(index=False))
    store.write_atomic(where / "provenance.json", json.dumps(provenance, indent=2))
    return where


def fill(images, blocks: list[int], generator: Generator, vectors: torch.Tensor, seed: int, device,
         advance=lambda: None) -> None:
    """Generate and write `blocks`; Zarr compresses and writes each block in a second thread while
    the next one is generated."""
    with ThreadPoolExecutor(1) as writer:
        pending = []
        for block in blocks:
            pixels = render_block(generator, vectors[store.block_rows(images, block)], seed, block, device)
            pending.append(writer.submit(store.write_block, images, block, pixels))
            advance()
        for done in pending:
            done.result()


@torch.no_grad()
def render_block(generator: Generator, vectors: torch.Tensor, seed: int, block: int, device) -> np.ndarray:
    """uint8 images for one block; latents come from a stream seeded per block, so resuming
    after an interruption gives the same images as an uninterrupted run."""
    rng = torch.Generator().manual_seed(seed * 1_000_003 + block)
    z = torch.randn(len(vectors), generator.z_dim, generator=rng)
    return to_uint8(generator(z.to(device), vectors.to(device)))
