"""The results in words and display tables: the answer, Table 2's cells, the comparisons as a reader
sees them. A claim is worded only where the Holm-adjusted p allows it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from chexbal.analysis.evaluate import format_p
from chexbal.analysis.paper import CALIBRATION_BAND, PAPER_ARMS  # PAPER_ARMS: always shown in Table 2
from chexbal.classify.arms import arm_order
from chexbal.data.labels import TARGETS

GAP = "— (not run)"
WORDS = {"helps": "better", "hurts": "worse", "no detectable difference": "no detectable difference"}


def rows_seen(rows) -> str:
    """A generator's training rows in words: a count, or the description an older generator carries."""
    return f"{rows:,} rows" if isinstance(rows, (int, np.integer)) else str(rows)


def auc_grid(aucs: pd.DataFrame, comparisons: pd.DataFrame, classes) -> pd.DataFrame:
    """Table 2's layout: a row per (regimen, class), a column per arm (the paper's three, and every
    other arm that ran): mean AUC [CI]; Δ from none [CI], Holm-adjusted p."""
    rows = []
    versus_none = comparisons[comparisons["against"] == "none"].set_index(["regimen", "class", "arm"])
    shown = sorted(set(PAPER_ARMS) | set(aucs["arm"]), key=arm_order)
    for (regimen, name), group in aucs[aucs["class"].isin(classes)].groupby(["regimen", "class"], sort=False):
        cells = {"regimen": regimen, "class": name}
        by_arm = group.set_index("arm")
        for arm in shown:
            if arm not in by_arm.index:
                cells[arm] = GAP
                continue
            r = by_arm.loc[arm]
            cell = f"{r['auc']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            if (regimen, name, arm) in versus_none.index:
                c = versus_none.loc[(regimen, name, arm)]
                cell += f"; Δ {c['diff']:+.3f} [{c['adj_low']:+.3f}, {c['adj_high']:+.3f}], p {format_p(c['p_holm'])}"
            cells[arm] = cell
        rows.append(cells)
    return pd.DataFrame(rows)


def seeds_note(aucs: pd.DataFrame) -> str:
    """How many seeds stand behind Table 2, in words; a single seed is said plainly."""
    parts = []
    for regimen, group in aucs.groupby("regimen", sort=False):
        low, high = group["seeds"].min(), group["seeds"].max()
        count = f"{low}" if low == high else f"{low} to {high}"
        parts.append(f"{regimen}: {count} seed{'s' if high > 1 else ''} per arm")
    single = (aucs.groupby("regimen")["seeds"].max() < 2).any()
    caveat = " With a single seed an interval covers test patients only, not seed-to-seed variation." if single else ""
    return "Seeds: " + "; ".join(parts) + "." + caveat


def comparisons_table(comparisons: pd.DataFrame) -> pd.DataFrame:
    """Each comparison with its unadjusted 95% interval and p, and the Holm-adjusted interval and p
    its verdict rests on."""
    interval = lambda d, lo, hi: f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"  # noqa: E731
    shown = comparisons.assign(
        **{
            "Δ [95% CI, unadjusted]": list(map(interval, comparisons["diff"], comparisons["ci_low"], comparisons["ci_high"])),
            "p": comparisons["p"].map(format_p),
            "Δ [Holm-adjusted CI]": list(map(interval, comparisons["diff"], comparisons["adj_low"], comparisons["adj_high"])),
            "p Holm": comparisons["p_holm"].map(format_p),
        }
    )
    columns = ["regimen", "class", "arm", "against", "seeds", "Δ [95% CI, unadjusted]", "p", "Δ [Holm-adjusted CI]", "p Holm"]
    return shown[[*columns, "verdict"]]


def answer(
    aucs: pd.DataFrame, comparisons: pd.DataFrame, generators: pd.DataFrame, phantom: bool, changes: pd.DataFrame | None = None
) -> list[str]:
    """The report's conclusions, worded from the numbers: a claim only where the Holm-adjusted p
    across seeds is below 0.05; `changes` (results.size_changes, Holm-adjusted) adds the data-size line."""
    lines = []
    if comparisons.empty:
        lines.append("Only one arm has finished runs: nothing to compare yet.")
    for regimen, group in comparisons.groupby("regimen", sort=False):
        at_regimen = aucs[aucs["regimen"] == regimen]
        seeds = at_regimen.groupby("arm", sort=False)["seeds"].max()
        seed_note = ", ".join(f"{arm} {n}" for arm, n in seeds.items())
        seed_note += f"; epochs per run: {', '.join(sorted(set(at_regimen['epochs'])))}"
        claims = []
        for (arm, against), rows in group.groupby(["arm", "against"], sort=False):
            for verdict in ("helps", "hurts"):
                hit = rows[rows["verdict"] == verdict]
                if len(hit):
                    claims.append(
                        f"`{arm}` {'beats' if verdict == 'helps' else 'is worse than'} `{against}` on "
                        + ", ".join(
                            f"{r['class']} ({r['diff']:+.3f} [{r['adj_low']:+.3f}, {r['adj_high']:+.3f}], p {format_p(r['p_holm'])})"
                            for _, r in hit.iterrows()
                        )
                    )
        lines.append(
            f"**{regimen}** (seeds per arm: {seed_note}). "
            + ("; ".join(claims) + "." if claims else "No arm differs detectably from `none` or `oversample` on a target.")
            + " Every other comparison: no detectable difference."
        )
        lines += gan_lines(regimen, group)
        if seeds.max() < 2:
            lines.append(
                f"At {regimen} each arm has a single seed: intervals cover test patients only, not the "
                "seed-to-seed variation, so they understate the uncertainty."
            )
    lines += generator_lines(generators, aucs)
    if changes is not None and len(changes):
        lines.append(size_line(changes))
    lines.append(
        "Intervals: 95%, resampling training seeds, then test patients (stratified by whether a patient has "
        "a positive image). p: two-sided, the mean paired difference over its bootstrap standard error; Holm-Bonferroni over "
        'every comparison in the table. "No detectable difference" is not evidence of equality.'
    )
    if phantom:
        lines.append("These are phantom results: a benchmark of the method, not a clinical finding.")
    return lines


def generator_lines(generators: pd.DataFrame, aucs: pd.DataFrame) -> list[str]:
    """What the generator behind each generated or imported set saw, for the sets whose arm has runs
    (a set made ahead of its trainings says nothing about the answer yet)."""
    lines = []
    trained = set(zip(aucs["regimen"], aucs["arm"])) if len(aucs) else set()
    for _, g in generators.iterrows():
        if (g["regimen"], g["arm"]) not in trained:
            continue
        rows = rows_seen(g["rows"])
        if str(g["generator trained on regimen"]).startswith("declared: "):
            lines.append(
                f"At {g['regimen']}, `{g['arm']}` added imported images; their generator was, as its user declared, trained "
                f"on {g['generator trained on regimen'][len('declared: ') :]} ({rows}; short of the plan: {g['short of the plan']})."
            )
            continue
        lines.append(
            f"At {g['regimen']}, `{g['arm']}` used a generator trained on regimen {g['generator trained on regimen']} "
            f"({rows}; validation patients excluded: {g['validation patients excluded']})."
        )
    return lines


def gan_lines(regimen: str, comparisons: pd.DataFrame) -> list[str]:
    """The question itself, per generator arm: against `oversample` (the same extra images, as repeats
    of real positives), target by target, whatever the verdict."""
    lines = []
    for arm, label in (
        ("gan-regimen", "the fair GAN arm"),
        ("gan-regimen-seed1", "the fair GAN arm, a second generator trained with seed 1"),
        ("gan", "the pool generator's arm"),
        ("diffusion-regimen", "the fair diffusion arm"),
        ("diffusion", "the pool diffusion model's arm"),
    ):
        rows = comparisons[(comparisons["arm"] == arm) & (comparisons["against"] == "oversample")]
        if len(rows):
            cells = [
                f"{r['class']} {WORDS[r['verdict']]} ({r['diff']:+.3f} [{r['adj_low']:+.3f}, {r['adj_high']:+.3f}])"
                for _, r in rows.iterrows()
            ]
            lines.append(f"At {regimen}, `{arm}` ({label}) against `oversample`: " + "; ".join(cells) + ".")
    return lines


CHANGE_WORDS = {"helps": "rises", "hurts": "falls", "no detectable difference": "no detectable change"}


def size_table(changes: pd.DataFrame) -> pd.DataFrame:
    """Each comparison at its smallest and largest regimen, and the change between, Holm-adjusted."""
    interval = lambda d, lo, hi: f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"  # noqa: E731
    return pd.DataFrame(
        {
            "class": changes["class"],
            "comparison": [f"{a} − {b}" for a, b in zip(changes["arm"], changes["against"])],
            "from": [f"{r}: {d:+.3f}" for r, d in zip(changes["from"], changes["diff_from"])],
            "to": [f"{r}: {d:+.3f}" for r, d in zip(changes["to"], changes["diff_to"])],
            "change [Holm-adjusted CI]": list(map(interval, changes["diff"], changes["adj_low"], changes["adj_high"])),
            "p Holm": changes["p_holm"].map(format_p),
            "verdict": changes["verdict"].map(CHANGE_WORDS),
        }
    )


def size_line(changes: pd.DataFrame) -> str:
    """The paper's claim that the gain shrinks with data size, worded from the changes' verdicts."""
    spans = sorted({f"{a} to {b}" for a, b in zip(changes["from"], changes["to"])})
    found = changes[changes["verdict"] != "no detectable difference"]
    claims = [
        f"`{r['arm']}` − `{r['against']}` on {r['class']} {CHANGE_WORDS[r['verdict']]} from {r['diff_from']:+.3f} to "
        f"{r['diff_to']:+.3f} ({r['diff']:+.3f} [{r['adj_low']:+.3f}, {r['adj_high']:+.3f}], p {format_p(r['p_holm'])})"
        for _, r in found.iterrows()
    ]
    head = f"Against data size ({', '.join(spans)}; Holm over the {len(changes)} changes): "
    if not claims:
        return (
            head
            + "no comparison's Δ changes detectably with data size, so these runs neither show nor rule out a gain that shrinks."
        )
    return head + "; ".join(claims) + ". Every other Δ: no detectable change."


def paper_line(beside: pd.DataFrame, phantom: bool) -> str:
    """How near `none` lands to the paper's no-augmentation AUC: the phantom's calibration target, or
    on CheXpert the first check of a reproduction."""
    near = beside[f"within ±{CALIBRATION_BAND}"] == "yes"
    role = "the benchmark's calibration target, docs/phantom.md" if phantom else "the first check of a reproduction"
    line = (
        f"`none` lands within ±{CALIBRATION_BAND} of the paper's no-augmentation AUC on {near.sum()} of {len(beside)} "
        f"(regimen, target) pairs ({role})"
    )
    if (~near).any():
        line += "; off: " + ", ".join(
            f"{r['class']} at {r['regimen']} ({r['here − paper']})" for _, r in beside[~near].iterrows()
        )
    return line + ". The paper's gains come from its own GAN on CheXpert, ours from this plan's `gan` arm."


def shift_words(shift: dict | None) -> str:
    if not shift:
        return "—"
    return f"{shift['median_shift']:+.4f} [{shift['ci'][0]:+.4f}, {shift['ci'][1]:+.4f}]"


def generators_side_by_side(evaluated: dict[str, dict]) -> pd.DataFrame:
    """One row per gan-eval result (by file stem): kind, regimen seen, images, the comparable Fréchet
    distance, and each target's counterfactual shift."""
    rows = []
    for stem, result in evaluated.items():
        comparable = result.get("frechet_comparable", {})
        row = {
            "generator": stem,
            "kind": result.get("generator_kind", "gan"),
            "trained on": f"{result.get('frac', result.get('trained_on', {}).get('frac', float('nan'))):.0%}",
            "images": result["generated"],
            "Fréchet": round(comparable["overall"], 1) if comparable else "— (not recorded)",
        }
        row |= {f"shift {t}": shift_words(result.get("counterfactual", {}).get(t)) for t in TARGETS}
        rows.append(row)
    return pd.DataFrame(rows)


def quality_verdicts(evaluated: dict[str, dict], reference: str | None) -> list[str]:
    """Per generator (the imported ones aside: they have no counterfactual), whether it draws each
    target (its counterfactual shift's interval above 0) and whether it is farther from the real
    images than `reference`, the pool GAN's result: the bar a generator must pass before its arm
    means much. Fréchet distances come without intervals; where one recipe was trained with two
    seeds, their gap says how far luck alone moves the distance, and a smaller gap is not called worse."""
    lines, luck = [], seed_spread(evaluated)
    for stem, result in evaluated.items():
        if result.get("generator_kind") == "imported" or stem == reference:
            continue
        shifts = result.get("counterfactual", {})
        missed = [t for t in TARGETS if t not in shifts or shifts[t]["ci"][0] <= 0]
        draws = (
            "draws all three findings (each shift above 0 with its interval)"
            if not missed
            else (f"does not draw {', '.join(missed)} detectably (the shift's interval reaches 0)")
        )
        lines.append(f"**{stem}** {draws}; {against_gan(result, reference, evaluated.get(reference), luck)}.")
    return lines


def seed_spread(evaluated: dict[str, dict]) -> tuple[float, str] | None:
    """The widest Fréchet gap between generators of one recipe (kind and regimen) that differ only in
    their seed, with words naming them; None where no recipe was evaluated twice."""
    recipes: dict[tuple, dict[int, tuple[float, str]]] = {}
    for stem, result in evaluated.items():
        comparable = result.get("frechet_comparable")
        if result.get("generator_kind") != "imported" and comparable:
            recipe = (result.get("generator_kind", "gan"), result.get("trained_on", {}).get("frac"))
            recipes.setdefault(recipe, {})[result.get("generator_seed", 0)] = (comparable["overall"], stem)
    seeds = [sorted(by_seed.values()) for by_seed in recipes.values() if len(by_seed) > 1]
    gaps = [(pair[-1][0] - pair[0][0], pair) for pair in seeds]
    if not gaps:
        return None
    gap, pair = max(gaps)
    return gap, " and ".join(f"{stem} {frechet:.1f}" for frechet, stem in pair)


def against_gan(result: dict, reference: str | None, gan: dict | None, luck: tuple[float, str] | None = None) -> str:
    if gan is None:
        return "no pool GAN was evaluated to compare its Fréchet distance with"
    mine, theirs = result.get("frechet_comparable"), gan.get("frechet_comparable")
    if not (mine and theirs):
        return f"its Fréchet distance cannot be set beside {reference}'s (not recorded over equal numbers of images)"
    distances = f"Fréchet {mine['overall']:.1f} against {theirs['overall']:.1f}"
    if mine["overall"] <= theirs["overall"]:
        return f"it is no farther from the real images than the pool GAN ({distances})"
    if luck and mine["overall"] - theirs["overall"] <= luck[0]:
        return (
            f"it is farther from the real images than the pool GAN ({distances}) by less than two seeds of one "
            f"recipe differ ({luck[1]}), so not called worse"
        )
    unmeasured = "" if luck else "; how far a seed alone moves the distance is not measured here (no recipe evaluated twice)"
    return (
        f"it is **worse than the pool GAN**: farther from the real images ({distances}), so its arm measures a "
        f"weaker generator than `gan`'s{unmeasured}"
    )
