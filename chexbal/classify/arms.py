"""The arms of the experiment, and the extra training images or loss weights each one brings.

Each arm exists to rule out one explanation of a gain (see the design notes):

- `none`: the baseline.   `standard`: the paper's random horizontal and vertical flips.
- `affine`: random rotation, translation and scale, the field's usual radiograph augmentation.
- `weighted`: no extra images; BCE with a per-class positive weight, negatives / positives of the
  training split, capped.
- `oversample`: the plan's images, as repeats of the real training rows the plan drew its vectors from.
- `gan`: the plan's images from the pool generator (the paper's setting).
- `gan-regimen`: the plan's images from a generator trained on this regimen's training rows only.
- `gan-regimen-seed1`: the same from a second such generator, trained with seed 1, so that a regimen
  GAN's gain (or loss) is not one generator's luck.
- `diffusion`, `diffusion-regimen`: the same two, from a label-conditioned diffusion model.
- `synthetic:NAME`: the plan's counts as images from any generator, brought by `chexbal import-synthetic`.
- `real-extra`: the plan's counts as real positives of pool patients outside the regimen: what a pool
  generator knew, as real images. Not applicable at 100% (no patient is outside).

`oversample`, the generator arms and `real-extra` add the same counts per target, so they differ
only in what the extra images are. Every extra image joins the training split alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from chexbal.data import store
from chexbal.data.dataset import load_images, read_index
from chexbal.data.labels import PATHOLOGIES, TARGETS, label_matrix
from chexbal.errors import ChexbalError
from chexbal.generators import synthetic
from chexbal.generators.plan import SHARE, make_plan

ARMS = (
    "none",
    "standard",
    "affine",
    "weighted",
    "oversample",
    "gan",
    "gan-regimen",
    "gan-regimen-seed1",
    "diffusion",
    "diffusion-regimen",
    "real-extra",
)
# arm -> which generator's set it adds (synthetic.GENERATORS)
GENERATED = {
    "gan": "pool",
    "gan-regimen": "regimen",
    "gan-regimen-seed1": "regimen-seed1",
    "diffusion": "diffusion",
    "diffusion-regimen": "diffusion-regimen",
}
REAL_EXTRA = ("oversample", "real-extra")
IMPORTED = "synthetic:"  # an imported set's arm: synthetic:NAME


def generator_of(arm: str) -> str | None:
    """The synthetic set an arm adds (its name in synthetic.folder), or None."""
    if arm.startswith(IMPORTED):
        return synthetic.imported(arm[len(IMPORTED) :])
    return GENERATED.get(arm)


def is_arm(arm: str) -> bool:
    return arm in ARMS or (arm.startswith(IMPORTED) and bool(synthetic_name(arm)))


def synthetic_name(arm: str) -> str:
    name = arm[len(IMPORTED) :]
    return name if synthetic.IMPORT_NAME.fullmatch(name) else ""


def arm_order(arm: str) -> tuple[int, str]:
    """Sort key: the built-in arms in ARMS order, then imported ones by name."""
    return (ARMS.index(arm), "") if arm in ARMS else (len(ARMS), arm)


# torchxrayvision's training scripts: RandomAffine(45, translate=(0.15, 0.15), scale=(0.85, 1.15)).
AFFINE = {"degrees": 45.0, "translate": 0.15, "scale": 0.15}
POS_WEIGHT_CAP = 20.0


@dataclasses.dataclass
class Extra:
    """Extra training images of an arm, their label matrix, and what they are (for config.json)."""

    images: np.ndarray
    labels: np.ndarray
    record: dict
    rows: pd.DataFrame | None = None  # real extra rows: `index`, `patient`, `target`


def extra_images(
    arm: str, folder: Path, frac: float, subset: pd.DataFrame, train_rows: pd.DataFrame, split_seed: int
) -> Extra | None:
    """The arm's extra training images, or None for an arm that adds none."""
    if generator_of(arm):
        return generated(folder, frac, generator_of(arm), split_seed)
    if arm == "oversample":
        rows = oversample_rows(train_rows, split_seed)
    elif arm == "real-extra":
        rows = real_extra_rows(read_index(folder), subset, train_rows, frac, split_seed)
        check_prepared(folder, rows, frac)
    else:
        return None
    counts = rows["target"].value_counts().reindex(list(TARGETS), fill_value=0)
    record = {
        "kind": arm,
        "images": len(rows),
        "per_target": {t: int(counts[t]) for t in TARGETS},
        "patients": int(rows["patient"].nunique()),
        "rows_file": "extra-rows.csv",
    }
    return Extra(load_images(folder, rows), label_matrix(rows), record, rows[["index", "patient", "target"]])


def oversample_rows(train_rows: pd.DataFrame, split_seed: int) -> pd.DataFrame:
    """The training rows whose label vectors the generation plan drew, one per planned image: the
    same counts and the same label vectors as the generated set, as repeats of real images."""
    plan = make_plan(train_rows, SHARE, split_seed)
    picked = train_rows.iloc[plan.vectors["source_row"].to_numpy()]
    return picked.assign(target=plan.vectors["target"].to_numpy()).reset_index(drop=True)


def real_extra_rows(
    index: pd.DataFrame, subset: pd.DataFrame, train_rows: pd.DataFrame, frac: float, split_seed: int
) -> pd.DataFrame:
    """The plan's count per target, as real positives of pool patients outside the regimen (drawn
    without replacement where there are enough)."""
    plan = make_plan(train_rows, SHARE, split_seed)
    outside = index[(index["split"] == "pool") & ~index["patient"].isin(set(subset["patient"]))]
    if outside.empty:
        raise ChexbalError(f"real-extra does not apply at regimen {frac:g}: no pool patient lies outside it")
    rng = np.random.default_rng(split_seed)
    picks = []
    for target in TARGETS:
        positives = outside[outside[target] == 1]
        wanted = plan.generate[target]
        if wanted and positives.empty:
            raise ChexbalError(f"real-extra: no {target} positive outside regimen {frac:g}")
        chosen = rng.choice(len(positives), wanted, replace=wanted > len(positives)) if wanted else []
        picks.append(positives.iloc[chosen].assign(target=target))
    return pd.concat(picks, ignore_index=True)


def check_prepared(folder: Path, rows: pd.DataFrame, frac: float) -> None:
    needed = int(rows["index"].max()) + 1 if len(rows) else 0
    written = store.open_complete(folder / "images.zarr", 0).attrs.get("complete_rows", 0)
    if written < needed:
        raise ChexbalError(
            f"real-extra at regimen {frac:g} draws real images from the whole pool: run `chexbal prepare --frac 1` first"
        )


def generated(folder: Path, frac: float, generator: str, split_seed: int) -> Extra:
    """A generated set, refused if it was planned from another train/validation split."""
    images, labels, provenance = synthetic.load(folder, frac, generator)
    planned = provenance.get("split_seed", provenance.get("seed"))
    if planned != split_seed:
        raise ChexbalError(
            f"the generated set {synthetic.folder(folder, frac, generator)} was planned from the split "
            f"of seed {planned}, this run splits with seed {split_seed}: regenerate it with "
            f"`chexbal generate --frac {frac:g} --split-seed {split_seed}{'' if generator == 'pool' else f' --generator {generator}'}`"
        )
    record = {
        "kind": "imported" if provenance.get("kind") == "imported" else f"generated ({generator} generator)",
        "images": len(labels),
        "set": str(synthetic.folder(folder, frac, generator)),
        "checkpoint_sha256": provenance["checkpoint_sha256"],
        "generator_trained_on": provenance.get("trained_on"),
        "split_seed": planned,
    }
    return Extra(images, label_matrix(labels), record)


def positive_weights(train_labels: np.ndarray, cap: float = POS_WEIGHT_CAP) -> dict[str, float]:
    """Per class, negatives / positives of the training split, capped (a class with no positive
    gets the cap)."""
    positives = train_labels.sum(axis=0)
    ratio = np.where(positives > 0, (len(train_labels) - positives) / np.maximum(positives, 1), cap)
    return {name: float(w) for name, w in zip(PATHOLOGIES, np.minimum(ratio, cap))}
