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
    """The anomalous pixels of one image: scores, weights ``1 / region size``, region count."""

    scores: np.ndarray
    weights: np.ndarray
    n_regions: int


def anomalous_pixels(score_map: np.ndarray, mask: np.ndarray) -> AnomalousPixels:
    """Scores and PRO weights of the pixels where the boolean ``mask`` is set.

    Labelling only looks at the bounding box of the anomalous pixels, and a mask without any
    needs no labelling at all. Pixels come out in row-major order of the bounding box.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return AnomalousPixels(score_map[:0, :0].ravel(), np.zeros(0), 0)
    cols = np.flatnonzero(mask.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    box_mask = mask[box]
    labels, n_regions = ndimage.label(box_mask, structure=_EIGHT_CONNECTED)
    pixel_labels = labels[box_mask]
    sizes = np.bincount(pixel_labels)
    return AnomalousPixels(score_map[box][box_mask], 1.0 / sizes[pixel_labels], int(n_regions))
