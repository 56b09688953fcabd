"""Why two photos match: which regions of each drive the similarity of their embeddings.

Sliding occlusion, model-agnostic (it needs nothing but embeddings, so it runs the same on
onnxruntime and Triton, and the shipped ONNX exposes no feature maps): the model input is cut into
a ``grid`` x ``grid`` lattice, a square window of ``window`` cells slides over it one cell at a
time, and each placement is covered with the photo's mean colour. A cell's value is the mean drop
of the cosine to the other photo's (unoccluded) embedding over the windows that covered it: high
where hiding that part of this photo makes the pair look less alike. The masking test
(tests/embedder/test_explain.py) checks the maps say something: covering the highlighted cells
lowers the similarity more than covering as many random cells.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

DEFAULT_GRID = 8
DEFAULT_WINDOW = 2
OVERLAY_LONG_SIDE = 384


@dataclass(frozen=True)
class Window:
    """Cells [row0, row1) x [col0, col1) of the lattice."""

    row0: int
    col0: int
    row1: int
    col1: int


def windows(grid: int, window: int) -> list[Window]:
    """Every placement of a ``window`` x ``window`` square on the lattice, one cell apart."""
    span = range(grid - window + 1)
    return [Window(r, c, r + window, c + window) for r in span for c in span]


def cell_mask(size: int, grid: int, cells: np.ndarray) -> np.ndarray:
    """The pixel mask [size, size] of the lattice cells set in the boolean ``cells`` [grid, grid]."""
    edges = np.linspace(0, size, grid + 1).round().astype(int)
    mask = np.zeros((size, size), dtype=bool)
    for row, col in zip(*np.nonzero(cells)):
        mask[edges[row]:edges[row + 1], edges[col]:edges[col + 1]] = True
    return mask


def covered(pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The model input [size, size, 3] with the masked pixels set to its mean colour."""
    out = pixels.copy()
    out[mask] = pixels.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    return out


def occluded_inputs(pixels: np.ndarray, grid: int, placements: Sequence[Window]) -> np.ndarray:
    """One covered copy of the input per window placement, [len(placements), size, size, 3]."""
    size = pixels.shape[0]
    batch = []
    for w in placements:
        cells = np.zeros((grid, grid), dtype=bool)
        cells[w.row0:w.row1, w.col0:w.col1] = True
        batch.append(covered(pixels, cell_mask(size, grid, cells)))
    return np.stack(batch)


def occlusion_map(base: float, occluded_similarities: np.ndarray, grid: int,
                  placements: Sequence[Window]) -> np.ndarray:
    """Per cell [grid, grid]: the mean cosine drop (``base`` - occluded) of the windows covering it."""
    total = np.zeros((grid, grid))
    count = np.zeros((grid, grid))
    for w, similarity in zip(placements, occluded_similarities):
        total[w.row0:w.row1, w.col0:w.col1] += base - float(similarity)
        count[w.row0:w.row1, w.col0:w.col1] += 1
    return total / np.maximum(count, 1)


def highlighted(heat: np.ndarray, share: float) -> np.ndarray:
    """The boolean cells of the top ``share`` of the map (at least one)."""
    k = max(1, int(round(share * heat.size)))
    order = np.argsort(-heat, axis=None, kind="stable")[:k]
    cells = np.zeros(heat.size, dtype=bool)
    cells[order] = True
    return cells.reshape(heat.shape)


def overlay_png(pixels: np.ndarray, heat: np.ndarray, aspect: float) -> bytes:
    """The model's view of the photo, back at the photo's aspect ratio (``aspect`` = width / height),
    tinted red where the map is high (hiding it lowers the similarity most): what the reviewer sees."""
    if aspect >= 1:
        width, height = OVERLAY_LONG_SIDE, max(1, round(OVERLAY_LONG_SIDE / aspect))
    else:
        width, height = max(1, round(OVERLAY_LONG_SIDE * aspect)), OVERLAY_LONG_SIDE
    photo = np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    positive = np.clip(heat, 0, None)
    scaled = positive / positive.max() if positive.max() > 0 else positive
    level = Image.fromarray((scaled * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BILINEAR)
    alpha = np.asarray(level, dtype=np.float32)[..., None] / 255.0
    red = np.array([255.0, 40.0, 0.0])
    blended = photo * (0.45 + 0.55 * (1 - alpha)) + red * 0.55 * alpha
    buffer = io.BytesIO()
    Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()
