"""`chexbal gan-eval`: how good is a generator, measured offline with chexbal's own classifier.

- Fréchet distance between real and generated images in the penultimate feature space of a
  DenseNet-121 trained on the real data (overall and per target: real positives against images
  generated for that target's vectors).
- Label fidelity: the per-class AUC of that classifier on generated images against the label vectors
  they were conditioned on, next to its AUC on the real test images. A generator that draws the
  findings it is asked for scores close to the real AUC.
- On phantom data, the renderer's ground truth: the same classifier on phantoms freshly rendered for
  the same label vectors, which is what a perfect generator would give.

Conditioning vectors are drawn from pool rows (never test patients): a quarter uniformly, a quarter
from each target's positives. Each AUC on generated (or re-rendered) images is measured on a mix shaped
like the test set (see `fidelity_aucs`), so a perfect generator scores its real AUC. Real images are
the test set, which neither the classifier nor the generator has seen.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import linalg

from . import classifier, store
from .dataset import DEFAULT_DATASET, load_images, locate, read_index, settings
from .errors import ChexbalError
from .evaluate import auc_per_class, mean_auc
from .generate import SHIPPED, load_generator, render_block
from .labels import PATHOLOGIES, TARGETS, label_matrix
from .progress import bar


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (as FID does)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(root).all():  # near-singular product: regularise as FID implementations do
        eps = np.eye(len(cov_a)) * 1e-6
        root = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root.real))


def gan_eval(classifier_run: Path, checkpoint: Path | None = None, n: int = 2000, seed: int = 0,
             data_dir: Path = Path("data"), dataset: str = DEFAULT_DATASET, out: Path | None = None,
             quiet: bool = False) -> dict:
    folder = locate(Path(data_dir), dataset)
    index = read_index(folder)
    test, pool = index[index["split"] == "test"], index[index["split"] == "pool"]
    model = classifier.load_run(classifier_run)
    recorded = settings(folder)
    checkpoint = Path(checkpoint or SHIPPED)
    size = recorded["size"]
    generator, _ = load_generator(checkpoint, size, torch.device("cpu"))
    conditions = sample_conditions(pool, n, seed)
    phantom = recorded.get("source") == "phantom"

    with bar(disable=quiet) as progress:
        task = progress.add_task("gan-eval", total=4 + phantom, note="generating")
        fake = np.concatenate([render_block(generator, torch.from_numpy(label_matrix(conditions.iloc[i:i + 256])), seed, i, "cpu")
                               for i in range(0, len(conditions), 256)])
        progress.update(task, advance=1, note=f"scoring {len(test)} real test images")
        real_features, real_probs = classifier.embed_and_score(model, load_images(folder, test))
        progress.update(task, advance=1, note=f"scoring {len(fake)} generated images")
        fake_features, fake_probs = classifier.embed_and_score(model, fake)
        progress.update(task, advance=1, note="Fréchet distances")
        result = {
            "dataset": dataset, "checkpoint": str(checkpoint), "classifier": str(classifier_run), "generated": len(fake),
            "real_test_images": len(test), "frechet": frechet_by_class(real_features, test, fake_features, conditions),
            "auc_real_test": auc_per_class(label_matrix(test), real_probs),
            "auc_generated": fidelity_aucs(conditions, fake_probs),
            "median_probability": target_medians(conditions, fake_probs, test, real_probs),
        }
        progress.update(task, advance=1, note="rendering phantoms for the same labels" if phantom else "")
        if phantom:
            result["auc_renderer"] = renderer_auc(model, folder, conditions, size, seed)
            progress.update(task, advance=1, note="")
    if out is not None:
        store.write_atomic(Path(out), json.dumps(result, indent=2))
        store.write_atomic(per_image_path(Path(out)), per_image_table(conditions, fake_probs).to_csv(index=False))
    return result


def target_medians(conditions: pd.DataFrame, fake_probs: np.ndarray, test: pd.DataFrame, real_probs: np.ndarray) -> dict:
    """The classifier's median probability of each target on the images generated for it, and on the
    real test positives. A generator that draws a finding on only some of the images asked for it, or
    fainter than real data, shows a lower median than the real positives."""
    medians: dict[str, dict[str, float]] = {"generated": {}, "real_test_positives": {}}
    for target in TARGETS:
        k = PATHOLOGIES.index(target)
        medians["generated"][target] = float(np.median(fake_probs[conditions["group"].to_numpy() == target, k]))
        positives = test[target].to_numpy() == 1
        if positives.any():
            medians["real_test_positives"][target] = float(np.median(real_probs[positives, k]))
    return medians


def per_image_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}-images.csv")


def per_image_table(conditions: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    """One row per generated image: its pool row index, group, conditioning labels by name, and the
    classifier's probability of each class (columns `p <class>`)."""
    scores = pd.DataFrame(probs, columns=[f"p {name}" for name in PATHOLOGIES])
    return pd.concat([conditions[["index", "group", *PATHOLOGIES]].reset_index(drop=True), scores], axis=1)


def frechet_by_class(real: np.ndarray, real_rows: pd.DataFrame, fake: np.ndarray, fake_rows: pd.DataFrame) -> dict:
    """Overall, and per target: its real positives against the images generated for its vectors."""
    distances = {"overall": frechet_distance(real, fake)}
    for target in TARGETS:
        real_pos, fake_pos = real[real_rows[target].to_numpy() == 1], fake[fake_rows[target].to_numpy() == 1]
        if len(real_pos) > 1 and len(fake_pos) > 1:
            distances[target] = frechet_distance(real_pos, fake_pos)
    return distances


def quality_table(result: dict) -> pd.DataFrame:
    """One row per target and one overall (mean AUC over the 14 classes): Fréchet distance, AUC on
    real test images, AUC on generated images, their ratio (label fidelity), renderer AUC, and each
    target's median probability on its generated images and on its real test positives."""
    def auc(key: str, name: str) -> float | None:
        if key not in result:
            return None
        return mean_auc(result[key]) if name == "overall" else result[key].get(name)

    medians = result.get("median_probability", {})  # absent from results of older chexbal versions
    rows = []
    for name in ("overall", *TARGETS):
        real, fake, renderer = auc("auc_real_test", name), auc("auc_generated", name), auc("auc_renderer", name)
        rows.append({"class": name, "Fréchet": result["frechet"].get(name), "AUC real test": real,
                     "AUC generated": fake, "fidelity ratio": fake / real if real and fake else None,
                     "AUC renderer": renderer, "median p generated": medians.get("generated", {}).get(name),
                     "median p real": medians.get("real_test_positives", {}).get(name)})
    return pd.DataFrame(rows).round(3)


UNIFORM = "pool"


def sample_conditions(pool: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """n pool rows in groups named in a `group` column: one drawn uniformly (UNIFORM), and one per
    target drawn from its positives, so every target's AUC is measurable."""
    rng = np.random.default_rng(seed)
    per_group = n // (len(TARGETS) + 1)
    picks = [pool.sample(min(per_group, len(pool)), random_state=rng.integers(2**31)).assign(group=UNIFORM)]
    for target in TARGETS:
        positives = pool[pool[target] == 1]
        if len(positives) == 0:
            raise ChexbalError(f"the pool has no {target} positive to condition on")
        picks.append(positives.sample(per_group, replace=True, random_state=rng.integers(2**31)).assign(group=target))
    return pd.concat(picks, ignore_index=True)


def fidelity_aucs(conditions: pd.DataFrame, probs: np.ndarray) -> dict[str, float]:
    """Per-class AUC on images made for `conditions`, each on a mix shaped like the test set: a
    target's positives are its own group, its negatives the uniform group's negatives; every other
    class is measured on the uniform group alone. Scoring the target groups as negatives of the other
    targets would weigh those rare findings far beyond their share in real data, and lower even a
    perfect generator's AUC (a nodule and a fracture's callus are both small bright spots)."""
    labels, group = label_matrix(conditions), conditions["group"].to_numpy()
    uniform = group == UNIFORM
    aucs = auc_per_class(labels[uniform], probs[uniform])
    for target in TARGETS:
        rows = (group == target) | (uniform & (labels[:, PATHOLOGIES.index(target)] == 0))
        aucs[target] = auc_per_class(labels[rows], probs[rows])[target]
    return aucs


def renderer_auc(model, folder: Path, conditions: pd.DataFrame, size: int, seed: int) -> dict[str, float]:
    """The classifier's AUC on phantoms rendered for the same rows: a perfect generator's score."""
    from .sources.phantom import render_block as render_phantoms

    raw = pd.read_csv(folder / "raw-labels.csv").set_index("index").loc[conditions["index"], list(PATHOLOGIES)]
    paths = [f"{p}#eval{i}" for i, p in enumerate(conditions["Path"])]  # fresh anatomy, same labels
    images = render_phantoms(paths, raw.to_numpy(float), size, seed)
    _, probs = classifier.embed_and_score(model, images)
    return fidelity_aucs(conditions, probs)
