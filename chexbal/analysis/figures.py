"""The report's PNG figures: the forest plot, AUC against regimen size, learning curves, real vs
generated samples, class activation maps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from chexbal.classify.arms import ARMS  # noqa: E402

# One colour per arm, the same in every figure. tab10 has ten colours (an eleventh index repeats the
# last), so the eleventh arm, real-extra, is black; an imported arm (synthetic:NAME) is light grey,
# since gan-regimen-seed1 has tab10's mid grey.
PALETTE = [matplotlib.colormaps["tab10"](i) for i in range(10)] + ["black"]
ARM_COLOURS = dict(zip(ARMS, PALETTE, strict=True))
CAM_MAP = "inferno"  # perceptually uniform: a brighter colour always means a larger activation


def arm_colour(arm: str):
    return ARM_COLOURS.get(arm, "0.8")


def forest(diffs: pd.DataFrame, targets, path: Path, against: str = "none") -> Path:
    """Per target, each arm's difference from `against` with its Holm-adjusted interval, one row per
    (regimen, arm): the answer at a glance. `diffs` has regimen, class, arm, diff, adj_low, adj_high, verdict."""
    fig, axes = plt.subplots(
        1,
        len(targets),
        figsize=(4.2 * len(targets), 0.32 * diffs.groupby("class").size().max() + 1.4),
        squeeze=False,
        sharey=True,
    )
    labels = list(dict.fromkeys(f"{r}  {a}" for r, a in zip(diffs["regimen"], diffs["arm"])))
    for ax, target in zip(axes[0], targets):
        rows = diffs[diffs["class"] == target]
        for _, row in rows.iterrows():
            y = labels.index(f"{row['regimen']}  {row['arm']}")
            colour = {"helps": "tab:green", "hurts": "tab:red"}.get(row["verdict"], "0.3")
            ax.errorbar(
                row["diff"],
                y,
                xerr=[[row["diff"] - row["adj_low"]], [row["adj_high"] - row["diff"]]],
                fmt="o",
                color=colour,
                capsize=2,
                markersize=4,
            )
        ax.axvline(0, color="0.6", lw=0.8)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
        ax.set(title=target, xlabel=f"test AUC − {against} (Holm-adjusted 95% CI)")
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.invert_yaxis()
    fig.suptitle("green: helps, red: hurts (Holm-adjusted p < 0.05); grey: no detectable difference", fontsize=8)
    return _save(fig, path)


def by_size(aucs: pd.DataFrame, targets, path: Path) -> Path:
    """Per target, mean test AUC over seeds against regimen size, one line per arm, with intervals,
    each arm nudged sideways so the intervals do not overlap. `aucs` has frac, class, arm, auc,
    ci_low, ci_high."""
    fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 3.6), squeeze=False)
    arms = list(dict.fromkeys(aucs["arm"]))
    fracs = sorted(set(aucs["frac"]))
    for ax, target in zip(axes[0], targets):
        for k, arm in enumerate(arms):
            rows = aucs[(aucs["class"] == target) & (aucs["arm"] == arm)].sort_values("frac")
            if rows.empty:
                continue
            nudge = 10 ** (0.03 * (k - (len(arms) - 1) / 2))  # a constant step on the log axis
            ax.errorbar(
                rows["frac"] * 100 * nudge,
                rows["auc"],
                yerr=[rows["auc"] - rows["ci_low"], rows["ci_high"] - rows["auc"]],
                marker="o",
                color=arm_colour(arm),
                capsize=2,
                markersize=3,
                label=arm,
            )
        ax.set(title=target, xlabel="regimen (share of the pool)", ylabel="test AUC (mean over seeds)", xscale="log")
        ax.set_xticks([f * 100 for f in fracs], [f"{f:.0%}" for f in fracs])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))  # room for the legend below the panels
    return _save(fig, path, tight=False)


def learning_curves(histories: dict[str, dict[str, pd.DataFrame]], path: Path) -> Path:
    """Per regimen (a column): train and validation loss (top) and the validation mean AUC that
    selects the epoch (bottom), per arm the mean over seeds with a band from the lowest to the
    highest seed. Each history holds every seed's rows (`seed`, `epoch`, …)."""
    fig, axes = plt.subplots(2, len(histories), figsize=(4.5 * len(histories), 6.2), squeeze=False, sharex="col")
    for k, (regimen, arms) in enumerate(histories.items()):
        loss, auc = axes[0][k], axes[1][k]
        for arm, history in arms.items():
            by_epoch = history.groupby("epoch")
            colour = arm_colour(arm)
            loss.plot(by_epoch["train_loss"].mean(), "-", color=colour, lw=1, label=f"{arm} train")
            _band(loss, by_epoch["val_loss"], colour, f"{arm} validation", "--")
            _band(auc, by_epoch["val_mean_auc"], colour, arm, "-")
        loss.set(title=regimen, ylabel="BCE loss")
        auc.set(xlabel="epoch", ylabel="validation mean AUC (selects the epoch)")
        loss.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def _band(ax, series, colour, label: str, style: str) -> None:
    """The mean over seeds as a line, the lowest to highest seed as a band."""
    ax.plot(series.mean(), style, color=colour, lw=1, label=label)
    ax.fill_between(series.min().index, series.min(), series.max(), color=colour, alpha=0.15, lw=0)


def image_grid(rows: dict[str, list[np.ndarray]], path: Path, title: str = "", colour_bar: str = "") -> Path | None:
    """Rows of grey images (or RGB overlays), each row labelled by its key; `colour_bar` labels a bar
    of CAM_MAP (for activation-map overlays). None, and no file, when no row has an image."""
    width = max((len(images) for images in rows.values()), default=0)
    if width == 0:  # a tiny plan can ask for no image of any target
        return None
    fig, axes = plt.subplots(len(rows), width, figsize=(1.3 * width, 1.4 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(width):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(images[c], cmap="gray", vmin=0, vmax=255)
        axes[r][0].set_title(label, fontsize=7, loc="left")
    if title:  # placed in inches from the top: a fraction of a tall grid's height overlapped its first row
        fig.suptitle(title, fontsize=9, y=1 - 0.15 / fig.get_figheight(), va="top")
    if colour_bar:
        scale = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1), cmap=CAM_MAP)
        fig.colorbar(scale, ax=axes, shrink=0.6, pad=0.02).set_label(colour_bar, fontsize=7)
        return _save(fig, path, tight=False)
    return _save(fig, path, title_inches=0.4 if title else 0.0)


def overlay(image: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """A grey image with its activation map (0-1) blended over it in CAM_MAP, as uint8 RGB."""
    heat = matplotlib.colormaps[CAM_MAP](cam)[..., :3]
    grey = np.repeat(image[..., None] / 255.0, 3, axis=2)
    return (255 * (0.55 * grey + 0.45 * heat)).astype(np.uint8)


def _save(fig, path: Path, tight: bool = True, title_inches: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:  # a colour bar placed beside the axes does not survive tight_layout
        fig.tight_layout(rect=(0, 0, 1, 1 - title_inches / fig.get_figheight()))  # the title's band kept clear
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
