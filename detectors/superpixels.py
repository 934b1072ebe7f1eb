"""Superpixel tiling for Sp-CFA and its exact inverse.

Sp-CFA (Rafiei, Breckon, Iosifidis, IJCNN 2024) feeds CFA a second and third view of each image in
which every SLIC superpixel's bounding box is cut out, resized to a square and tiled into an image
of the input size; a score map computed on that tiled image is mapped back superpixel by
superpixel. The paper leaves the details open; the choices made here:

* **Where SLIC runs.** On the square network input (the image already resized to
  ``size × size``), so ``region_size`` is in network-input pixels whatever the original size.
* **SLIC.** ``cv2.ximgproc.createSuperpixelSLIC`` with ``algorithm=SLIC`` (plain SLIC, which
  honours ``ruler``), on the image converted to CIELAB (the OpenCV documentation's advice for
  colour images), ``iterate(iterations)``, then ``enforceLabelConnectivity(min_element_size)`` so
  every superpixel is one 4-connected region.
* **Order.** Superpixels are numbered by the raster position (row-major) of their first pixel,
  i.e. sorted by ``min(y * size + x)`` over their pixels; this depends only on the label image,
  not on OpenCV's label numbering. Superpixel ``k`` goes to grid cell ``(k // grid, k % grid)``.
* **Grid.** ``grid = max(round(size / region_size), ceil(sqrt(n)))`` cells per side, square cells
  of ``cell = size // grid`` pixels, placed from the top-left corner. The first term is the
  number of SLIC seeds per side (OpenCV uses ``int(0.5 + size / region_size)`` strips), so the
  cell side is about ``region_size``. **More superpixels than cells** (connectivity enforcement
  can split a seed's region into several superpixels) makes the grid grow to the smallest square
  that holds them all: cells get smaller, no superpixel is ever dropped. Cells without a
  superpixel, and the strip of ``size - grid * cell`` pixels right and below the grid, are zero.
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
    """How one ``size × size`` image maps to its superpixel tiling.

    ``labels[y, x]`` is the index (tiling order, ``0..n-1``) of the superpixel holding pixel
    ``(y, x)``; ``boxes[k] = (y0, x0, y1, x1)`` is superpixel ``k``'s bounding box (end
    exclusive); the tiled image holds ``grid × grid`` square cells of ``cell`` pixels.
    """

    labels: np.ndarray
    boxes: np.ndarray
    grid: int
    cell: int

    @property
    def size(self) -> int:
        return self.labels.shape[0]

    @property
    def n_superpixels(self) -> int:
        return len(self.boxes)

    def cell_origin(self, k: int) -> tuple[int, int]:
        """Top-left pixel (row, column) of superpixel ``k``'s cell in the tiled image."""
        return (k // self.grid) * self.cell, (k % self.grid) * self.cell

    @classmethod
    def from_labels(cls, labels: np.ndarray, region_size: int) -> "Tiling":
        """The tiling of a square label image (any integer labels, each label one superpixel)."""
        labels = np.asarray(labels)
        if labels.ndim != 2 or labels.shape[0] != labels.shape[1]:
            raise ValueError(f"superpixel labels must be a square 2-D array, got shape {labels.shape}")
        if region_size < 1:
            raise ValueError(f"region_size must be >= 1, got {region_size}")
        size = labels.shape[0]
        values, first, ordered = np.unique(labels.ravel(), return_index=True, return_inverse=True)
        rank = np.empty(len(values), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(values))
        ordered = rank[ordered].reshape(size, size).astype(np.int32)
        n = len(values)
        rows, cols = np.indices((size, size))
        flat = ordered.ravel()
        boxes = np.stack([
            np.full(n, size).astype(np.int64), np.full(n, size).astype(np.int64),
            np.zeros(n, np.int64), np.zeros(n, np.int64)], axis=1)
        np.minimum.at(boxes[:, 0], flat, rows.ravel())
        np.minimum.at(boxes[:, 1], flat, cols.ravel())
        np.maximum.at(boxes[:, 2], flat, rows.ravel() + 1)
        np.maximum.at(boxes[:, 3], flat, cols.ravel() + 1)
        grid = grid_side(n, size, region_size)
        return cls(ordered, boxes, grid, size // grid)


def grid_side(n_superpixels: int, size: int, region_size: int) -> int:
    """Cells per side: the SLIC seed count per side, grown to hold ``n_superpixels`` if needed."""
    grid = max(int(0.5 + size / region_size), math.ceil(math.sqrt(n_superpixels)), 1)
    if grid > size:
        raise ValueError(f"{n_superpixels} superpixels do not fit a {size}x{size} image one pixel each")
    return grid


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
    """SLIC on a square ``uint8`` RGB image, then its :class:`Tiling` (see the module docstring)."""
    if image.shape[0] != image.shape[1]:
        raise ValueError(f"superpixel tiling works on square images, got {image.shape[:2]}; "
                         "resize to the network resolution first")
    return Tiling.from_labels(slic_labels(image, region_size, **slic_options), region_size)


def tile(image: np.ndarray, tiling: Tiling) -> np.ndarray:
    """The tiled image: superpixel ``k``'s bounding box resized bicubically into cell ``k``.

    ``image`` is ``size × size`` or ``size × size × C`` of any dtype OpenCV resizes; the result
    has the same shape and dtype, zero outside the used cells.
    """
    _check_shape(image, tiling)
    out = np.zeros_like(image)
    c = tiling.cell
    for k, (y0, x0, y1, x1) in enumerate(tiling.boxes):
        oy, ox = tiling.cell_origin(k)
        out[oy:oy + c, ox:ox + c] = cv2.resize(image[y0:y1, x0:x1], (c, c), interpolation=cv2.INTER_CUBIC)
    return out


def untile(tiled: np.ndarray, tiling: Tiling) -> np.ndarray:
    """The inverse of :func:`tile`: cell ``k`` resized bilinearly to superpixel ``k``'s bounding
    box and written on superpixel ``k``'s pixels only. ``tiled`` is ``size × size`` (a score map)
    or ``size × size × C``; the result is ``float32`` of the same shape."""
    _check_shape(tiled, tiling)
    tiled = np.ascontiguousarray(tiled, dtype=np.float32)
    out = np.zeros_like(tiled)
    c = tiling.cell
    for k, (y0, x0, y1, x1) in enumerate(tiling.boxes):
        oy, ox = tiling.cell_origin(k)
        patch = cv2.resize(tiled[oy:oy + c, ox:ox + c], (int(x1 - x0), int(y1 - y0)),
                           interpolation=cv2.INTER_LINEAR)
        inside = tiling.labels[y0:y1, x0:x1] == k
        out[y0:y1, x0:x1][inside] = patch.reshape(inside.shape + tiled.shape[2:])[inside]
    return out


def _check_shape(array: np.ndarray, tiling: Tiling) -> None:
    if array.shape[:2] != tiling.labels.shape:
        raise ValueError(f"array of shape {array.shape[:2]} does not match the tiling's "
                         f"{tiling.labels.shape} label image")
