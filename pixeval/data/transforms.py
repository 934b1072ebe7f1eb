"""Resizing images and masks from their original size to a working resolution.

A size is an ``int`` ``R`` (an ``R×R`` square) or a ``(height, width)`` pair. Both resizes map
pixel centres onto pixel centres:

* images: bilinear interpolation, output pixel ``i`` samples input position
  ``(i + 0.5) · in / out − 0.5`` (no antialiasing: a large reduction aliases fine texture);
* masks: nearest neighbour, output pixel ``i`` takes input pixel ``floor((i + 0.5) · in / out)``,
  so a mask stays binary and never gains a label it did not have.

The original size is kept (:class:`Resized`) so that a score map computed at the working
resolution can be brought back to it with :func:`pixeval.io.resize_map` and scored there.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pixeval.data.types import Sample

Size = int | tuple[int, int]


def as_hw(size: Size) -> tuple[int, int]:
    """``(height, width)`` of ``size``; raises ``ValueError`` for non-positive sizes."""
    height, width = (size, size) if isinstance(size, (int, np.integer)) else size
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"a resize target must be positive, got {size!r}")
    return int(height), int(width)


def _resize(array: np.ndarray, size: Size, interpolation: int) -> np.ndarray:
    height, width = as_hw(size)
    if array.shape[:2] == (height, width):
        return array.copy()
    return cv2.resize(array, (width, height), interpolation=interpolation)


def resize_image(image: np.ndarray, size: Size) -> np.ndarray:
    """``image`` (``H×W×C`` or ``H×W``, any dtype OpenCV resizes) resized bilinearly to ``size``."""
    return _resize(image, size, cv2.INTER_LINEAR)


def resize_mask(mask: np.ndarray, size: Size) -> np.ndarray:
    """The ``bool`` mask ``mask`` resized by nearest neighbour to ``size``."""
    return _resize(np.asarray(mask, dtype=np.uint8), size, cv2.INTER_NEAREST_EXACT).astype(bool)


@dataclass
class Resized:
    """A sample's image and mask at a working resolution, with the original ``(height, width)``."""

    image: np.ndarray
    mask: np.ndarray
    original_size: tuple[int, int]


def load_resized(sample: Sample, size: Size) -> Resized:
    """Load ``sample`` and resize its image (bilinear) and mask (nearest) to ``size``."""
    image = sample.load_image()
    return Resized(resize_image(image, size), resize_mask(sample.load_mask(), size), image.shape[:2])
