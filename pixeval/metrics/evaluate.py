"""``evaluate``: every metric of a set of score maps against their masks, in one call."""

from __future__ import annotations

import numpy as np

from ._inputs import as_image_list, check_fpr_limit, ranking_dtype
from .pooled import extract, pooled_report
from .report import MetricReport


def evaluate(score_maps, masks, image_scores=None, *, fpr_limit: float = 0.3,
             threshold: float | None = None, bootstrap: int = 0, confidence: float = 0.95,
             seed: int = 0) -> MetricReport:
    """Evaluate score maps against ground-truth masks, exactly.

    Args:
        score_maps: a sequence of 2-D arrays (sizes may differ per image) or a stacked ``N×H×W``
            array; higher = more anomalous. Any real dtype; never modified.
        masks: binary masks of the same shapes (bool, 0/1 or 0/255; any value > 0 is anomalous).
        image_scores: one score per image for the image metrics; default: each map's maximum.
        fpr_limit: the FPR integration limit of AUPRO, in (0, 1].
        threshold: if given, also report F1, precision and recall at ``score >= threshold``.
        bootstrap: number of bootstrap resamples of the images for confidence intervals of every
            metric (0: none).
        confidence: the level of those intervals.
        seed: seed of the resampling.

    Returns:
        A :class:`MetricReport`. Invalid input raises ``ValueError`` naming the image; a metric
        undefined on the data (e.g. no anomalous pixel) is NaN with a warning.

    Memory: one copy of the scores (sorted in place), plus the anomalous pixels' data.
    """
    fpr_limit = check_fpr_limit(fpr_limit)
    maps = as_image_list(score_maps, "score_maps")
    mask_list = as_image_list(masks, "masks")
    if len(maps) != len(mask_list):
        raise ValueError(f"got {len(maps)} score maps but {len(mask_list)} masks")
    buffer = np.empty(sum(m.size for m in maps), dtype=ranking_dtype([m.dtype for m in maps]))
    images = []
    offset = 0
    for index, (score_map, mask) in enumerate(zip(maps, mask_list)):
        chunk = buffer[offset:offset + score_map.size]
        images.append(extract(index, score_map, np.asarray(mask), buffer.dtype, chunk))
        offset += score_map.size
    return pooled_report(buffer, images, image_scores=image_scores, fpr_limit=fpr_limit,
                         threshold=threshold)
