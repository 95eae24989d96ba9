"""The generation plan (the paper's Table 1): how many synthetic images of each target class.

For each target p, label vectors are drawn with replacement from the real training vectors positive
for p; each drawn vector will condition one generated image. A drawn vector counts for every target
it carries (a Lung Lesion vector may carry Fracture too). The plan is the fewest images such that
every target is at least `share` of the augmented training set: images are added one at a time to
the target furthest below its share, then any class's last image that is not needed is dropped.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from chexbal.data.labels import PATHOLOGIES, TARGETS, label_matrix
from chexbal.errors import ChexbalError

SHARE = 0.15


@dataclasses.dataclass
class Plan:
    real: int
    generate: dict[str, int]
    augmented: int
    share: dict[str, float]
    vectors: pd.DataFrame  # per planned image: `target`, `source_row` (its position in the training rows), 14 labels

    def summary(self) -> dict:
        return {"real": self.real, "generate": self.generate, "augmented": self.augmented, "share": self.share}


def make_plan(train_rows: pd.DataFrame, share: float = SHARE, seed: int = 0, targets=TARGETS) -> Plan:
    if not 0 < share < 1:
        raise ChexbalError(f"--share must be in (0, 1), not {share:g}", 2)
    labels = label_matrix(train_rows)
    cols = [PATHOLOGIES.index(t) for t in targets]
    real_counts = labels[:, cols].sum(axis=0)
    rng = np.random.default_rng(seed)
    pools = {}
    for k, target in enumerate(targets):
        positives = np.flatnonzero(labels[:, cols[k]] == 1)
        if len(positives) == 0:
            raise ChexbalError(f"the training rows have no {target} positive to draw label vectors from")
        pools[target] = positives
    streams: dict[str, list[int]] = {t: [] for t in targets}  # drawn rows (positions in train_rows)
    counts, total = real_counts.astype(float), len(labels)

    def draw(target: str) -> np.ndarray:
        pool = pools[target]
        row = int(pool[rng.integers(len(pool))])
        streams[target].append(row)
        return labels[row, cols]

    check_reachable(pools, labels, cols, share, targets)
    limit = 100 * len(labels) + 100_000
    while (counts < share * total - 1e-9).any():
        if total > limit:  # reachable in the limit, yet not from these draws: never loop for ever
            raise ChexbalError(f"--share {share:g} was not reached after {limit:,} generated images: choose a smaller --share")
        k = int(np.argmin(counts / total - share))
        counts += draw(targets[k])
        total += 1
    counts, total = _drop_unneeded(streams, labels, counts, total, cols, share)
    drawn = [(t, row) for t in targets for row in streams[t]]
    rows = np.array([row for _, row in drawn], dtype=int)
    table = pd.DataFrame(labels[rows], columns=list(PATHOLOGIES)).astype(np.uint8)
    table.insert(0, "target", [t for t, _ in drawn])
    table.insert(1, "source_row", rows)
    return Plan(
        real=len(labels),
        generate={t: len(streams[t]) for t in targets},
        augmented=int(total),
        share={t: float(counts[k] / total) for k, t in enumerate(targets)},
        vectors=table,
    )


def check_reachable(pools, labels: np.ndarray, cols: list[int], share: float, targets) -> None:
    """Refuse a share no plan can reach. Adding images drawn for target t moves the targets' shares
    towards the mean label vector of t's positives; a mix of those means must give every target at
    least `share`."""
    means = np.array([labels[pools[t]][:, cols].mean(axis=0) for t in targets])  # row t: where drawing t leads
    if _best_margin(means, share) < 1e-6:
        raise ChexbalError(
            f"--share {share:g} cannot be reached: drawing from the training rows' positives, every "
            f"target can reach at most {_best_margin(means, 0.0):.3f} at once",
            2,
        )


def _best_margin(means: np.ndarray, share: float) -> float:
    """The linear programme: over mixing weights w (summing to 1), the largest m such that every
    target's share, means.T @ w, is at least share + m. With share 0, the largest share every target
    reaches at once. -inf where infeasible."""
    from scipy.optimize import linprog

    k = len(means)
    result = linprog(
        c=[0] * k + [-1],
        A_ub=np.hstack([-means.T, np.ones((k, 1))]),
        b_ub=-np.full(k, share),
        A_eq=[[1] * k + [0]],
        b_eq=[1],
        bounds=[(0, 1)] * k + [(None, None)],
    )
    return float(-result.fun) if result.status == 0 else float("-inf")


def _drop_unneeded(streams, labels, counts, total, cols, share):
    """Remove each class's last drawn image while every target keeps its share."""
    changed = True
    while changed:
        changed = False
        for stream in streams.values():
            if stream:
                trial = counts - labels[stream[-1], cols]
                if (trial >= share * (total - 1) - 1e-9).all():
                    stream.pop()
                    counts, total, changed = trial, total - 1, True
    return counts, total


def training_rows_for(source: str, frac: float, seed: int, folder=None, views: str = "frontal") -> pd.DataFrame:
    """`chexbal plan`'s training rows: a prepared dataset's (`prepared`), or the same split rebuilt
    from the CheXpert labels torchxrayvision ships, with no images (`chexpert-labels`)."""
    from chexbal.data.dataset import training_rows
    from chexbal.data.prepare import labels_regimen
    from chexbal.data.splits import regimen_split, test_patients

    if source == "prepared":
        return training_rows(folder, frac, seed)
    if source == "chexpert-labels":
        subset = labels_regimen(frac, seed, views)
        return regimen_split(subset, seed, test_patients(subset))[0]
    raise ChexbalError(f"--source must be prepared or chexpert-labels, not {source!r}", 2)
