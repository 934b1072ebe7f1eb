"""Superpixel tiling for Sp-CFA and its exact inverse.

Sp-CFA (Rafiei, Breckon, Iosifidis, IJCNN 2024) feeds CFA a second and third view of each image in
which every SLIC superpixel's bounding box is cut out, resized to a square and tiled into an image
of the input size; a score map computed on that tiled image is mapped back superpixel by
superpixel. The paper leaves the details open; the choices made here:

* **Where SLIC runs.** On whatever image it is given: Sp-CFA gives it the image at its own
  resolution by default, or the network input (``superpixels_at``, see :mod:`detectors.sp_cfa`);
  ``region_size`` is in pixels of that image. The image need not be square.
* **SLIC.** ``cv2.ximgproc.createSuperpixelSLIC`` with ``algorithm=SLIC`` (plain SLIC, which
  honours ``ruler``), on the image converted to CIELAB (the OpenCV documentation's advice for
  colour images), ``iterate(iterations)``, then ``enforceLabelConnectivity(min_element_size)`` so
  every superpixel is one 4-connected region.
* **Order.** Superpixels are numbered by the raster position (row-major) of their first pixel,
  i.e. sorted by ``min(y * width + x)`` over their pixels; this depends only on the label image,
  not on OpenCV's label numbering. Superpixel ``k`` goes to grid cell ``(k // cols, k % cols)``.
* **Grid.** ``rows × cols`` cells of ``cell_h × cell_w = (height // rows) × (width // cols)``
  pixels, placed from the top-left corner, with ``rows = round(height / region_size)`` and
  ``cols = round(width / region_size)`` (at least 1): the number of SLIC seeds along each side
  (OpenCV uses ``int(0.5 + side / region_size)`` strips), so a cell is about ``region_size``
  wide. **More superpixels than cells** (connectivity enforcement can split a seed's region into
  several superpixels) grows both counts by the same factor until they hold them all: cells get
  smaller, no superpixel is ever dropped. Cells without a superpixel, and the strips
  right and below the grid, are zero.
* **Resampling.** Bounding box to cell: bicubic (``cv2.INTER_CUBIC``), as in the paper. Cell back
  to bounding box: bilinear (``cv2.INTER_LINEAR``), so an untiled score never leaves the range of
  its cell (no bicubic overshoot at the cell borders). Each superpixel's resized box is written
  only on that superpixel's own pixels, so every pixel receives exactly one value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Tiling:
    """How one ``height × width`` image maps to its superpixel tiling.

    ``labels[y, x]`` is the index (tiling order, ``0..n-1``) of the superpixel holding pixel
    ``(y, x)``; ``boxes[k] = (y0, x0, y1, x1)`` is superpixel ``k``'s bounding box (end
    exclusive); the tiled image (same size) holds ``rows × cols`` cells of ``cell_h × cell_w``
    pixels.
    """

    labels: np.ndarray
    boxes: np.ndarray
    rows: int
    cols: int
    cell_h: int
    cell_w: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape

    @property
    def n_superpixels(self) -> int:
        return len(self.boxes)

    def cell_origin(self, k: int) -> tuple[int, int]:
        """Top-left pixel (row, column) of superpixel ``k``'s cell in the tiled image."""
        return (k // self.cols) * self.cell_h, (k % self.cols) * self.cell_w

    @classmethod
    def from_labels(cls, labels: np.ndarray, region_size: int) -> "Tiling":
        """The tiling of a label image (any integer labels, each label one superpixel)."""
        labels = np.asarray(labels)
        if labels.ndim != 2 or labels.size == 0:
            raise ValueError(f"superpixel labels must be a non-empty 2-D array, got shape {labels.shape}")
        if region_size < 1:
            raise ValueError(f"region_size must be >= 1, got {region_size}")
        h, w = labels.shape
        values, first, ordered = np.unique(labels.ravel(), return_index=True, return_inverse=True)
        rank = np.empty(len(values), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(values))
        ordered = rank[ordered].reshape(h, w).astype(np.int32)
        n = len(values)
        ys, xs = np.indices((h, w))
        flat = ordered.ravel()
        boxes = np.stack([np.full(n, h, np.int64), np.full(n, w, np.int64),
                          np.zeros(n, np.int64), np.zeros(n, np.int64)], axis=1)
        np.minimum.at(boxes[:, 0], flat, ys.ravel())
        np.minimum.at(boxes[:, 1], flat, xs.ravel())
        np.maximum.at(boxes[:, 2], flat, ys.ravel() + 1)
        np.maximum.at(boxes[:, 3], flat, xs.ravel() + 1)
        rows, cols = grid_shape(n, h, w, region_size)
        return cls(ordered, boxes, rows, cols, h // rows, w // cols)


def grid_shape(n_superpixels: int, height: int, width: int, region_size: int) -> tuple[int, int]:
    """``(rows, cols)`` of cells: the SLIC seed counts along each side, both multiplied by
    ``sqrt(n_superpixels / (rows · cols))`` and rounded up when ``n_superpixels`` do not fit."""
    rows, cols = max(int(0.5 + height / region_size), 1), max(int(0.5 + width / region_size), 1)
    if rows * cols < n_superpixels:
        factor = math.sqrt(n_superpixels / (rows * cols))
        rows, cols = math.ceil(rows * factor), math.ceil(cols * factor)
    if rows > height or cols > width:
        raise ValueError(f"{n_superpixels} superpixels do not fit a {height}x{width} image one pixel each")
    return rows, cols


def slic_labels(image: np.ndarray, region_size: int, *, ruler: float = 10.0, iterations: int = 10,
                min_element_size: int = 25) -> np.ndarray:
    """SLIC superpixel labels (``int32``, OpenCV's numbering) of a ``uint8`` RGB image."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"SLIC needs a uint8 HxWx3 RGB image, got {image.dtype} {image.shape}")
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    slic = cv2.ximgproc.createSuperpixelSLIC(lab, cv2.ximgproc.SLIC, int(region_size), float(ruler))
    slic.iterate(int(iterations))
    if min_element_size > 0:
        slic.enforceLabelConnectivity(int(min_element_size))
    return slic.getLabels()


def make_tiling(image: np.ndarray, region_size: int, **slic_options) -> Tiling:
    """SLIC on a ``uint8`` RGB image, then its :class:`Tiling` (see the module docstring)."""
    return Tiling.from_labels(slic_labels(image, region_size, **slic_options), region_size)


def tile(image: np.ndarray, tiling: Tiling) -> np.ndarray:
    """The tiled image: superpixel ``k``'s bounding box resized bicubically into cell ``k``.

    ``image`` is ``H × W`` or ``H × W × C`` (the tiling's size) of any dtype OpenCV resizes; the result
    has the same shape and dtype, zero outside the used cells.
    """
    _check_shape(image, tiling)
    out = np.zeros_like(image)
    ch, cw = tiling.cell_h, tiling.cell_w
    for k, (y0, x0, y1, x1) in enumerate(tiling.boxes):
        oy, ox = tiling.cell_origin(k)
        out[oy:oy + ch, ox:ox + cw] = cv2.resize(image[y0:y1, x0:x1], (cw, ch), interpolation=cv2.INTER_CUBIC)
    return out


def untile(tiled: np.ndarray, tiling: Tiling) -> np.ndarray:
    """The inverse of :func:`tile`: cell ``k`` resized bilinearly to superpixel ``k``'s bounding
    box and written on superpixel ``k``'s pixels only. ``tiled`` is ``H × W`` (a score map)
    or ``H × W × C``; the result is ``float32`` of the same shape."""
    _check_shape(tiled, tiling)
    tiled = np.ascontiguousarray(tiled, dtype=np.float32)
    out = np.zeros_like(tiled)
    ch, cw = tiling.cell_h, tiling.cell_w
    for k, (y0, x0, y1, x1) in enumerate(tiling.boxes):
        oy, ox = tiling.cell_origin(k)
        patch = cv2.resize(tiled[oy:oy + ch, ox:ox + cw], (int(x1 - x0), int(y1 - y0)),
                           interpolation=cv2.INTER_LINEAR)
        inside = tiling.labels[y0:y1, x0:x1] == k
        out[y0:y1, x0:x1][inside] = patch.reshape(inside.shape + tiled.shape[2:])[inside]
    return out


def _check_shape(array: np.ndarray, tiling: Tiling) -> None:
    if array.shape[:2] != tiling.labels.shape:
        raise ValueError(f"array of shape {array.shape[:2]} does not match the tiling's "
                         f"{tiling.labels.shape} label image")
