"""Bootstrap over images: confidence intervals and paired comparisons of two detectors.

Images, not pixels, are resampled (pixels of one image are strongly dependent). A resample
draws n images with replacement; every metric is recomputed on it exactly, and the interval is
the percentile interval of the resampled values. Resamples where a metric is undefined (e.g. no
anomalous image drawn) are left out of that metric's interval.

The resamples are drawn by :func:`draw_multiplicities` from the image count, the number of
resamples and the seed alone, so two detectors scored on the same images with the same seed see
the same resamples: their resampled values are paired (:func:`~pixeval.metrics.paired_bootstrap`,
and :func:`~pixeval.metrics.bootstrap_samples` kept per detector and compared later).

Speed: each image is reduced once to cell counts against the K distinct anomalous scores of the
whole set (see :func:`pixeval.metrics._kernels.resampled_summaries`), so a resample costs
O(cells of the drawn images + K) instead of a sort of all its pixels. An image has at most one
cell per distinct normal score, so heavily tied (e.g. quantised) maps are cheap and continuous
maps cost about one cell per pixel: 8 bytes per pixel of memory (int32 cell and count). The time
of 1000 resamples is measured by ``benchmarks/bench_metrics.py`` (benchmarks/README.md,
"Metric core").
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numba
import numpy as np

from . import _kernels

#: Metric names of the columns of :meth:`Units.summaries`, in the kernel's order.
_PIXEL_COLUMNS = ("pixel_auroc", "pixel_aupr", "pixel_f1_max", "pixel_aupro")
_IMAGE_COLUMNS = ("image_auroc", "image_aupr", "image_f1_max")
#: Metric names of the pixel metrics at a given threshold.
_THRESHOLD_COLUMNS = ("pixel_f1_at_threshold", "pixel_precision_at_threshold", "pixel_recall_at_threshold")


def resampled_metric_names(with_threshold: bool) -> tuple[str, ...]:
    """The names of the metrics :meth:`ResampleSet.metrics` computes on each resample."""
    return _PIXEL_COLUMNS + _IMAGE_COLUMNS + (_THRESHOLD_COLUMNS if with_threshold else ())


@dataclass(frozen=True)
class Units:
    """Resampling units (images) summarised against shared ``values`` (see the kernel)."""

    n_values: int
    neg_ptr: np.ndarray
    neg_cell: np.ndarray
    neg_count: np.ndarray
    pos_ptr: np.ndarray
    pos_value: np.ndarray
    pos_weight: np.ndarray
    regions: np.ndarray

    @classmethod
    def build(cls, values, unit_scores, unit_positives) -> Units:
        """``values``: distinct anomalous scores ascending; per unit all its scores (flat) and
        ``(anomalous scores, weights 1/region size, region count)``."""
        n_values = values.size
        neg_ptr, neg_cell, neg_count = [0], [], []
        pos_ptr, pos_value, pos_weight, regions = [0], [], [], []
        for scores, (pos_scores, weights, n_regions) in zip(unit_scores, unit_positives):
            cells = _cells(values, scores)
            counts = np.bincount(cells, minlength=2 * n_values + 1)
            pos_index = np.searchsorted(values, pos_scores)
            counts -= np.bincount(2 * pos_index + 1, minlength=2 * n_values + 1)
            occupied = np.flatnonzero(counts)
            neg_cell.append(occupied)
            neg_count.append(counts[occupied])
            neg_ptr.append(neg_ptr[-1] + occupied.size)
            pos_value.append(pos_index)
            pos_weight.append(weights)
            pos_ptr.append(pos_ptr[-1] + pos_index.size)
            regions.append(n_regions)

        def join(parts, dtype):
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

        return cls(n_values, np.asarray(neg_ptr, np.int64), join(neg_cell, np.int32),
                   join(neg_count, np.int32), np.asarray(pos_ptr, np.int64),
                   join(pos_value, np.int32), join(pos_weight, np.float64),
                   np.asarray(regions, np.int64))

    def summaries(self, multiplicities: np.ndarray, fpr_limit: float) -> np.ndarray:
        """``(B, 4)``: AUROC, AP, F1-max, AUPRO of each resample (see the kernel)."""
        return _kernels.resampled_summaries(
            multiplicities, self.neg_ptr, self.neg_cell, self.neg_count, self.pos_ptr,
            self.pos_value, self.pos_weight, self.regions, self.n_values, fpr_limit, numba.get_num_threads())


def _cells(values: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Cell of each score: ``2k + 1`` if equal to ``values[k]``, ``2k`` if between k-1 and k."""
    index = np.searchsorted(values, scores, side="left")
    equal = values[np.minimum(index, values.size - 1)] == scores if values.size else False
    return 2 * index + (equal & (index < values.size))


@dataclass(frozen=True)
class ResampleSet:
    """Everything a resample needs: pixel units, image units, threshold counts per image."""

    pixels: Units
    images: Units
    threshold_counts: np.ndarray | None  # (n_images, 2): [tp, predicted] at the threshold
    n_pos: np.ndarray  # anomalous pixels per image
    n_pixels: np.ndarray

    @property
    def n_images(self) -> int:
        return self.n_pos.size

    def metrics(self, multiplicities: np.ndarray, fpr_limit: float) -> dict[str, np.ndarray]:
        """Every metric of every resample, by name (arrays of length B; NaN where undefined)."""
        result = dict(zip(_PIXEL_COLUMNS, self.pixels.summaries(multiplicities, fpr_limit).T))
        image = self.images.summaries(multiplicities, fpr_limit)
        result.update(zip(_IMAGE_COLUMNS, image[:, :3].T))
        if self.threshold_counts is not None:
            tp, predicted = (multiplicities @ self.threshold_counts).T.astype(np.float64)
            n_pos = (multiplicities @ self.n_pos).astype(np.float64)
            n_neg = (multiplicities @ self.n_pixels).astype(np.float64) - n_pos
            valid = (n_pos > 0) & (n_neg > 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                f1, precision, recall = _THRESHOLD_COLUMNS
                result[f1] = np.where(valid, 2 * tp / (predicted + n_pos), np.nan)
                result[precision] = np.where(valid & (predicted > 0), tp / predicted, np.nan)
                result[recall] = np.where(valid, tp / n_pos, np.nan)
        return result


def draw_multiplicities(n_images: int, n_resamples: int, seed: int) -> np.ndarray:
    """``(n_resamples, n_images)`` int64: how often each image is drawn in each resample."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_images, size=(n_resamples, n_images))
    multiplicities = np.zeros((n_resamples, n_images), dtype=np.int64)
    np.add.at(multiplicities, (np.repeat(np.arange(n_resamples), n_images), draws.ravel()), 1)
    return multiplicities


def check_bootstrap_args(n_resamples: int, confidence: float) -> None:
    if int(n_resamples) != n_resamples or n_resamples < 0:
        raise ValueError(f"bootstrap must be a non-negative integer, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` percentile interval of the finite samples (NaN if none)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return (np.nan, np.nan)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return (float(low), float(high))


def intervals(resample_set: ResampleSet, n_resamples: int, confidence: float, seed: int,
              fpr_limit: float) -> dict[str, tuple[float, float]]:
    """Bootstrap percentile intervals of every metric."""
    multiplicities = draw_multiplicities(resample_set.n_images, n_resamples, seed)
    samples = resample_set.metrics(multiplicities, fpr_limit)
    undefined = {name: int(np.count_nonzero(~np.isfinite(v))) for name, v in samples.items()}
    worst = max(undefined, key=undefined.get)
    if undefined[worst]:
        warnings.warn(
            f"bootstrap: {undefined[worst]} of {n_resamples} resamples left {worst} undefined "
            "(e.g. no anomalous image drawn); its interval uses the others", stacklevel=3)
    return {name: percentile_interval(values, confidence) for name, values in samples.items()}


@dataclass(frozen=True)
class PairedComparison:
    """Detector A minus detector B on one metric, over the same images.

    ``difference`` is ``value_a - value_b`` on all images; ``ci_low``/``ci_high`` its bootstrap
    percentile interval (both detectors scored on the *same* resamples); ``p_value`` the
    two-sided bootstrap p-value of "no difference":
    ``min(1, 2 (1 + #{d* <= 0 or d* >= 0, the smaller}) / (1 + B))`` over the B resampled
    differences d* (so never below ``2 / (B + 1)``).
    """

    metric: str
    value_a: float
    value_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_resamples: int


def compare(name: str, value_a: float, value_b: float, samples_a: np.ndarray,
            samples_b: np.ndarray, confidence: float) -> PairedComparison:
    """A :class:`PairedComparison` from point values and paired resampled values."""
    differences = samples_a - samples_b
    finite = differences[np.isfinite(differences)]
    low, high = percentile_interval(finite, confidence)
    if finite.size:
        tail = min(np.count_nonzero(finite <= 0), np.count_nonzero(finite >= 0))
        p_value = min(1.0, 2.0 * (1 + int(tail)) / (1 + finite.size))
    else:
        p_value = np.nan
    return PairedComparison(name, value_a, value_b, value_a - value_b, low, high, p_value,
                            int(finite.size))
