"""Results over several training seeds: a hierarchical bootstrap (seeds, then test patients).

One seed is one draw of initialisation, batch order and augmentation; seed-to-seed differences at 1%
exceed the test-set noise a single run's interval shows. So each arm's AUC is the mean over its seeds,
and its interval comes from resampling seeds (with replacement) and, within each resample, the test
patients (`evaluate.resample_weights`, shared by every arm and seed so comparisons stay paired).
Differences between arms are paired by seed. The p-value is two-sided, from the mean difference over
its bootstrap standard error (a Wald test): a percentile p could not go below 1/n_boot, too coarse
for a Holm correction over dozens of comparisons. With one seed, only the test patients are
resampled, and the report says so.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from sklearn.metrics import roc_auc_score

from chexbal.analysis.evaluate import confidence_interval, resample_weights, weighted_aucs


@dataclasses.dataclass
class ArmResult:
    seeds: list[int]
    per_seed: dict[int, float]  # test AUC of each seed's run
    mean: float
    ci: tuple[float, float]


@dataclasses.dataclass
class Comparison:
    seeds: list[int]  # the seeds both arms have
    per_seed: dict[int, float]  # arm minus reference, per seed
    diff: float
    ci: tuple[float, float]  # percentile interval, unadjusted
    p: float  # Wald: diff over se
    se: float  # the bootstrap standard error of diff
    replicates: np.ndarray  # diff's bootstrap values: regimens on one test set share its resamples


class SeedBootstrap:
    """Bootstrap AUCs of every (arm, seed) run on one class, on shared patient resamples."""

    def __init__(
        self,
        y: np.ndarray,
        patients: np.ndarray | None,
        scores: dict[str, dict[int, np.ndarray]],
        n_boot: int = 1000,
        seed: int = 0,
    ):
        self.y, self.n_boot = np.asarray(y).astype(bool), n_boot
        self.rng = np.random.default_rng(seed + 1)
        weights = resample_weights(self.y, n_boot, seed, patients)
        self.point = {arm: {s: float(roc_auc_score(self.y, v)) for s, v in runs.items()} for arm, runs in scores.items()}
        self.boot = {arm: {s: weighted_aucs(self.y, v, weights) for s, v in runs.items()} for arm, runs in scores.items()}

    def _seed_mean(self, per_seed: np.ndarray) -> np.ndarray:
        """(seeds, n_boot) bootstrap values -> n_boot means over a resample of the seeds each."""
        picks = self.rng.integers(len(per_seed), size=(self.n_boot, len(per_seed)))
        return per_seed[picks, np.arange(self.n_boot)[:, None]].mean(axis=1)

    def arm(self, arm: str) -> ArmResult:
        seeds = sorted(self.point[arm])
        means = self._seed_mean(np.array([self.boot[arm][s] for s in seeds]))
        return ArmResult(
            seeds, dict(self.point[arm]), float(np.mean([self.point[arm][s] for s in seeds])), confidence_interval(means)
        )

    def compare(self, arm: str, reference: str) -> Comparison | None:
        seeds = sorted(set(self.point[arm]) & set(self.point.get(reference, {})))
        if not seeds:
            return None
        per_seed = {s: self.point[arm][s] - self.point[reference][s] for s in seeds}
        diffs = self._seed_mean(np.array([self.boot[arm][s] - self.boot[reference][s] for s in seeds]))
        mean = float(np.mean(list(per_seed.values())))
        se = float(np.std(diffs))
        return Comparison(seeds, per_seed, mean, confidence_interval(diffs), wald_p(mean, se), se, diffs)


def wald_p(estimate: float, se: float) -> float:
    """Two-sided p of estimate / se under a normal reference; 1 where there is no spread at all."""
    if se == 0:
        return 1.0 if estimate == 0 else 0.0
    return math.erfc(abs(estimate) / se / math.sqrt(2))
