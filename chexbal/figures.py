"""The report's PNG figures: learning curves, real vs generated samples, class activation maps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def learning_curves(histories: dict[str, dict[str, pd.DataFrame]], path: Path) -> Path:
    """One panel per regimen: train and validation loss per epoch, one colour per arm."""
    fig, axes = plt.subplots(1, len(histories), figsize=(4.5 * len(histories), 3.5), squeeze=False)
    for ax, (regimen, arms) in zip(axes[0], histories.items()):
        for (arm, history), colour in zip(arms.items(), ("tab:blue", "tab:orange", "tab:green")):
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
