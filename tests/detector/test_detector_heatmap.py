"""Box from heatmap and the detector's decision, on synthetic model outputs."""

from __future__ import annotations

from dataclasses import astuple

import numpy as np
import pytest

from services.detector.domain.detection import DetectorCard, DetectorOutput, find_cetacean
from services.detector.domain.heatmap import WHOLE_PHOTO, RelativeBox, box_from_heatmap, largest_region

CARD = DetectorCard(input_size=256, views=("fluke", "dorsal_fin", "head", "other"),
                    cetacean_threshold=0.5, heatmap_box_threshold=0.6)


def _blob(shape: tuple[int, int], rows: slice, cols: slice, value: float = 1.0) -> np.ndarray:
    heatmap = np.zeros(shape, dtype=np.float32)
    heatmap[rows, cols] = value
    return heatmap


def test_one_hot_region_gives_its_bounds_as_fractions() -> None:
    heatmap = _blob((64, 64), slice(16, 32), slice(8, 40))
    assert box_from_heatmap(heatmap, 0.6, margin=0.0) == RelativeBox(8 / 64, 16 / 64, 40 / 64, 32 / 64)


def test_margin_grows_the_box_and_stays_inside_the_photo() -> None:
    heatmap = _blob((10, 10), slice(0, 5), slice(2, 6))
    box = box_from_heatmap(heatmap, 0.6, margin=0.25)
    assert astuple(box) == pytest.approx((0.1, 0.0, 0.7, 0.625))


def test_the_largest_region_wins_over_a_stray_hot_cell() -> None:
    heatmap = _blob((32, 32), slice(20, 30), slice(2, 12))
    heatmap[1, 30] = 1.0
    box = box_from_heatmap(heatmap, 0.6, margin=0.0)
    assert box == RelativeBox(2 / 32, 20 / 32, 12 / 32, 30 / 32)


def test_diagonal_neighbours_belong_to_one_region() -> None:
    mask = np.eye(6, dtype=bool)
    mask[0, 5] = True
    region = largest_region(mask)
    assert region.sum() == 6 and not region[0, 5]


def test_flat_or_cold_heatmaps_point_nowhere_so_the_whole_photo_is_used() -> None:
    assert box_from_heatmap(np.full((64, 64), 0.7, np.float32), 0.6, 0.05) == WHOLE_PHOTO
    assert box_from_heatmap(np.zeros((64, 64), np.float32), 0.6, 0.05) == WHOLE_PHOTO
    cold = np.linspace(0, 0.5, 64 * 64, dtype=np.float32).reshape(64, 64)
    assert box_from_heatmap(cold, 0.6, 0.05) == WHOLE_PHOTO


def test_pixel_boxes_round_outwards_and_are_never_empty() -> None:
    assert RelativeBox(0.1, 0.2, 0.5, 0.6).to_pixels((0, 0, 1001, 333)) == (100, 66, 501, 200)
    assert RelativeBox(0.5, 0.5, 0.5, 0.5).to_pixels((0, 0, 10, 10)) == (5, 5, 6, 6)
    # a region inside the photo (letterbox bars trimmed): fractions of the region, offset by it
    assert RelativeBox(0.0, 0.5, 1.0, 1.0).to_pixels((0, 90, 300, 210)) == (0, 150, 300, 210)


def test_a_cetacean_gets_a_box_in_image_pixels_and_the_top_view() -> None:
    output = DetectorOutput(0.9, np.array([0.1, 0.7, 0.15, 0.05]), _blob((64, 64), slice(0, 32), slice(32, 64)))
    finding = find_cetacean(output, CARD, (0, 0, 4000, 3000), margin=0.0)
    assert finding is not None
    assert finding.box == (2000, 0, 4000, 1500)
    assert finding.view == "dorsal_fin"
    assert finding.score == pytest.approx(0.9)
    assert finding.view_scores == pytest.approx({"fluke": 0.1, "dorsal_fin": 0.7, "head": 0.15, "other": 0.05})


def test_below_the_cetacean_threshold_there_is_no_finding() -> None:
    output = DetectorOutput(0.49, np.array([0.7, 0.1, 0.1, 0.1]), _blob((64, 64), slice(0, 32), slice(0, 32)))
    assert find_cetacean(output, CARD, (0, 0, 100, 100), margin=0.05) is None


def test_heatmap_must_be_two_dimensional() -> None:
    with pytest.raises(ValueError):
        box_from_heatmap(np.zeros((2, 8, 8)), 0.5, 0.0)
