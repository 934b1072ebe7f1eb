"""Thresholds a deployment would have: set on normal images only, then applied to the test set.

F1-max picks its threshold on the test set itself, which no deployed detector can do. Here the
threshold comes from normal data (validation or training maps, no anomaly needed): the lowest
score whose pixel false-positive rate over those maps is at most a target such as 1 %
(:func:`threshold_at_fpr`); :func:`metrics_at_threshold` gives the pixel precision, recall, F1
and FPR and the image-level ones that this threshold yields on a test set, to be read beside
the test-tuned F1-max.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ._inputs import (as_image_list, check_image_scores, check_pair, check_rate, check_threshold,
                      finite_range, ranking_dtype, warn_caller)
from .pooled import smallest_at_least
from .ranking import threshold_scores


@dataclass(frozen=True)
class NormalThreshold:
    """A threshold set on normal maps.

    Attributes:
        threshold: the lowest threshold t (a pixel is anomalous when ``score >= t``) whose FPR
            on the normal maps is at most ``target_fpr``.
        target_fpr: the FPR asked for.
        fpr: the FPR the threshold gives on those maps (<= target; lower when ties at the
            threshold would push it over).
        n_pixels, n_images: the normal pixels and maps it was set on.
    """

    threshold: float
    target_fpr: float
    fpr: float
    n_pixels: int
    n_images: int

    def to_dict(self) -> dict[str, float | int]:
        """``normal_threshold``, ``normal_target_fpr``, ``normal_fpr``, ``normal_pixels``,
        ``normal_images``."""
        return {f"normal_{key.removeprefix('n_')}": value for key, value in asdict(self).items()}


def threshold_at_fpr(normal_maps, target_fpr: float = 0.01) -> NormalThreshold:
    """The lowest threshold whose pixel FPR over ``normal_maps`` is at most ``target_fpr``.

    Every pixel of ``normal_maps`` is normal, and ``FPR(t) = #{score >= t} / #pixels`` pooled
    over all of them. The threshold is the smallest distinct score value v with
    ``FPR(v) <= target_fpr`` (with ``FPR = count / n`` in float64, so that 3 of 10 pixels meets
    0.3). Tied scores move together, so ties at the threshold can leave the FPR below
    the target. When no score value qualifies (``target * n < 1``, or more than ``target * n``
    pixels tie at the highest score) the threshold is the next representable value above the
    highest score (FPR 0), with a warning. ``target_fpr = 1`` gives the lowest score.

    Args:
        normal_maps: 2-D score maps of normal images (a sequence, or a stacked ``N×H×W`` array).
        target_fpr: the largest acceptable pixel FPR, in [0, 1].

    Returns:
        A :class:`NormalThreshold`. Exact, linear time: one ``np.partition`` of the scores.

    Example:
        Ten normal pixels scoring 0..9: at most 20 % may be flagged, so t = 8 (FPR 0.2).

        >>> import numpy as np
        >>> result = threshold_at_fpr([np.arange(10.0).reshape(2, 5)], target_fpr=0.2)
        >>> result.threshold, result.fpr
        (8.0, 0.2)
    """
    target = check_rate(target_fpr, "target_fpr")
    maps = as_image_list(normal_maps, "normal_maps")
    scores = _flat_scores(maps)
    n = scores.size
    allowed = _most_allowed(target, n)
    if allowed >= n:
        return NormalThreshold(float(scores.min()), target, 1.0, n, len(maps))
    pivot_index = n - allowed - 1
    scores.partition(pivot_index)
    pivot = scores[pivot_index]
    above = scores[pivot_index + 1:]
    above = above[above > pivot]
    if above.size:
        return NormalThreshold(float(above.min()), target, above.size / n, n, len(maps))
    threshold = np.nextafter(pivot, np.asarray(np.inf, dtype=scores.dtype))
    if target > 0:
        reason = (f"{target:g} of {n} pixels is less than one" if allowed == 0 else
                  f"more than {allowed} of the {n} pixels hold the highest score")
        warn_caller(f"threshold_at_fpr: no normal score has FPR <= {target:g} ({reason}); the "
                    f"threshold is just above the highest normal score, {float(pivot):g}")
    return NormalThreshold(float(threshold), target, 0.0, n, len(maps))


def _most_allowed(target: float, n: int) -> int:
    """The largest count c in [0, n] with ``c / n <= target`` as float64 division (the FPR as it
    is computed and reported, so that e.g. 3 of 10 pixels meets a target of 0.3)."""
    count = min(n, math.floor(target * n))
    while count < n and (count + 1) / n <= target:
        count += 1
    while count > 0 and count / n > target:
        count -= 1
    return count


def _flat_scores(maps: list[np.ndarray]) -> np.ndarray:
    """All scores of ``maps`` validated and copied into one flat array of their ranking dtype."""
    dtypes = []
    for index, score_map in enumerate(maps):
        if score_map.size == 0:
            raise ValueError(f"normal_maps[{index}]: empty score map (shape {score_map.shape})")
        if score_map.dtype.kind not in "biuf":
            raise ValueError(f"normal_maps[{index}]: scores must be numeric, got dtype {score_map.dtype}")
        dtypes.append(score_map.dtype)
    scores = np.concatenate([m.ravel() for m in maps], dtype=ranking_dtype(dtypes))
    for index, score_map in enumerate(maps):
        finite_range(score_map, f"normal_maps[{index}]")
    return scores


@dataclass(frozen=True)
class ThresholdReport:
    """Pixel and image metrics at a given threshold.

    Pixels with ``score >= threshold`` and images with ``image score >= image_threshold`` are
    predicted anomalous. Precision, recall and F1 (``2 TP / (2 TP + FP + FN)``) are pooled over
    all pixels (images); FPR is the share of normal pixels (images) predicted anomalous.
    Undefined values are NaN (a :class:`~pixeval.metrics.DegenerateInputWarning` said why).
    """

    threshold: float
    image_threshold: float
    pixel_precision: float
    pixel_recall: float
    pixel_f1: float
    pixel_fpr: float
    image_precision: float
    image_recall: float
    image_f1: float
    image_fpr: float
    n_pixels: int
    n_anomalous_pixels: int
    n_images: int
    n_anomalous_images: int

    def to_dict(self) -> dict[str, float | int]:
        """Flat, with the metric names of :class:`~pixeval.metrics.MetricReport`
        (``pixel_f1_at_threshold`` ...)."""
        flat = {"threshold": self.threshold, "image_threshold": self.image_threshold}
        for level in ("pixel", "image"):
            for metric in ("precision", "recall", "f1", "fpr"):
                flat[f"{level}_{metric}_at_threshold"] = getattr(self, f"{level}_{metric}")
        flat.update(n_pixels=self.n_pixels, n_anomalous_pixels=self.n_anomalous_pixels,
                    n_images=self.n_images, n_anomalous_images=self.n_anomalous_images)
        return flat


def metrics_at_threshold(score_maps, masks, threshold: float, image_scores=None, *,
                         image_threshold: float | None = None) -> ThresholdReport:
    """Precision, recall, F1 and FPR of pixels and of images at a given threshold.

    A pixel is predicted anomalous when ``score >= threshold`` (compared exactly, whatever the
    maps' dtype); an image when its score ``>= image_threshold``. Image scores are the maps'
    maxima unless given; ``image_threshold`` defaults to ``threshold``, so with the maxima an
    image is flagged exactly when one of its pixels is. Counts are pooled over the set; F1 at
    a threshold uses the same formula as the core (:func:`~pixeval.metrics.f1_at_threshold`).

    Args:
        score_maps: 2-D maps (a sequence, or a stacked ``N×H×W`` array).
        masks: binary masks of the same shapes.
        threshold: the pixel threshold, e.g. :func:`threshold_at_fpr`'s on normal data, or
            the F1-max threshold of another set.
        image_scores: one score per image (default: each map's maximum).
        image_threshold: the image threshold (default: ``threshold``).

    Returns:
        A :class:`ThresholdReport`.

    Example:
        >>> import numpy as np
        >>> maps = [np.array([[0.9, 0.2], [0.7, 0.1]]), np.array([[0.6, 0.0], [0.0, 0.0]])]
        >>> masks = [np.array([[1, 1], [0, 0]]), np.zeros((2, 2))]
        >>> report = metrics_at_threshold(maps, masks, 0.65)
        >>> report.pixel_precision, report.pixel_recall, report.image_f1
        (0.5, 0.5, 1.0)
    """
    pixel_threshold = check_threshold(threshold)
    image_cut = pixel_threshold if image_threshold is None else check_threshold(
        image_threshold, "image_threshold")
    maps = as_image_list(score_maps, "score_maps")
    mask_list = as_image_list(masks, "masks")
    if len(maps) != len(mask_list):
        raise ValueError(f"got {len(maps)} score maps but {len(mask_list)} masks")
    given = None if image_scores is None else check_image_scores(image_scores, len(maps))
    tp = predicted = n_pos = n_pixels = 0
    maxima, labels = np.empty(len(maps)), np.empty(len(maps), dtype=bool)
    for index, (score_map, mask) in enumerate(zip(maps, mask_list)):
        binary = check_pair(score_map, np.asarray(mask), index)
        if score_map.dtype.kind not in "biuf":
            raise ValueError(f"image {index}: scores must be numeric, got dtype {score_map.dtype}")
        _, maxima[index] = finite_range(score_map, f"image {index}")
        flagged = score_map >= smallest_at_least(pixel_threshold, ranking_dtype([score_map.dtype]))
        tp += int(np.count_nonzero(flagged & binary))
        predicted += int(np.count_nonzero(flagged))
        n_pos += int(np.count_nonzero(binary))
        n_pixels += score_map.size
        labels[index] = binary.any()
    pixel_f1, pixel_precision, pixel_recall = threshold_scores(tp, predicted, n_pos, n_pixels - n_pos)
    image_values = maxima if given is None else given
    image_flagged = image_values >= image_cut
    n_anomalous = int(labels.sum())
    image_f1, image_precision, image_recall = threshold_scores(
        int(np.count_nonzero(image_flagged & labels)), int(np.count_nonzero(image_flagged)),
        n_anomalous, len(maps) - n_anomalous, unit="image")
    return ThresholdReport(
        pixel_threshold, image_cut, pixel_precision, pixel_recall, pixel_f1,
        _rate(predicted - tp, n_pixels - n_pos), image_precision, image_recall, image_f1,
        _rate(int(np.count_nonzero(image_flagged & ~labels)), len(maps) - n_anomalous),
        n_pixels, n_pos, len(maps), n_anomalous)


def _rate(count: int, total: int) -> float:
    return count / total if total else np.nan
