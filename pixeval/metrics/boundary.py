"""Boundary accuracy of the predicted anomaly masks: boundary F1 and Boundary IoU.

The predicted mask of an image is ``score >= threshold`` (a given threshold, or by default the
pixel F1-max threshold of the set). Two measures compare its outline with the ground truth's:

**Boundary F1**, the contour measure of DAVIS (Perazzi et al. 2016, ``f_boundary`` /
``f_measure`` in davis2017-evaluation), which follows the BSDS benchmark (Martin et al. 2004)
but matches by distance instead of BSDS's one-to-one bipartite assignment. A mask's *contour*
is the set of pixels that differ from their right, lower or lower-right neighbour, the image
being extended by repeating its last row and column (DAVIS ``seg2bmap``: 1 pixel wide, offset
half a pixel towards the origin; the image border is no contour). A predicted contour pixel is
matched when a true contour pixel lies within Euclidean distance d (for an integer d, DAVIS's
dilation by ``skimage.morphology.disk(d)``; a fractional d given in pixels is taken as the
distance, since ``disk`` of a fractional radius is an even-sized, off-centre footprint); a
true one when a predicted one does. Precision = matched
predicted / predicted contour pixels, recall = matched true / true contour pixels,
``F = 2PR / (P + R)``. d is ``tolerance`` pixels when ``tolerance >= 1``, else
``ceil(tolerance * image diagonal)`` (DAVIS's ``bound_th``, default 0.008).

**Boundary IoU** (Cheng, Girshick, Dollár, Berg, Kirillov, CVPR 2021; bowenc0221/boundary-iou-api
``mask_to_boundary``): a mask's *band* is its pixels within distance w of a pixel outside it,
the outside of the image counting as outside the mask (so a mask cut by the image border has a
band there). As in the reference code (3×3 erosion iterated w times) the distance is the
chessboard one, ``max(|dx|, |dy|)``. ``Boundary IoU = |band(G) ∩ band(P)| / |band(G) ∪
band(P)|``. w is ``band`` pixels when ``band >= 1`` (an integer), else
``max(1, round(band * image diagonal))`` (the reference's ``dilation_ratio``, default 0.02).

Per image and pooled. Per image, boundary F1 follows DAVIS for empty contours (none on either
side: 1; on one side only: 0), Boundary IoU is NaN when both bands are empty; ``*_image_mean``
averages them over the anomalous images. Pooled over the set (as BSDS's dataset-level F
accumulates counts): precision and recall from the summed counts of all images, F from those,
and Boundary IoU as summed intersections over summed unions, so false positives on normal
images count.

Cost per image: the comparison ``score >= t``, then on the bounding box of the predicted and
true masks (grown by one pixel) the contours, the bands (two run-length passes,
:func:`~pixeval.metrics._kernels.chessboard_band`) and the matching (a row-distance pass on the
box of the true contour, where alone predicted contour pixels can match, then at most
``2 d + 1`` look-ups per contour pixel, :func:`~pixeval.metrics._kernels.count_within`): linear
in the pixels, no distance transform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _kernels
from ._inputs import as_image_list, check_pair, check_threshold, finite_range, ranking_dtype, warn_degenerate
from .pooled import pixel_ranking, smallest_at_least


def contour(mask: np.ndarray) -> np.ndarray:
    """DAVIS contour of a boolean mask: pixels differing from their right, lower or lower-right
    neighbour, the last row and column repeated beyond the image. A square in the lower-right
    corner: its contour lies just above and left of it, and the image border is none.

    >>> contour(np.array([[0, 0, 0], [0, 1, 1], [0, 1, 1]], bool)).astype(int)
    array([[1, 1, 1],
           [1, 0, 0],
           [1, 0, 0]])
    """
    padded = np.pad(mask, ((0, 1), (0, 1)), mode="edge")
    here = padded[:-1, :-1]
    return (here != padded[:-1, 1:]) | (here != padded[1:, :-1]) | (here != padded[1:, 1:])


def band(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels of a boolean mask within chessboard distance ``width`` of a pixel outside it (the
    outside of the image counts as outside the mask): Boundary IoU's ``G_d ∩ G``.

    >>> band(np.ones((4, 5), bool), 1).astype(int)
    array([[1, 1, 1, 1, 1],
           [1, 0, 0, 0, 1],
           [1, 0, 0, 0, 1],
           [1, 1, 1, 1, 1]])
    """
    return _kernels.chessboard_band(np.ascontiguousarray(mask, dtype=bool), int(width))


def tolerance_pixels(tolerance: float, shape: tuple[int, int]) -> float:
    """The matching distance of boundary F1: ``tolerance`` if >= 1, else
    ``ceil(tolerance * diagonal)`` (DAVIS)."""
    return float(tolerance) if tolerance >= 1 else float(math.ceil(tolerance * math.hypot(*shape)))


def band_pixels(band_width: float, shape: tuple[int, int]) -> int:
    """The band width of Boundary IoU: ``band_width`` if >= 1, else
    ``max(1, round(band_width * diagonal))`` (the reference's ``int(round(...))``)."""
    if band_width >= 1:
        return int(band_width)
    return max(1, int(round(band_width * math.hypot(*shape))))


@dataclass(frozen=True)
class ImageBoundary:
    """Boundary counts of one image: contour pixels predicted / true / matched of each, and the
    bands' intersection and union."""

    predicted: int
    true: int
    matched_predicted: int
    matched_true: int
    band_intersection: int
    band_union: int

    @property
    def f1(self) -> float:
        """DAVIS's per-image F: 1 with no contour on either side, 0 with one on one side only."""
        if self.predicted == 0 or self.true == 0:
            return 1.0 if self.predicted == self.true else 0.0
        precision = self.matched_predicted / self.predicted
        recall = self.matched_true / self.true
        return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)

    @property
    def iou(self) -> float:
        return self.band_intersection / self.band_union if self.band_union else np.nan


def image_boundary(predicted: np.ndarray, true: np.ndarray, distance: float, width: int) -> ImageBoundary:
    """The :class:`ImageBoundary` of one predicted and one true boolean mask."""
    # contours lie at most one pixel above or left of a mask; pixels outside the box are
    # outside both masks, as the bands and the matching assume
    box = _box(predicted | true, margin=1)
    if box is None:
        return ImageBoundary(0, 0, 0, 0, 0, 0)
    predicted, true = predicted[box], true[box]
    predicted_contour, true_contour = contour(predicted), contour(true)
    n_predicted = int(np.count_nonzero(predicted_contour))
    n_true = int(np.count_nonzero(true_contour))
    matched_predicted = matched_true = 0
    near = _box(true_contour, margin=int(math.ceil(distance)))
    if near is not None and n_predicted:
        predicted_near = np.ascontiguousarray(predicted_contour[near])
        true_near = np.ascontiguousarray(true_contour[near])
        matched_predicted = _kernels.count_within(predicted_near, true_near, float(distance))
        matched_true = _kernels.count_within(true_near, predicted_near, float(distance))
    predicted_band, true_band = band(predicted, width), band(true, width)
    intersection = int(np.count_nonzero(predicted_band & true_band))
    union = int(np.count_nonzero(predicted_band)) + int(np.count_nonzero(true_band)) - intersection
    return ImageBoundary(n_predicted, n_true, matched_predicted, matched_true, intersection, union)


def _box(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """The bounding box of ``mask``'s set pixels grown by ``margin`` (clipped), or None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (slice(max(rows[0] - margin, 0), rows[-1] + margin + 1),
            slice(max(cols[0] - margin, 0), cols[-1] + margin + 1))


@dataclass(frozen=True)
class BoundaryReport:
    """Boundary F1 and Boundary IoU of the masks ``score >= threshold`` (definitions in
    :mod:`pixeval.metrics.boundary`).

    Attributes:
        threshold, threshold_from: the threshold, ``"given"`` or ``"pixel_f1_max"``.
        tolerance, band: the settings (pixels if >= 1, else fractions of the image diagonal).
        boundary_precision, boundary_recall, boundary_f1: pooled over all images.
        boundary_iou: pooled (summed intersections / summed unions).
        boundary_f1_image_mean, boundary_iou_image_mean: per-image values averaged over the
            anomalous images.
        per_image_f1, per_image_iou: each image's values (DAVIS conventions; IoU NaN when both
            bands are empty).
    """

    threshold: float
    threshold_from: str
    tolerance: float
    band: float
    boundary_precision: float
    boundary_recall: float
    boundary_f1: float
    boundary_iou: float
    boundary_f1_image_mean: float
    boundary_iou_image_mean: float
    per_image_f1: np.ndarray
    per_image_iou: np.ndarray
    n_images: int
    n_anomalous_images: int

    def to_dict(self) -> dict[str, float | int | str]:
        """The summary numbers, flat (per-image arrays left out)."""
        return {
            "boundary_threshold": self.threshold, "boundary_threshold_from": self.threshold_from,
            "boundary_tolerance": self.tolerance, "boundary_band": self.band,
            "boundary_precision": self.boundary_precision, "boundary_recall": self.boundary_recall,
            "boundary_f1": self.boundary_f1, "boundary_iou": self.boundary_iou,
            "boundary_f1_image_mean": self.boundary_f1_image_mean,
            "boundary_iou_image_mean": self.boundary_iou_image_mean,
        }


def boundary_metrics(score_maps, masks, threshold: float | None = None, *,
                     tolerance: float = 0.008, band: float = 0.02) -> BoundaryReport:
    """Boundary F1 (DAVIS contour measure) and Boundary IoU of ``score >= threshold``.

    Args:
        score_maps: 2-D maps (a sequence, or a stacked ``N×H×W`` array).
        masks: binary masks of the same shapes.
        threshold: None for the pixel F1-max threshold of the set (one sort of all scores; pass
            :attr:`MetricReport.pixel_f1_threshold <pixeval.metrics.MetricReport>` to reuse it).
        tolerance: boundary F1's matching distance: pixels if >= 1, else a fraction of each
            image's diagonal, rounded up (DAVIS's default 0.008).
        band: Boundary IoU's band width: whole pixels if >= 1, else a fraction of each image's
            diagonal, rounded (the reference's default 0.02).

    Returns:
        A :class:`BoundaryReport`; pooled values NaN with a
        :class:`~pixeval.metrics.DegenerateInputWarning` when undefined (no true contour, no
        predicted contour for precision, empty bands everywhere).

    Example:
        A 2×2 square predicted one pixel to the right of the true one: every contour pixel is
        within 1 pixel of the other contour; the 1-pixel bands share 2 of 6 pixels.

        >>> import numpy as np
        >>> true = np.zeros((6, 6), bool); true[2:4, 1:3] = True
        >>> scores = np.zeros((6, 6)); scores[2:4, 2:4] = 1.0
        >>> report = boundary_metrics([scores], [true], threshold=0.5, tolerance=1, band=1)
        >>> report.boundary_f1, round(report.boundary_iou, 4)
        (1.0, 0.3333)
    """
    check_boundary_settings(tolerance, band)
    maps = as_image_list(score_maps, "score_maps")
    mask_list = as_image_list(masks, "masks")
    if len(maps) != len(mask_list):
        raise ValueError(f"got {len(maps)} score maps but {len(mask_list)} masks")
    binaries = []
    for index, (score_map, mask) in enumerate(zip(maps, mask_list)):
        binaries.append(check_pair(score_map, np.asarray(mask), index))
        if score_map.dtype.kind not in "biuf":
            raise ValueError(f"image {index}: scores must be numeric, got dtype {score_map.dtype}")
        finite_range(score_map, f"image {index}")
    threshold_from = "given"
    if threshold is None:
        threshold = float(pixel_ranking(maps, binaries).summary().f1_threshold)
        threshold_from = "pixel_f1_max"
    else:
        threshold = check_threshold(threshold)
    counts = []
    for score_map, binary in zip(maps, binaries):
        predicted = (score_map >= smallest_at_least(threshold, ranking_dtype([score_map.dtype]))
                     if np.isfinite(threshold) else np.zeros(score_map.shape, bool))
        counts.append(image_boundary(predicted, binary, tolerance_pixels(tolerance, score_map.shape),
                                     band_pixels(band, score_map.shape)))
    return _report(counts, [b.any() for b in binaries], threshold, threshold_from, tolerance, band)


def check_boundary_settings(tolerance: float, band_width: float) -> None:
    """Raise unless ``tolerance > 0`` and ``band > 0`` (an integer when >= 1)."""
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance: expected a positive number, got {tolerance}")
    if not (np.isfinite(band_width) and band_width > 0) or (band_width >= 1 and band_width != int(band_width)):
        raise ValueError(f"band: expected a fraction in (0, 1) or a whole number of pixels, got {band_width}")


def _report(counts: list[ImageBoundary], anomalous: list[bool], threshold: float,
            threshold_from: str, tolerance: float, band_width: float) -> BoundaryReport:
    predicted = sum(c.predicted for c in counts)
    true = sum(c.true for c in counts)
    union = sum(c.band_union for c in counts)
    if true == 0:
        warn_degenerate("boundary F1", "no true contour pixel")
    if predicted == 0 and true > 0:
        warn_degenerate("boundary precision", "no predicted contour pixel")
    if union == 0:
        warn_degenerate("Boundary IoU", "no band pixel, predicted or true")
    precision = sum(c.matched_predicted for c in counts) / predicted if predicted else np.nan
    recall = sum(c.matched_true for c in counts) / true if true else np.nan
    if true == 0:
        f1 = np.nan
    elif predicted == 0 or precision + recall == 0:
        f1 = 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall)
    per_image_f1 = np.array([c.f1 for c in counts])
    per_image_iou = np.array([c.iou for c in counts])
    anomalous = np.asarray(anomalous, dtype=bool)
    return BoundaryReport(
        threshold, threshold_from, float(tolerance), float(band_width), precision, recall, f1,
        sum(c.band_intersection for c in counts) / union if union else np.nan,
        _mean(per_image_f1[anomalous]), _mean(per_image_iou[anomalous]), per_image_f1,
        per_image_iou, len(counts), int(anomalous.sum()))


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else np.nan
