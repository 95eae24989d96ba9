"""The embedded phantom source: procedural chest radiographs drawn from real CheXpert label vectors.

The label vectors are the frontal rows of CheXpert's train.csv that torchxrayvision ships, so class
imbalance, co-occurrence and patient structure are CheXpert's own. Each finding has its own sign,
drawn on varied anatomy; an uncertain label (-1) draws the sign at half strength. Like CheXpert's
report-mined labels, the labels are noisy: a positive row does not always show its sign and a
negative one sometimes does (`SHOWN`), which caps what any classifier can score. The three targets
(Lung Lesion, Pleural Other, Fracture) are small, low-contrast signs, so a classifier needs many
positives to find them.

A row is drawn in two steps: `scene` makes every random decision (anatomy, which signs are shown and
where) from its own stream, `paint` turns the scene into pixels with a second stream for texture.
So what was drawn (`signs`, the truth a perfect detector sees) is known without painting, and a sign
can be left out of the same picture. Everything is drawn in coordinates from -1 to 1, so any size
works, and a row's image depends only on its Path, its labels and the seed.

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

from chexbal.data.labels import PATHOLOGIES, TARGETS
from chexbal.data.sources.base import Source
from chexbal.data.splits import patient_of
from chexbal.errors import ChexbalError

RENDERER_VERSION = 5  # recorded in every phantom store; a store drawn by another version is refused
UNCERTAIN_STRENGTH = 0.5
JITTER = (0.75, 1.25)  # a shown sign's strength varies by this factor from row to row

# The label-noise model, standing in for the report labeller's errors: the chance that a row shows a
# finding's sign given its raw label (positive, uncertain, negative or blank). A perfect detector of
# the drawn signs scores at most 0.5 + (shown among positives - shown among negatives) / 2 against the
# labels, so these set each class's ceiling. The targets' are tuned so the ceiling sits just above the
# paper's 100% AUCs (docs/phantom.md). The other classes get a uniform noise that also sets how much a
# classifier can read of a target from the findings that co-occur with it: at version 4's 0.9 / 0.6 a
# 1% classifier read Pleural Other and Fracture from them 0.04 above the paper's curve; at 0.75 / 0.4
# (version 5, round r12) it lands on the curve at 1% and 10%.
SHOWN: dict[str, tuple[float, float, float]] = {
    **{name: (0.75, 0.4, 0.002) for name in PATHOLOGIES[1:]},
    "Lung Lesion": (0.765, 0.3825, 0.002),
    "Pleural Other": (0.52, 0.26, 0.001),
    "Fracture": (0.69, 0.345, 0.002),
}
# How conspicuous each target's sign is (1 = renderer version 1's contrast): with the noise, the
# slope of its learning curve.
CONTRAST = {"Lung Lesion": 2.15, "Pleural Other": 0.45, "Fracture": 0.87}
# A fracture's rib gap is as deep as its sign is strong, full for every clear sign (version 4). Version 3
# broke the rib to its full depth whatever the strength, so even a faint or uncertain fracture was plain
# and a faint share could not flatten Fracture's curve (docs/phantom.md, rounds r10 and r11).
GAP_FOLLOWS_STRENGTH = True
LESION_RADIUS, BAND_WIDTH, BAND_LENGTH, CALLUS_RADIUS = 0.075, 0.045, 0.45, 0.07
# Some shown signs are faint: (the share of a target's shown signs drawn faint, their strength
# factor). Clear signs are learnt from a few examples, faint ones need many, which flattens a target's
# learning curve the way CheXpert's flattens (a subtle finding is still a finding: `signs` counts it).
FAINT: dict[str, tuple[float, float]] = {
    **{target: (0.0, 1.0) for target in TARGETS},
    "Lung Lesion": (0.25, 0.15),
    "Fracture": (0.3, 0.15),
}


def labels_csv() -> Path:
    spec = importlib.util.find_spec("torchxrayvision")  # find the file without importing torch
    if spec is None or spec.origin is None:
        raise ChexbalError("torchxrayvision is not installed: it ships the CheXpert labels the phantom uses")
    return Path(spec.origin).parent / "data" / "chexpert_train.csv.gz"


def read_table(root: Path | None = None, views: str = "frontal") -> pd.DataFrame:
    if root is not None:
        raise ChexbalError("--root is for --source chexpert; the phantom source needs no files", 2)
    if views != "frontal":
        raise ChexbalError("the phantom source draws frontal views only: use --views frontal", 2)
    table = pd.read_csv(labels_csv())
    table = table[table["Frontal/Lateral"] == "Frontal"].reset_index(drop=True)
    table.insert(1, "patient", table["Path"].map(patient_of))
    return table


def render_block(paths: list[str], raw_labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    return np.stack([render(path, labels, size, seed) for path, labels in zip(paths, raw_labels)])


def _images(root, paths: list[str], raw_labels: np.ndarray, size: int, seed: int):
    return render_block(paths, raw_labels, size, seed), []


def render(path: str, raw: np.ndarray, size: int, seed: int, hidden: tuple[str, ...] = ()) -> np.ndarray:
    """One uint8 (size, size) radiograph for a row's raw labels (1, 0, -1 or NaN, CSV order).
    `hidden` findings are left out of the picture, which is otherwise the same."""
    drawn = scene(path, raw, seed)
    for name in hidden:
        drawn["strength"][name] = 0.0
    return paint(drawn, size, np.random.default_rng([seed, _row_key(path), 1]))


def scene(path: str, raw: np.ndarray, seed: int) -> dict:
    """Every random decision about a row: anatomy, each finding's strength (0: not drawn) and where
    each sign goes. The same number of draws whatever the labels, so one finding's label never moves
    another's sign."""
    rng = np.random.default_rng([seed, _row_key(path), 0])
    anatomy = _anatomy(rng)
    strength = {name: _strength(raw[i], SHOWN.get(name), rng) for i, name in enumerate(PATHOLOGIES)}
    side = lambda: int(rng.choice((-1, 1)))  # noqa: E731
    place = {
        "lung side": side(),
        "lesion": _point_in_lung(rng, anatomy, 0.7),
        "opacity": _point_in_lung(rng, anatomy, 0.6),
        "pneumonia": [_point_in_lung(rng, anatomy, 0.7) for _ in range(4)],
        "atelectasis": rng.uniform(0.3, 0.55),
        "effusion": (side(), rng.uniform(0.45, 0.7)),
        "band": (side(), rng.uniform(-0.6, 0.1)),
        "break": (side(), int(rng.integers(2, 6)), rng.uniform(0.45, 0.8)),
        "tube tip": rng.uniform(-0.45, -0.2),
        "line start": rng.uniform(0.55, 0.75),
    }
    for target, draw in zip(TARGETS, rng.uniform(size=len(TARGETS))):  # last: earlier draws are version 2's
        share, factor = FAINT[target]
        strength[target] *= factor if draw < share else 1.0
    return {"anatomy": anatomy, "strength": strength, "place": place}


def paint(drawn: dict, size: int, texture: np.random.Generator) -> np.ndarray:
    a, sign, place = drawn["anatomy"], drawn["strength"], drawn["place"]
    y, x = _grid(size)
    # Pose: shift, scale and a small rotation of the patient within the frame.
    c, s = np.cos(a["tilt"]), np.sin(a["tilt"])
    u = (c * (x - a["dx"]) + s * (y - a["dy"])) / a["scale"]
    v = (-s * (x - a["dx"]) + c * (y - a["dy"])) / a["scale"]

    lungs = [_soft_ellipse(u, v, side * a["lung_x"], -0.05, a["lung_w"], a["lung_h"]) for side in (-1, 1)]
    lung = np.maximum(*lungs)
    image = 0.03 + 0.5 * _soft_ellipse(u, v, 0, 0.1, 0.95, 1.1)
    image -= lung * (0.33 - 0.05 * _smooth_noise(texture, size, 7))
    image += 0.2 * _soft_ellipse(u, v, 0, -0.35, 0.1 * (1 + 0.6 * sign["Enlarged Cardiomediastinum"]), 0.6)
    heart = a["heart"] * (1 + 0.3 * sign["Cardiomegaly"])
    image += 0.28 * _soft_ellipse(u, v, 0.1, 0.3, 0.3 * heart, 0.24 * heart)
    image += _ribs(u, v, a, place["break"], CONTRAST["Fracture"] * sign["Fracture"])
    image += _lung_findings(u, v, a, place, sign, lungs)
    image += _pleural_findings(u, v, a, place, sign, lungs)
    image += sign["Support Devices"] * _devices(u, v, place)

    image = a["contrast"] * image + a["brightness"]
    image = np.clip(image, 0, 1) ** a["gamma"] + texture.normal(0, 0.015, image.shape)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def _row_key(path: str) -> int:
    return zlib.crc32(path.encode())


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


def _strength(value: float, shown: tuple[float, float, float] | None, rng: np.random.Generator) -> float:
    """How strongly to draw a finding: 0 if not shown, about 1 if shown, about half for a shown
    uncertain label. A negative or blank row that shows the sign (a finding the report missed) shows
    it at full strength."""
    chance, jitter = rng.uniform(), rng.uniform(*JITTER)  # always both draws: a fixed stream
    if shown is None:  # No Finding has no sign of its own
        return 0.0
    p_positive, p_uncertain, p_negative = shown
    if value == 1:
        return jitter * (chance < p_positive)
    if value == -1:
        return UNCERTAIN_STRENGTH * jitter * (chance < p_uncertain)
    return jitter * (chance < p_negative)


def _ribs(u, v, a, broken, fracture: float) -> np.ndarray:
    """Posterior ribs as arcs over each lung; a fracture breaks one rib: a gap, a step and a small
    callus at the break."""
    ribs = np.zeros_like(u)
    lateral = np.abs(u)
    for side in (-1, 1):
        on_side = np.clip((side * u - 0.05) * 8, 0, 1) * (lateral < a["lung_x"] + a["lung_w"] + 0.05)
        for k in range(7):
            arc = _rib_arc(a, k, lateral)
            if fracture and (side, k) == broken[:2]:
                at = _break_at(a, broken)
                callus = 0.22 * fracture * _blob(lateral, v, at, arc, CALLUS_RADIUS)
                arc = arc + 0.12 * fracture * (lateral > at)
                clear = CONTRAST["Fracture"] * JITTER[0]  # the weakest clear fracture
                depth = min(1.0, fracture / clear) if GAP_FOLLOWS_STRENGTH else 1.0
                gap = 1 - depth * np.exp(-(((lateral - at) / 0.07) ** 2))
                ribs += 0.1 * on_side * np.exp(-(((v - arc) / 0.028) ** 2)) * gap + callus * on_side
            else:
                ribs += 0.1 * on_side * np.exp(-(((v - arc) / 0.028) ** 2))
    return ribs


def _rib_arc(a, k: int, lateral):
    return -0.6 + k * a["rib_gap"] + 0.5 * (lateral - 0.1) ** 2


def _break_at(a, broken) -> float:
    return a["lung_x"] + (broken[2] - 0.5) * a["lung_w"]


def _lung_findings(u, v, a, place, sign, lungs) -> np.ndarray:
    """Parenchymal signs: a nodule, patchy and lobar opacities, edema, atelectasis, pneumothorax."""
    out = np.zeros_like(u)
    side = place["lung side"]
    lung = lungs[(side + 1) // 2]
    cx, cy = side * a["lung_x"], -0.05
    if sign["Lung Lesion"]:
        px, py = _in_lung(a, side, place["lesion"])
        out += (
            0.2
            * CONTRAST["Lung Lesion"]
            * sign["Lung Lesion"]
            * _soft_ellipse(u, v, px, py, LESION_RADIUS, LESION_RADIUS, sharpness=4)
        )
    if sign["Lung Opacity"]:
        px, py = _in_lung(a, side, place["opacity"])
        out += 0.14 * sign["Lung Opacity"] * _blob(u, v, px, py, 0.22) * lung
    if sign["Pneumonia"]:
        for point in place["pneumonia"]:
            px, py = _in_lung(a, side, point)
            out += 0.1 * sign["Pneumonia"] * _blob(u, v, px, py, 0.09) * lung
    if sign["Consolidation"]:
        out += 0.22 * sign["Consolidation"] * lung * _step(v - (cy + 0.2 * a["lung_h"]), 25)
    if sign["Edema"]:
        out += 0.13 * sign["Edema"] * sum(_blob(u, v, sx * 0.22, 0.0, 0.28) for sx in (-1, 1)) * np.maximum(*lungs)
    if sign["Atelectasis"]:
        level = cy + place["atelectasis"] * a["lung_h"]
        out += 0.16 * sign["Atelectasis"] * lung * np.exp(-(((v - level) / 0.035) ** 2))
    if sign["Pneumothorax"]:
        apex = _blob(u, v, cx + side * 0.5 * a["lung_w"], cy - 0.7 * a["lung_h"], 0.3)
        out -= 0.12 * sign["Pneumothorax"] * lung * _step(apex - 0.5, 20)
    return out


def _pleural_findings(u, v, a, place, sign, lungs) -> np.ndarray:
    """Signs of the pleura: an effusion's basal meniscus, and a thin band along the lateral wall."""
    out = np.zeros_like(u)
    if sign["Pleural Effusion"]:
        side, height = place["effusion"]
        lateral = np.clip(side * u - a["lung_x"] + a["lung_w"], 0, None)
        meniscus = -0.05 + a["lung_h"] * height - 0.6 * lateral  # higher at the wall
        out += 0.3 * sign["Pleural Effusion"] * lungs[(side + 1) // 2] * _step(v - meniscus, 30)
    if sign["Pleural Other"]:
        side, top = place["band"][0], _band_top(a, place["band"])
        band = (
            np.exp(-(((u - _band_centre(a, side, v)) / BAND_WIDTH) ** 2)) * _step(v - top, 30) * _step(top + BAND_LENGTH - v, 30)
        )
        out += 0.3 * CONTRAST["Pleural Other"] * sign["Pleural Other"] * band
    return out


def _band_top(a, band) -> float:
    return -0.05 + a["lung_h"] * band[1]


def _band_centre(a, side: int, v):
    """The band runs 0.07 inside the lateral border of the lung."""
    wall = side * (a["lung_x"] + a["lung_w"] * np.sqrt(np.clip(1 - ((v + 0.05) / a["lung_h"]) ** 2, 0, 1)))
    return wall - side * 0.07


def _devices(u, v, place) -> np.ndarray:
    """An endotracheal tube down the midline and a central line from the shoulder."""
    tube = np.exp(-(((u - 0.02) / 0.018) ** 2)) * _step(place["tube tip"] - v, 40)
    start = place["line start"]
    line_u = start - (start - 0.05) * np.clip((v + 0.75) / 0.7, 0, 1) ** 0.5
    line = np.exp(-(((u - line_u) / 0.014) ** 2)) * _step(v + 0.8, 40) * _step(0.05 - v, 40)
    return 0.35 * tube + 0.3 * line


def _point_in_lung(rng, a, reach: float) -> tuple[float, float]:
    """A point in a unit lung (angle, radius), placed in a lung by `_in_lung`."""
    return rng.uniform(0, 2 * np.pi), reach * np.sqrt(rng.uniform())


def _in_lung(a, side: int, point) -> tuple[float, float]:
    angle, radius = point
    return side * a["lung_x"] + radius * a["lung_w"] * np.cos(angle), -0.05 + radius * a["lung_h"] * np.sin(angle)


def _soft_ellipse(u, v, cx, cy, rx, ry, *, sharpness: float = 12.0) -> np.ndarray:
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


# The truth on disk: which signs each row shows and where the targets' signs are.


def signs(paths: list[str], raw_labels: np.ndarray, size: int, seed: int) -> pd.DataFrame:
    """One row per image: `drawn <finding>` (0/1) for the 13 findings with a sign, and for each target
    its sign's box in pixel coordinates (`<target> x0`, `y0`, `x1`, `y1`; blank where not drawn)."""
    records = []
    for path, raw in zip(paths, raw_labels):
        drawn = scene(path, raw, seed)
        record = {f"drawn {name}": int(drawn["strength"][name] > 0) for name in PATHOLOGIES[1:]}
        for target in TARGETS:
            box = _target_box(drawn, target, size) if drawn["strength"][target] > 0 else (np.nan,) * 4
            record |= dict(zip((f"{target} {corner}" for corner in ("x0", "y0", "x1", "y1")), box))
        records.append(record)
    return pd.DataFrame.from_records(records)


def _target_box(drawn: dict, target: str, size: int) -> tuple[float, float, float, float]:
    """The box (pixels, x0 y0 x1 y1) that holds a target's sign, from the scene's anatomy coordinates."""
    a, place = drawn["anatomy"], drawn["place"]
    if target == "Lung Lesion":
        px, py = _in_lung(a, place["lung side"], place["lesion"])
        us, vs, margin = np.array([px]), np.array([py]), 1.3 * LESION_RADIUS
    elif target == "Pleural Other":
        side, top = place["band"][0], _band_top(a, place["band"])
        vs = np.linspace(top, top + BAND_LENGTH, 16)
        us, margin = _band_centre(a, side, vs), 1.5 * BAND_WIDTH
    else:  # the callus at the break and the stepped rib lateral to it
        side, k, _ = place["break"]
        lateral = np.linspace(_break_at(a, place["break"]), a["lung_x"] + a["lung_w"] + 0.05, 8)
        step = 0.12 * 1.25 * CONTRAST["Fracture"]
        us, vs = np.tile(side * lateral, 2), np.concatenate([_rib_arc(a, k, lateral), _rib_arc(a, k, lateral) + step])
        margin = 1.5 * CALLUS_RADIUS
    corners = [(u + du, v + dv) for u, v in zip(us, vs) for du in (-margin, margin) for dv in (-margin, margin)]
    cols, rows = zip(*(_to_pixels(a, u, v, size) for u, v in corners))
    return min(cols), min(rows), max(cols), max(rows)


def _to_pixels(a, u: float, v: float, size: int) -> tuple[float, float]:
    """Anatomy coordinates (u, v) to a pixel's (column, row): the inverse of paint's pose."""
    c, s = np.cos(a["tilt"]), np.sin(a["tilt"])
    x = a["dx"] + a["scale"] * (c * u - s * v)
    y = a["dy"] + a["scale"] * (s * u + c * v)
    return (x + 1) / 2 * size - 0.5, (y + 1) / 2 * size - 0.5


SOURCE = Source("phantom", 64, read_table, _images, settings={"renderer_version": RENDERER_VERSION}, truth=signs)
