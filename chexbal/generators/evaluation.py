"""`chexbal gan-eval`: how good is a generator, measured offline with chexbal's own classifier.

- Fréchet distance between real and generated images in the penultimate feature space of a
  DenseNet-121 trained on the real data (overall and per target: real positives against images
  generated for that target's vectors).
- Label fidelity: the per-class AUC of that classifier on generated images against the label vectors
  they were conditioned on, next to its AUC on the real test images, with bootstrap intervals. A
  generator that draws the findings it is asked for scores close to the real AUC; one that
  exaggerates them scores above it, and one that draws only co-occurring findings can score well too.
- Counterfactual fidelity, which neither can game: the same latent with a target's bit on and off,
  and the judge's probability shift between the two images (median, interval, share of pairs raised).
- On phantom data, the renderer's ground truth: the same classifier on phantoms freshly rendered for
  the same label vectors, which is what a perfect generator would give.

The judge must be a `--aug none` run (a judge that saw generated images would grade its own bias);
`--second-judge` (another seed) checks a generator tuned against the first. Conditioning vectors are
drawn from pool rows (never test patients): a quarter uniformly, a quarter
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

from chexbal import files
from chexbal.analysis.evaluate import auc_per_class, bootstrap_aucs, confidence_interval, mean_auc
from chexbal.classify import classifier
from chexbal.data.dataset import DEFAULT_DATASET, load_images, locate, read_index, settings
from chexbal.data.labels import PATHOLOGIES, TARGETS, label_matrix
from chexbal.errors import ChexbalError
from chexbal.generators.gan.nets import to_uint8
from chexbal.generators.generate import SHIPPED, check_sampling_amp, generate_block, load_generator, model_kind, trained_on
from chexbal.progress import bar
from chexbal.seeds import stream

COUNTERFACTUAL = 1_000  # latent streams of the counterfactual pairs, apart from generate_block's blocks
COMPARABLE_IMAGES = 300  # generated images in the Fréchet distance that compares generators (see comparable_frechet)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (as FID does):
    |mu_a - mu_b|^2 + tr(A) + tr(B) - 2 tr((A B)^1/2).

    tr((A B)^1/2) is the sum of the square roots of the eigenvalues of A^1/2 B A^1/2, which has
    the eigenvalues of A B but is symmetric, so two symmetric eigendecompositions find it: 4.3x
    faster than SciPy's general square root of A B at 1,024 features (scripts/bench_frechet.py),
    and exact when a covariance is singular (fewer images than features), where that square root
    needed a regularising epsilon."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt_product(cov_a, cov_b))


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """tr((A B)^1/2) for covariance matrices A and B (symmetric, positive semi-definite)."""
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    inner = np.linalg.eigvalsh(root_a @ cov_b @ root_a)  # rounding can leave tiny negatives
    return float(np.sqrt(inner.clip(min=0)).sum())


def gan_eval(
    classifier_run: Path,
    checkpoint: Path | None = None,
    *,
    n: int = 2000,
    seed: int = 0,
    data_dir: Path = Path("data"),
    dataset: str = DEFAULT_DATASET,
    out: Path | None = None,
    quiet: bool = False,
    second_judge: Path | None = None,
    n_boot: int = 200,
    amp: str = "auto",
) -> dict:
    if n < len(TARGETS) + 1 or n > 100_000:
        raise ChexbalError("--n must be between 4 and 100000", 2)
    folder = locate(Path(data_dir), dataset)
    index, model = read_index(folder), load_judge(classifier_run)
    test, pool = index[index["split"] == "test"], index[index["split"] == "pool"]
    recorded, checkpoint = settings(folder), Path(checkpoint or SHIPPED)
    generator, generator_config = load_generator(checkpoint, recorded, torch.device("cpu"))
    generator.use_amp = check_sampling_amp(amp, generator_config, torch.device("cpu"))  # as `generate --amp` draws here
    conditions = evaluation_conditions(pool, n, seed)
    phantom = recorded.get("source") == "phantom"

    with bar(disable=quiet) as progress:
        task = progress.add_task("gan-eval", total=5 + phantom + (second_judge is not None), note="generating")
        fake = generate_for(generator, conditions, seed)
        progress.update(task, advance=1, note=f"scoring {len(test)} real test images")
        real_images = load_images(folder, test)
        real_features, real_probs = classifier.embed_and_score(model, real_images)
        progress.update(task, advance=1, note=f"scoring {len(fake)} generated images")
        fake_features, fake_probs = classifier.embed_and_score(model, fake)
        progress.update(task, advance=1, note="Fréchet distances")
        result = {
            **what_was_judged(dataset, checkpoint, generator_config, classifier_run),
            "sampling": "bf16" if getattr(generator, "use_amp", False) else "fp32",
            "generated": len(fake),
            "real_test_images": len(test),
            "frechet": frechet_by_class(real_features, test, fake_features, conditions),
            "frechet_comparable": comparable_frechet(real_features, fake_features, conditions),
            "auc_real_test": auc_per_class(label_matrix(test), real_probs),
            "auc_generated": fidelity_aucs(conditions, fake_probs),
            "median_probability": target_medians(conditions, fake_probs, test, real_probs),
            "fidelity_ci": fidelity_intervals(conditions, fake_probs, test, real_probs, n_boot, seed),
        }
        progress.update(task, advance=1, note="counterfactual pairs")
        on_off = counterfactual_images(generator, conditions, seed)
        result["counterfactual"] = counterfactual_shift(model, on_off, n_boot, seed)
        progress.update(task, advance=1, note="rendering phantoms for the same labels" if phantom else "")
        if phantom:
            result["auc_renderer"] = renderer_auc(model, folder, conditions, recorded["size"], seed)
            progress.update(task, advance=1, note="second judge")
        if second_judge is not None:
            result["second_judge"] = judge_again(second_judge, (real_images, test), (fake, conditions), on_off, (n_boot, seed))
            progress.update(task, advance=1, note="")
    if out is not None:
        write_result(Path(out), result, per_image_table(conditions, fake_probs))
    return result


def what_was_judged(dataset: str, checkpoint: Path, generator_config: dict, classifier_run: Path) -> dict:
    """Which generator was judged, by which classifier: the fields that say what a gan-eval measured."""
    return {
        "dataset": dataset,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": files.sha256(checkpoint),
        "trained_on": trained_on(generator_config),
        "generator_kind": model_kind(generator_config),
        "generator_seed": generator_config.get("seed", 0),
        "classifier": str(classifier_run),
    }


def imported_eval(
    classifier_run: Path, name: str, frac: float, *, data_dir: Path = Path("data"), dataset: str = DEFAULT_DATASET, out=None
) -> dict:
    """What can be measured of an imported set without its generator: Fréchet distances and each
    target's median probability on its images against the real test positives. Label fidelity as an
    AUC needs images made for random vectors and counterfactual fidelity needs the generator, so
    neither is measured (the report says so)."""
    from chexbal.generators import synthetic

    folder = locate(Path(data_dir), dataset)
    index, model = read_index(folder), load_judge(classifier_run)
    test = index[index["split"] == "test"]
    fake, labels, provenance = synthetic.load(folder, frac, synthetic.imported(name))
    real_features, real_probs = classifier.embed_and_score(model, load_images(folder, test))
    fake_features, fake_probs = classifier.embed_and_score(model, fake)
    result = {
        "dataset": dataset,
        "imported": name,
        "frac": frac,
        "generator_kind": "imported",
        "trained_on": provenance["trained_on"],
        "classifier": str(classifier_run),
        "generated": len(fake),
        "real_test_images": len(test),
        "frechet": frechet_by_class(real_features, test, fake_features, labels),
        "auc_real_test": auc_per_class(label_matrix(test), real_probs),
        "auc_generated": {},  # not measurable: every imported image was picked positive for a target
        "median_probability": target_medians(labels.rename(columns={"target": "group"}), fake_probs, test, real_probs),
        "not_measured": "label fidelity AUC and counterfactual fidelity (they need the generator)",
    }
    if out is not None:
        files.write_atomic(Path(out), json.dumps(result, indent=2))
    return result


def write_result(out: Path, result: dict, per_image: pd.DataFrame) -> None:
    """gan-eval.json and, beside it, each generated image's scores."""
    files.write_atomic(out, json.dumps(result, indent=2))
    files.write_atomic(per_image_path(out), per_image.to_csv(index=False))


def generate_for(generator, conditions: pd.DataFrame, seed: int) -> np.ndarray:
    """The generator's images for the evaluation's label vectors, 256 at a time on the CPU."""
    blocks = range(0, len(conditions), 256)
    return np.concatenate(
        [generate_block(generator, torch.from_numpy(label_matrix(conditions.iloc[i : i + 256])), seed, i) for i in blocks]
    )


def judge_again(run: Path, real: tuple, generated: tuple, on_off, boot: tuple[int, int]) -> dict:
    """The same scores from a second judge (another `none` run): a verdict one judge's quirks made
    would not survive it. `real` and `generated` are (images, their label table)."""
    judge = load_judge(run)
    (real_images, test), (fake, conditions), (n_boot, seed) = real, generated, boot
    _, second_real = classifier.embed_and_score(judge, real_images)
    _, second_fake = classifier.embed_and_score(judge, fake)
    return {
        "classifier": str(run),
        "auc_real_test": auc_per_class(label_matrix(test), second_real),
        "auc_generated": fidelity_aucs(conditions, second_fake),
        "fidelity_ci": fidelity_intervals(conditions, second_fake, test, second_real, n_boot, seed),
        "counterfactual": counterfactual_shift(judge, on_off, n_boot, seed),
    }


def load_judge(run: Path):
    """A classifier trained on real images alone: a judge that saw generated images, or was trained to
    over-weigh the targets, would score a generator by its own bias."""
    config = Path(run) / "config.json"
    if not config.is_file():
        raise ChexbalError(f"judge run {run} not found (no config.json there): give a finished `--aug none` run")
    aug = files.read_json(config).get("aug")
    if aug != "none":
        raise ChexbalError(f"{run} is not a no-augmentation run (aug {aug}): judge a generator with a `--aug none` run")
    return classifier.load_run(run)


def fidelity_intervals(
    conditions: pd.DataFrame, fake_probs: np.ndarray, test: pd.DataFrame, real_probs: np.ndarray, n_boot: int, seed: int
) -> dict:
    """95% bootstrap intervals, per target, of the AUC on generated images, on real test images, and
    of their ratio (independent resamples of the two image sets, paired draw by draw)."""
    labels, group = label_matrix(conditions), conditions["group"].to_numpy()
    intervals = {}
    for target in TARGETS:
        k = PATHOLOGIES.index(target)
        rows = (group == target) | ((group == UNIFORM) & (labels[:, k] == 0))
        real_y = test[target].to_numpy()
        if real_y.min() == real_y.max() or labels[rows, k].min() == labels[rows, k].max():
            continue
        fake_boot = bootstrap_aucs(labels[rows, k], [fake_probs[rows, k]], n_boot, seed)[0]
        real_boot = bootstrap_aucs(real_y, [real_probs[:, k]], n_boot, seed + 1)[0]
        with np.errstate(divide="ignore", invalid="ignore"):  # a resample where the real AUC is 0
            ratio = fake_boot / real_boot
        intervals[target] = {
            "generated": confidence_interval(fake_boot),
            "real": confidence_interval(real_boot),
            "ratio": confidence_interval(ratio),
        }
    return intervals


def counterfactual_images(generator, conditions: pd.DataFrame, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per target, images of its group's vectors with the target's bit on and with it off, from the
    same latents: only the bit differs between the two images of a pair."""
    pairs = {}
    for k, target in enumerate(TARGETS):
        on = label_matrix(conditions[conditions["group"] == target])
        on[:, PATHOLOGIES.index(target)] = 1
        off = on.copy()
        off[:, PATHOLOGIES.index(target)] = 0
        # the same stream for both: the same latents (or starting noise)
        pairs[target] = tuple(to_uint8(generator.draw(torch.from_numpy(v), stream(seed, COUNTERFACTUAL + k))) for v in (on, off))
    return pairs


def counterfactual_shift(model, pairs: dict, n_boot: int, seed: int) -> dict:
    """Per target: the judge's probability of the target with the bit on minus off, pair by pair
    (median, with a 95% bootstrap interval), and the share of pairs where turning it on raises it. A
    generator that draws only what co-occurs with a finding, not the finding, scores about zero.
    Beside it, what no judge decides: how much and where the pixels change (`pair_change`)."""
    rng = np.random.default_rng(seed)
    result = {}
    for target, (on, off) in pairs.items():
        k = PATHOLOGIES.index(target)
        shift = classifier.embed_and_score(model, on)[1][:, k] - classifier.embed_and_score(model, off)[1][:, k]
        medians = np.median(shift[rng.integers(len(shift), size=(n_boot, len(shift)))], axis=1)
        result[target] = {
            "median_shift": float(np.median(shift)),
            "ci": confidence_interval(medians),
            "share_raised": float((shift > 0).mean()),
            "pairs": len(shift),
            **pair_change(on, off),
        }
    return result


TOP_PIXELS = 0.05  # a sign covers a small part of the image


def pair_change(on: np.ndarray, off: np.ndarray) -> dict:
    """How the two images of each pair differ: the mean |on - off| (pixels in [-1, 1]), and the
    share of it held by the 5% of pixels that changed most (median over pairs). A drawn sign changes
    a small area, so the phantom's own pairs put all of the change there; a generator that changes
    the whole image a little, whatever that does to a judge, spreads it (a share near 5%)."""
    change = np.abs(on.astype(np.float32) - off.astype(np.float32)).reshape(len(on), -1) / 127.5
    top = np.sort(change, axis=1)[:, -max(1, int(change.shape[1] * TOP_PIXELS)) :].sum(axis=1)
    shares = top / np.maximum(change.sum(axis=1), 1e-12)
    return {"mean_change": float(change.mean()), "top_share": float(np.median(shares))}


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


def comparable_frechet(real: np.ndarray, fake: np.ndarray, conditions: pd.DataFrame) -> dict:
    """The overall Fréchet distance over the first COMPARABLE_IMAGES generated images taken evenly
    from the groups (uniform and one per target). The distance shrinks as images are added, so two
    generators compare only over equal numbers, whatever --n each was evaluated with."""
    per_group = COMPARABLE_IMAGES // (len(TARGETS) + 1)
    picks = conditions.groupby("group", sort=False).head(per_group).index.to_numpy()
    return {"images": len(picks), "overall": frechet_distance(real, fake[picks])}


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
        ratio_ci = result.get("fidelity_ci", {}).get(name, {}).get("ratio")
        shift = result.get("counterfactual", {}).get(name, {})
        rows.append(
            {
                "class": name,
                "Fréchet": result["frechet"].get(name),
                "AUC real test": real,
                "AUC generated": fake,
                "fidelity ratio": fake / real if real and fake else None,
                "ratio 95% CI": f"[{ratio_ci[0]:.3f}, {ratio_ci[1]:.3f}]" if ratio_ci else None,
                "shift on−off": shift.get("median_shift"),
                "shift 95% CI": f"[{shift['ci'][0]:.4f}, {shift['ci'][1]:.4f}]" if shift else None,
                "share raised": shift.get("share_raised"),
                "change on−off": shift.get("mean_change"),  # absent from results of older chexbal versions
                "top-5% share": shift.get("top_share"),
                "AUC renderer": renderer,
                "median p generated": medians.get("generated", {}).get(name),
                "median p real": medians.get("real_test_positives", {}).get(name),
            }
        )
    table = pd.DataFrame(rows)
    fine = ("shift on−off", "change on−off")  # thousandths of a probability or a pixel: four places
    return table.round({name: 4 if name in fine else 3 for name in table.columns})


UNIFORM = "pool"


def evaluation_conditions(pool: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
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
    from chexbal.data.sources.phantom import render_block as render_phantoms

    raw = pd.read_csv(folder / "raw-labels.csv").set_index("index").loc[conditions["index"], list(PATHOLOGIES)]
    paths = [f"{p}#eval{i}" for i, p in enumerate(conditions["Path"])]  # fresh anatomy, same labels
    images = render_phantoms(paths, raw.to_numpy(float), size, seed)
    _, probs = classifier.embed_and_score(model, images)
    return fidelity_aucs(conditions, probs)
