"""Pooled evaluation of a set of images: per-image extraction, then one report.

Each image is validated and reduced to what the metrics need besides the scores themselves: its
anomalous pixels (scores and PRO weights), its region count and its maximum score. The scores of
all images are then ranked together (:class:`~pixeval.metrics.ranking.Ranking`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._inputs import finite_range, check_pair, warn_degenerate
from .pro import AnomalousPixels, anomalous_pixels
from .ranking import Ranking, threshold_scores
from .report import MetricReport


@dataclass(frozen=True)
class ImagePixels:
    """One validated image: pixel count, anomalous pixels and maximum score."""

    n_pixels: int
    anomalous: AnomalousPixels
    max_score: float


def extract(index: int, score_map: np.ndarray, mask: np.ndarray, dtype,
            out: np.ndarray) -> ImagePixels:
    """Validate image ``index``, write its scores (as ``dtype``) to the flat ``out``, summarise it."""
    binary = check_pair(score_map, mask, index)
    if score_map.dtype.kind not in "biuf":
        raise ValueError(f"image {index}: scores must be numeric, got dtype {score_map.dtype}")
    out.reshape(score_map.shape)[...] = score_map
    _, max_score = finite_range(out, f"image {index}")
    return ImagePixels(out.size, anomalous_pixels(out.reshape(score_map.shape), binary), max_score)


def smallest_at_least(threshold: float, dtype) -> np.generic:
    """The smallest ``dtype`` value >= ``threshold``: ``x >= t`` iff ``x >= this`` for x in dtype."""
    cast = np.asarray(threshold, dtype=dtype)[()]
    if cast < threshold:
        cast = np.nextafter(cast, np.asarray(np.inf, dtype=dtype))
    return cast


def image_level(images: list[ImagePixels], image_scores=None):
    """Image scores (given, or each map's maximum) and labels (mask has an anomalous pixel)."""
    labels = np.array([image.anomalous.scores.size > 0 for image in images])
    if image_scores is None:
        scores = np.array([image.max_score for image in images], dtype=np.float64)
    else:
        scores = np.asarray(image_scores)
        if scores.shape != (len(images),):
            raise ValueError(
                f"image_scores: expected one score per image ({len(images)}), got shape {scores.shape}"
            )
        finite_range(scores, "image_scores")
    return scores, labels


def pooled_positives(images: list[ImagePixels]):
    """All anomalous pixels' scores, their regions numbered across images, and region sizes."""
    positives = [image.anomalous for image in images]
    offsets = np.cumsum([0] + [p.n_regions for p in positives])
    scores = np.concatenate([p.scores for p in positives])
    regions = np.concatenate([p.regions + offset for p, offset in zip(positives, offsets)])
    return scores, regions, np.concatenate([p.sizes for p in positives])


def pooled_report(buffer: np.ndarray, images: list[ImagePixels], *, image_scores=None,
                  fpr_limit: float = 0.3, threshold: float | None = None) -> MetricReport:
    """The report of all images whose scores fill ``buffer``; ``buffer`` is sorted in place."""
    pos_scores, pos_regions, region_sizes = pooled_positives(images)
    n_regions = region_sizes.size
    buffer.sort()
    ranking = Ranking.from_sorted(buffer, pos_scores, pos_regions, region_sizes)
    reason = ranking.degenerate_reason()
    if reason is not None:
        warn_degenerate("pixel metrics", reason)
    pixel = ranking.summary(fpr_limit)

    at_threshold = {}
    if threshold is not None:
        cut = smallest_at_least(threshold, buffer.dtype)
        predicted = buffer.size - int(np.searchsorted(buffer, cut, side="left"))
        tp = int(np.count_nonzero(pos_scores >= cut))
        f1, precision, recall = threshold_scores(tp, predicted, ranking.n_pos, ranking.n_neg)
        at_threshold = dict(threshold=float(threshold), pixel_f1_at_threshold=f1,
                            pixel_precision_at_threshold=precision,
                            pixel_recall_at_threshold=recall)

    scores, labels = image_level(images, image_scores)
    image_ranking = Ranking.from_flat(scores, labels)
    reason = image_ranking.degenerate_reason()
    if reason is not None:
        warn_degenerate("image metrics", reason.replace("pixel", "image"))
    image = image_ranking.summary()
    return MetricReport(
        pixel_auroc=float(pixel.auroc), pixel_aupr=float(pixel.average_precision),
        pixel_f1_max=float(pixel.f1_max), pixel_f1_threshold=float(pixel.f1_threshold),
        pixel_aupro=float(pixel.aupro), fpr_limit=fpr_limit,
        image_auroc=float(image.auroc), image_aupr=float(image.average_precision),
        image_f1_max=float(image.f1_max), image_f1_threshold=float(image.f1_threshold),
        n_images=len(images), n_anomalous_images=int(labels.sum()), n_regions=n_regions,
        n_pixels=int(buffer.size), n_anomalous_pixels=ranking.n_pos, **at_threshold,
    )
