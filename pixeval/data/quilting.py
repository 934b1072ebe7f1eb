"""Texture synthesis by image quilting (Efros & Freeman, "Image Quilting for Texture Synthesis and
Transfer", SIGGRAPH 2001), for the built-in synthetic-textures dataset.

The output is filled with square blocks of ``block`` pixels in raster order, each overlapping its
left and upper neighbours by ``overlap`` pixels:

* **Choice of block.** Every ``block × block`` window of the source is a candidate. Its cost is
  the sum of squared differences (on the grey level, the mean of the channels) between its
  overlap zone and the pixels already placed there: the left strip, the top strip, and for a
  block with both neighbours the two strips minus their shared corner, computed for all windows
  at once by ``cv2.matchTemplate(TM_SQDIFF)``. A block is drawn uniformly from the candidates
  whose cost is at most ``(1 + tolerance)`` times the smallest (the paper's error tolerance);
  the first block is drawn uniformly from all windows.
* **Minimum-error boundary cut.** In each overlap the squared grey-level difference between
  the placed pixels and the new block is an error surface; the seam is its cheapest path from
  one end to the other moving at most one pixel sideways per step (dynamic programming,
  :func:`min_cut_path`). Pixels before the seam keep the placed values, the others take the new
  block's; an L-shaped overlap takes the new block only where both seams say so.

Everything is drawn from the given ``numpy`` Generator, so the same source, sizes and seed give
the same texture.
"""

from __future__ import annotations

import cv2
import numpy as np


def min_cut_path(error: np.ndarray) -> np.ndarray:
    """The column index per row of the cheapest top-to-bottom path through ``error`` (``rows ×
    cols``) that moves at most one column between consecutive rows; ties go to the lower column."""
    rows, cols = error.shape
    cost = error.astype(np.float64).copy()
    for i in range(1, rows):
        prev = cost[i - 1]
        left = np.concatenate([[np.inf], prev[:-1]])
        right = np.concatenate([prev[1:], [np.inf]])
        cost[i] += np.minimum(np.minimum(left, prev), right)
    path = np.empty(rows, dtype=np.int64)
    path[-1] = int(np.argmin(cost[-1]))
    for i in range(rows - 2, -1, -1):
        j = path[i + 1]
        lo, hi = max(j - 1, 0), min(j + 2, cols)
        path[i] = lo + int(np.argmin(cost[i, lo:hi]))
    return path


def quilt(source: np.ndarray, shape: tuple[int, int], block: int, overlap: int, rng: np.random.Generator,
          tolerance: float = 0.1) -> np.ndarray:
    """A ``shape[0] × shape[1]`` texture quilted from ``source`` (``uint8`` ``H×W`` or ``H×W×C``);
    see the module docstring."""
    if not 0 < overlap < block:
        raise ValueError(f"overlap {overlap} must lie between 0 and the block size {block}")
    if source.shape[0] < block or source.shape[1] < block:
        raise ValueError(f"source of shape {source.shape[:2]} is smaller than one {block}-px block")
    grey_source = (source.mean(axis=2) if source.ndim == 3 else source).astype(np.float32)
    step = block - overlap
    n_rows = max(int(np.ceil((shape[0] - overlap) / step)), 1)
    n_cols = max(int(np.ceil((shape[1] - overlap) / step)), 1)
    out = np.zeros((n_rows * step + overlap, n_cols * step + overlap) + source.shape[2:], dtype=source.dtype)
    grey = np.zeros(out.shape[:2], dtype=np.float32)
    n_y, n_x = source.shape[0] - block + 1, source.shape[1] - block + 1
    for r in range(n_rows):
        for c in range(n_cols):
            y, x = r * step, c * step
            if r == 0 and c == 0:
                sy, sx = int(rng.integers(n_y)), int(rng.integers(n_x))
            else:
                cost = np.zeros((n_y, n_x), dtype=np.float64)
                if c > 0:
                    cost += _ssd(grey_source, grey[y:y + block, x:x + overlap], n_y, n_x)
                if r > 0:
                    cost += _ssd(grey_source, grey[y:y + overlap, x:x + block], n_y, n_x)
                if r > 0 and c > 0:
                    cost -= _ssd(grey_source, grey[y:y + overlap, x:x + overlap], n_y, n_x)
                limit = max(cost.min(), 0.0) * (1.0 + tolerance)
                candidates = np.flatnonzero(cost.ravel() <= limit)
                sy, sx = divmod(int(candidates[rng.integers(len(candidates))]), n_x)
            new = source[sy:sy + block, sx:sx + block]
            new_grey = grey_source[sy:sy + block, sx:sx + block]
            take = np.ones((block, block), dtype=bool)
            error = (grey[y:y + block, x:x + block] - new_grey) ** 2
            if c > 0:
                path = min_cut_path(error[:, :overlap])
                take[:, :overlap] &= np.arange(overlap)[None, :] >= path[:, None]
            if r > 0:
                path = min_cut_path(error[:overlap, :].T)
                take[:overlap, :] &= np.arange(overlap)[:, None] >= path[None, :]
            window = out[y:y + block, x:x + block]
            window[take] = new[take]
            grey[y:y + block, x:x + block][take] = new_grey[take]
    return np.ascontiguousarray(out[:shape[0], :shape[1]])


def _ssd(source: np.ndarray, template: np.ndarray, n_y: int, n_x: int) -> np.ndarray:
    """Sum of squared differences of ``template`` against every window of ``source`` placed at
    the top-left corner of each ``block`` window (``n_y × n_x`` of them)."""
    return cv2.matchTemplate(source, np.ascontiguousarray(template), cv2.TM_SQDIFF)[:n_y, :n_x].astype(np.float64)
