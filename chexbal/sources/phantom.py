"""The embedded phantom source: procedural chest radiographs drawn from real CheXpert label vectors.

The label vectors are the frontal rows of CheXpert's train.csv that torchxrayvision ships, so class
imbalance, co-occurrence and patient structure are CheXpert's own. Each finding has its own sign,
drawn on varied anatomy; an uncertain label (-1) draws the sign at half strength. The three targets
(Lung Lesion, Pleural Other, Fracture) are small, low-contrast signs, so a classifier needs many
positives to find them. Everything is drawn in coordinates from -1 to 1, so any size works, and a
row's image depends only on its Path, its labels and the seed.

Results on phantoms are a benchmark of the method, never a clinical claim.
"""

from __future__ import annotations

import functools
import importlib.util
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import ChexbalError
from ..labels import PATHOLOGIES
from ..splits import patient_of

UNCERTAIN_STRENGTH = 0.5


def labels_csv() -> Path:
    spec = importlib.util.find_spec("torchxrayvision")  # find the file without importing torch
    if spec is None or spec.origin is None:
        raise ChexbalError("torchxrayvision is not installed: it ships the CheXpert labels the phantom uses")
    return Path(spec.origin).parent / "data" / "chexpert_train.csv.gz"


def read_table(views: str = "frontal") -> pd.DataFrame:
    if views != "frontal":
        raise ChexbalError("the phantom source draws frontal views only: use --views frontal", 2)
    table = pd.read_csv(labels_csv())
    table = table[table["Frontal/Lateral"] == "Frontal"].reset_index(drop=True)
    table.insert(1, "patient", table["Path"].map(patient_of))
    return table


def render_block(paths: list[str], raw_labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    return np.stack([render(path, labels, size, seed) for path, labels in zip(paths, raw_labels)])


def render(path: str, raw: np.ndarray, size: int, seed: int) -> np.ndarray:
    """One uint8 (size, size) radiograph for a row's raw labels (1, 0, -1 or NaN, CSV order)."""
    rng = np.random.default_rng([seed, zlib.crc32(path.encode())])
    y, x = _grid(size)
    a = _anatomy(rng)
    # Pose: shift, scale and a small rotation of the patient within the frame.
    c, s = np.cos(a["tilt"]), np.sin(a["tilt"])
    u = (c * (x - a["dx"]) + s * (y - a["dy"])) / a["scale"]
    v = (-s * (x - a["dx"]) + c * (y - a["dy"])) / a["scale"]
    sign = {name: _strength(raw[i], rng) for i, name in enumerate(PATHOLOGIES)}

    lungs = [_soft_ellipse(u, v, side * a["lung_x"], -0.05, a["lung_w"], a["lung_h"]) for side in (-1, 1)]
    lung = np.maximum(*lungs)
    image = 0.03 + 0.5 * _soft_ellipse(u, v, 0, 0.1, 0.95, 1.1)
    image -= lung * (0.33 - 0.05 * _smooth_noise(rng, size, 7))
    image += 0.2 * _soft_ellipse(u, v, 0, -0.35, 0.1 * (1 + 0.6 * sign["Enlarged Cardiomediastinum"]), 0.6)
    heart = a["heart"] * (1 + 0.3 * sign["Cardiomegaly"])
    image += 0.28 * _soft_ellipse(u, v, 0.1, 0.3, 0.3 * heart, 0.24 * heart)
    image += _ribs(u, v, a, rng, sign["Fracture"])
    image += _lung_findings(u, v, a, rng, sign, lungs)
    image += _pleural_findings(u, v, a, rng, sign, lungs)
    image += sign["Support Devices"] * _devices(u, v, rng)

    image = a["contrast"] * image + a["brightness"]
    image = np.clip(image, 0, 1) ** a["gamma"] + rng.normal(0, 0.015, image.shape)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def _anatomy(rng: np.random.Generator) -> dict[str, float]:
    return {
        "dx": rng.normal(0, 0.03),
        "dy": rng.normal(0, 0.03),
        "scale": rng.uniform(0.88, 1.0),
        "tilt": rng.normal(0, 0.04),
        "lung_x": rng.uniform(0.33, 0.39),
        "lung_w": rng.uniform(0.24, 0.3),
        "lung_h": rng.uniform(0.52, 0.62),
        "heart": rng.uniform(0.9, 1.1),
        "rib_gap": rng.uniform(0.14, 0.17),
        "contrast": rng.uniform(0.85, 1.15),
        "brightness": rng.normal(0, 0.04),
        "gamma": rng.uniform(0.8, 1.25),
    }


def _strength(value: float, rng: np.random.Generator) -> float:
    """How strongly to draw a finding: 0 if absent, about 1 if positive, about half if uncertain."""
    if value == 1:
        return rng.uniform(0.75, 1.25)
    if value == -1:
        return UNCERTAIN_STRENGTH * rng.uniform(0.75, 1.25)
    return 0.0


def _ribs(u, v, a, rng, fracture: float) -> np.ndarray:
    """Posterior ribs as arcs over each lung; a fracture breaks one rib: a gap, a step and a small
    callus at the break."""
    broken = (rng.choice((-1, 1)), rng.integers(2, 6), rng.uniform(0.45, 0.8)) if fracture else None
    ribs = np.zeros_like(u)
    lateral = np.abs(u)
    for side in (-1, 1):
        on_side = np.clip((side * u - 0.05) * 8, 0, 1) * (lateral < a["lung_x"] + a["lung_w"] + 0.05)
        for k in range(7):
            arc = -0.6 + k * a["rib_gap"] + 0.5 * (lateral - 0.1) ** 2
            if broken is not None and (side, k) == broken[:2]:
                at = a["lung_x"] + (broken[2] - 0.5) * a["lung_w"]
                callus = 0.22 * fracture * _blob(lateral, v, at, arc, 0.07)
                arc = arc + 0.12 * fracture * (lateral > at)
                gap = 1 - np.exp(-(((lateral - at) / 0.07) ** 2))
                ribs += 0.1 * on_side * np.exp(-(((v - arc) / 0.028) ** 2)) * gap + callus * on_side
            else:
                ribs += 0.1 * on_side * np.exp(-(((v - arc) / 0.028) ** 2))
    return ribs


def _lung_findings(u, v, a, rng, sign, lungs) -> np.ndarray:
    """Parenchymal signs: a nodule, patchy and lobar opacities, edema, atelectasis, pneumothorax."""
    out = np.zeros_like(u)
    side = rng.choice((-1, 1))
    lung = lungs[(side + 1) // 2]
    cx, cy = side * a["lung_x"], -0.05
    if sign["Lung Lesion"]:
        px, py = _point_in_lung(rng, a, side, 0.7)
        out += 0.2 * sign["Lung Lesion"] * _soft_ellipse(u, v, px, py, 0.075, 0.075, 4)
    if sign["Lung Opacity"]:
        px, py = _point_in_lung(rng, a, side, 0.6)
        out += 0.14 * sign["Lung Opacity"] * _blob(u, v, px, py, 0.22) * lung
    if sign["Pneumonia"]:
        for _ in range(4):
            px, py = _point_in_lung(rng, a, side, 0.7)
            out += 0.1 * sign["Pneumonia"] * _blob(u, v, px, py, 0.09) * lung
    if sign["Consolidation"]:
        out += 0.22 * sign["Consolidation"] * lung * _step(v - (cy + 0.2 * a["lung_h"]), 25)
    if sign["Edema"]:
        out += 0.13 * sign["Edema"] * sum(_blob(u, v, sx * 0.22, 0.0, 0.28) for sx in (-1, 1)) * np.maximum(*lungs)
    if sign["Atelectasis"]:
        level = cy + rng.uniform(0.3, 0.55) * a["lung_h"]
        out += 0.16 * sign["Atelectasis"] * lung * np.exp(-(((v - level) / 0.035) ** 2))
    if sign["Pneumothorax"]:
        apex = _blob(u, v, cx + side * 0.5 * a["lung_w"], cy - 0.7 * a["lung_h"], 0.3)
        out -= 0.12 * sign["Pneumothorax"] * lung * _step(apex - 0.5, 20)
    return out


def _pleural_findings(u, v, a, rng, sign, lungs) -> np.ndarray:
    """Signs of the pleura: an effusion's basal meniscus, and a thin band along the lateral wall."""
    out = np.zeros_like(u)
    if sign["Pleural Effusion"]:
        side = rng.choice((-1, 1))
        lateral = np.clip(side * u - a["lung_x"] + a["lung_w"], 0, None)
        meniscus = -0.05 + a["lung_h"] * rng.uniform(0.45, 0.7) - 0.6 * lateral  # higher at the wall
        out += 0.3 * sign["Pleural Effusion"] * lungs[(side + 1) // 2] * _step(v - meniscus, 30)
    if sign["Pleural Other"]:
        side = rng.choice((-1, 1))
        top = -0.05 + a["lung_h"] * rng.uniform(-0.6, 0.1)
        wall = side * (a["lung_x"] + a["lung_w"] * np.sqrt(np.clip(1 - ((v + 0.05) / a["lung_h"]) ** 2, 0, 1)))
        band = np.exp(-(((u - wall + side * 0.07) / 0.045) ** 2)) * _step(v - top, 30) * _step(top + 0.45 - v, 30)
        out += 0.3 * sign["Pleural Other"] * band
    return out


def _devices(u, v, rng) -> np.ndarray:
    """An endotracheal tube down the midline and a central line from the shoulder."""
    tip = rng.uniform(-0.45, -0.2)
    tube = np.exp(-(((u - 0.02) / 0.018) ** 2)) * _step(tip - v, 40)
    start = rng.uniform(0.55, 0.75)
    line_u = start - (start - 0.05) * np.clip((v + 0.75) / 0.7, 0, 1) ** 0.5
    line = np.exp(-(((u - line_u) / 0.014) ** 2)) * _step(v + 0.8, 40) * _step(0.05 - v, 40)
    return 0.35 * tube + 0.3 * line


def _point_in_lung(rng, a, side: int, reach: float) -> tuple[float, float]:
    angle, radius = rng.uniform(0, 2 * np.pi), reach * np.sqrt(rng.uniform())
    return side * a["lung_x"] + radius * a["lung_w"] * np.cos(angle), -0.05 + radius * a["lung_h"] * np.sin(angle)


def _soft_ellipse(u, v, cx, cy, rx, ry, sharpness: float = 12.0) -> np.ndarray:
    r = np.sqrt(((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2)
    return _step(1 - r, sharpness)


def _blob(u, v, cx, cy, radius) -> np.ndarray:
    return np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / radius**2)


def _step(t, sharpness: float) -> np.ndarray:
    return 0.5 * (1 + np.tanh(sharpness * t))


def _smooth_noise(rng, size: int, cells: int) -> np.ndarray:
    """Low-frequency texture (lung markings, soft tissue), bicubically upsampled from a coarse grid."""
    coarse = Image.fromarray(rng.normal(0, 1, (cells, cells)).astype(np.float32), mode="F")
    return np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC))


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    axis = (np.arange(size) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(axis, axis, indexing="ij")
    return y, x
