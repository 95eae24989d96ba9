"""The pointing game's arithmetic: a peak inside its box is a hit, and chance is the box's share."""

from __future__ import annotations

import numpy as np
import pytest

from chexbal.analysis.localisation import chance, hits


def test_a_map_hits_when_its_peak_lies_inside_the_box_edges_included():
    maps = np.zeros((3, 8, 8))
    maps[0, 2, 3] = 1  # row 2, column 3: inside x 3..5, y 1..2 (on the left edge)
    maps[1, 5, 3] = 1  # row 5: below the box
    maps[2, 1, 6] = 1  # column 6: right of the box
    boxes = np.array([[3, 1, 5, 2]] * 3, float)
    assert hits(maps, boxes).tolist() == [True, False, False]


def test_chance_is_the_share_of_pixels_inside_the_box_clipped_to_the_image():
    boxes = np.array([[0, 0, 3, 3], [-5, -5, 1.5, 1.5], [6.2, 6.2, 20, 20]])
    assert chance(boxes, 8) == pytest.approx([16 / 64, 4 / 64, 1 / 64])
