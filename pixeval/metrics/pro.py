"""Anomalous regions of a mask and their PRO weights (MVTec AD algorithm).

Regions are the 8-connected components of a mask (``scipy.ndimage.label`` with a 3×3 structure;
note that scipy's default structure is the 4-connected cross, which is *not* what MVTec uses).
Each anomalous pixel carries weight ``1 / (size of its region)``; dividing by the number of
regions in the whole evaluated set gives the MVTec weight, so that PRO(t), the summed weight of
pixels with ``score >= t``, is the mean over regions of the fraction of the region detected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class AnomalousPixels:
    """The anomalous pixels of one image and their regions.

    Attributes:
        scores: the anomalous pixels' scores.
        regions: each pixel's region, numbered from 0 within the image (``int32``).
        sizes: each region's pixel count (``int64``); a pixel's PRO weight is ``1 / size``.
    """

    scores: np.ndarray
    regions: np.ndarray
    sizes: np.ndarray

    @property
    def n_regions(self) -> int:
        return int(self.sizes.size)


def anomalous_pixels(score_map: np.ndarray, mask: np.ndarray) -> AnomalousPixels:
    """Scores and regions of the pixels where the boolean ``mask`` is set.

    Labelling only looks at the bounding box of the anomalous pixels, and a mask without any
    needs no labelling at all. Pixels come out in row-major order of the bounding box.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return AnomalousPixels(score_map[:0, :0].ravel(), np.zeros(0, np.int32), np.zeros(0, np.int64))
    cols = np.flatnonzero(mask.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    box_mask = mask[box]
    labels, _ = ndimage.label(box_mask, structure=_EIGHT_CONNECTED)
    regions = labels[box_mask].astype(np.int32) - 1
    return AnomalousPixels(score_map[box][box_mask], regions, np.bincount(regions))
