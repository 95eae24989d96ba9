"""Generated image sets on disk: data/<dataset>/synthetic/frac-<F>[-<generator>]/.

Five sets per regimen can coexist, one per generator: the pool GAN's (`frac-<F>`, the `gan` arm),
the regimen GAN's (`frac-<F>-regimen`, `gan-regimen`), a second regimen GAN's, trained with seed 1
(`frac-<F>-regimen-seed1`, `gan-regimen-seed1`), the pool diffusion model's
(`frac-<F>-diffusion`, `diffusion`) and the regimen diffusion model's (`frac-<F>-diffusion-regimen`,
`diffusion-regimen`). Each holds `images.zarr` (uint8, like the real store), `labels.csv` (`index`, `target` and the 14 label columns by name, the vectors each image
was conditioned on) and `provenance.json` (generator checkpoint hash, what the generator was trained
on, the split seed the plan was drawn from, the plan). Training adds a set to the training split only.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd

from chexbal import files
from chexbal.data import store
from chexbal.data.labels import check_label_columns
from chexbal.data.splits import frac_name
from chexbal.errors import ChexbalError


@dataclasses.dataclass(frozen=True)
class Kind:
    model: str  # "gan" or "diffusion": the trainer that makes it (`train-gan`, `train-diffusion`)
    regimen: bool  # trained on the regimen's own training rows, not on the whole pool
    seed: int = 0  # its training seed: a second regimen GAN of the same rows differs only in this


GENERATORS = {
    "pool": Kind("gan", regimen=False),  # the `gan` arm
    "regimen": Kind("gan", regimen=True),  # `gan-regimen`
    "regimen-seed1": Kind("gan", regimen=True, seed=1),  # `gan-regimen-seed1`: is a gain one generator's luck?
    "diffusion": Kind("diffusion", regimen=False),  # `diffusion`
    "diffusion-regimen": Kind("diffusion", regimen=True),  # `diffusion-regimen`
}


IMPORTED = "import-"  # an imported set's generator name: import-<NAME> (`chexbal import-synthetic`)
IMPORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def imported(name: str) -> str:
    return f"{IMPORTED}{name}"


def folder(dataset_folder: Path, frac: float, generator: str = "pool") -> Path:
    suffix = "" if generator == "pool" else f"-{generator}"
    return dataset_folder / "synthetic" / f"{frac_name(frac)}{suffix}"


def make_command(frac: float, generator: str) -> str:
    """The commands that make a regimen's set of this generator."""
    if generator.startswith(IMPORTED):
        return f"`chexbal import-synthetic --frac {frac:g} --name {generator[len(IMPORTED) :]} …`"
    kind = GENERATORS[generator]
    option = "" if generator == "pool" else f" --generator {generator}"
    generate = f"`chexbal generate --frac {frac:g}{option}`"
    seed = f" --seed {kind.seed}" if kind.seed else ""
    return f"`chexbal train-{kind.model} --frac {frac:g}{seed}` then {generate}" if kind.regimen else generate


def load(dataset_folder: Path, frac: float, generator: str = "pool") -> tuple[np.ndarray, pd.DataFrame, dict]:
    """The generated images, their label table and provenance for regimen `frac`."""
    where = folder(dataset_folder, frac, generator)
    if not (where / "labels.csv").is_file() or not (where / "provenance.json").is_file():
        raise ChexbalError(f"no generated set at {where}: run {make_command(frac, generator)} first")
    labels = pd.read_csv(where / "labels.csv")
    check_label_columns(labels, str(where / "labels.csv"))
    images = store.open_complete(where / "images.zarr", len(labels))
    repair = f"delete {where} and make it again with {make_command(frac, generator)}"
    provenance = files.read_json(where / "provenance.json")
    check_generator(where, provenance, images.attrs.get("checkpoint_sha256"))
    return store.read(images, slice(0, len(labels)), repair), labels, provenance


def check_generator(where: Path, provenance: dict, made_with: str | None) -> None:
    """The generator a set names must be the one that made it: provenance.json's sha256 against the
    one its image store recorded while generating, and against the checkpoint file where it is at hand."""
    named = provenance.get("checkpoint_sha256")
    if named != made_with:
        raise ChexbalError(
            f"{where}/provenance.json names generator {str(named)[:12]}, its images were made by {str(made_with)[:12]}: regenerate the set"
        )
    checkpoint = Path(provenance.get("checkpoint", ""))
    if checkpoint.is_file() and files.sha256(checkpoint) != named:
        raise ChexbalError(f"{checkpoint} is no longer the generator that made {where} (its sha256 changed): regenerate the set")
