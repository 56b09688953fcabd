"""From the detector's class-activation heatmap to a box around the animal.

The heatmap covers what the model saw (the photo, less any letterbox bars, stretched to a
square), so a cell's position as a fraction of the heatmap is the same fraction of that region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

FLAT_RANGE = 0.05
"""A heatmap whose values span less than this points nowhere: the box is the whole photo."""

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class RelativeBox:
    """A box as fractions of the photo's width and height, 0..1."""

    x0: float
    y0: float
    x1: float
    y1: float

    def expanded(self, margin: float) -> RelativeBox:
        """Grown by ``margin`` times its width/height on each side, clipped to the photo."""
        dx, dy = (self.x1 - self.x0) * margin, (self.y1 - self.y0) * margin
        return RelativeBox(max(0.0, self.x0 - dx), max(0.0, self.y0 - dy), min(1.0, self.x1 + dx), min(1.0, self.y1 + dy))

    def to_pixels(self, region: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        """Integer pixel box inside ``region`` (x0, y0, x1, y1 of the photo the fractions are
        of), rounded outwards, never empty."""
        left, top, right, bottom = region
        width, height = right - left, bottom - top
        x0, y0 = int(np.floor(left + self.x0 * width)), int(np.floor(top + self.y0 * height))
        x1, y1 = int(np.ceil(left + self.x1 * width)), int(np.ceil(top + self.y1 * height))
        return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


WHOLE_PHOTO = RelativeBox(0.0, 0.0, 1.0, 1.0)


def largest_region(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected region of a boolean mask, as a mask (all False if the mask is).

    Of regions of equal size, the one reached first in raster order wins.
    """
    if not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    labels, _ = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    sizes = np.bincount(labels.ravel())[1:]  # label 0 is the background
    return labels == 1 + int(np.argmax(sizes))


def box_from_heatmap(heatmap: np.ndarray, threshold: float, margin: float) -> RelativeBox:
    """The box around the largest region at or above ``threshold``, grown by ``margin``.

    A flat heatmap, or one with nothing above the threshold, says nothing about where the
    animal is: the whole photo is returned rather than a guess.
    """
    if heatmap.ndim != 2 or heatmap.size == 0:
        raise ValueError(f"a heatmap is a 2-D array, got shape {heatmap.shape}")
    if float(heatmap.max() - heatmap.min()) < FLAT_RANGE:
        return WHOLE_PHOTO
    region = largest_region(heatmap >= threshold)
    if not region.any():
        return WHOLE_PHOTO
    rows, cols = np.nonzero(region)
    height, width = heatmap.shape
    box = RelativeBox(cols.min() / width, rows.min() / height, (cols.max() + 1) / width, (rows.max() + 1) / height)
    return box.expanded(margin)
