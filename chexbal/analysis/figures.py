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

COLOURS = [matplotlib.colormaps["tab10"](i) for i in range(10)]


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
    """Per target, mean test AUC over seeds against regimen size, one line per arm, with intervals.
    `aucs` has frac, class, arm, auc, ci_low, ci_high."""
    fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 3.4), squeeze=False)
    arms = list(dict.fromkeys(aucs["arm"]))
    for ax, target in zip(axes[0], targets):
        for arm, colour in zip(arms, COLOURS):
            rows = aucs[(aucs["class"] == target) & (aucs["arm"] == arm)].sort_values("frac")
            if rows.empty:
                continue
            ax.errorbar(
                rows["frac"] * 100,
                rows["auc"],
                yerr=[rows["auc"] - rows["ci_low"], rows["ci_high"] - rows["auc"]],
                marker="o",
                color=colour,
                capsize=2,
                markersize=3,
                label=arm,
            )
        ax.set(title=target, xlabel="regimen (% of the pool)", ylabel="test AUC (mean over seeds)", xscale="log")
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def learning_curves(histories: dict[str, dict[str, pd.DataFrame]], path: Path) -> Path:
    """One panel per regimen: train and validation loss per epoch, one colour per arm."""
    fig, axes = plt.subplots(1, len(histories), figsize=(4.5 * len(histories), 3.5), squeeze=False)
    for ax, (regimen, arms) in zip(axes[0], histories.items()):
        for (arm, history), colour in zip(arms.items(), COLOURS):
            ax.plot(history["epoch"], history["train_loss"], "-", color=colour, label=f"{arm} train")
            ax.plot(history["epoch"], history["val_loss"], "--", color=colour, label=f"{arm} validation")
        ax.set(title=regimen, xlabel="epoch", ylabel="BCE loss")
        ax.legend(fontsize=7)
    return _save(fig, path)


def image_grid(rows: dict[str, list[np.ndarray]], path: Path, title: str = "") -> Path:
    """Rows of grey images (or RGB overlays), each row labelled by its key."""
    width = max(len(images) for images in rows.values())
    fig, axes = plt.subplots(len(rows), width, figsize=(1.3 * width, 1.4 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(width):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(images[c], cmap="gray", vmin=0, vmax=255)
        axes[r][0].set_title(label, fontsize=7, loc="left")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def overlay(image: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """A grey image with its activation map blended over it in the jet colour map, as uint8 RGB."""
    heat = matplotlib.colormaps["jet"](cam)[..., :3]
    grey = np.repeat(image[..., None] / 255.0, 3, axis=2)
    return (255 * (0.55 * grey + 0.45 * heat)).astype(np.uint8)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
