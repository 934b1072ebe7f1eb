"""Pooled evaluation of a set of images: per-image extraction, then one report.

Each image is validated and reduced to what the metrics need besides the scores themselves: its
anomalous pixels (scores and PRO weights), its region count and its maximum score. The scores of
all images are then ranked together (:class:`~pixeval.metrics.ranking.Ranking`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._inputs import as_image_list, check_image_scores, check_pair, finite_range, ranking_dtype, warn_degenerate
from .bootstrap import ResampleSet, Units, intervals
from .pro import AnomalousPixels, anomalous_pixels
from .ranking import Ranking, SortedScores, group_by_score, threshold_scores
from .report import MetricReport


@dataclass(frozen=True)
class ImagePixels:
    """One validated image: pixel count, anomalous pixels and maximum score."""

    n_pixels: int
    anomalous: AnomalousPixels
    max_score: float


def extract(index: int, score_map: np.ndarray, mask: np.ndarray, out: np.ndarray) -> ImagePixels:
    """Validate image ``index``, write its scores to the flat ``out`` (in its dtype), summarise it."""
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
        return np.array([image.max_score for image in images], dtype=np.float64), labels
    return check_image_scores(image_scores, len(images)), labels


def pooled_positives(images: list[ImagePixels]):
    """All anomalous pixels' scores, their regions numbered across images, and region sizes."""
    positives = [image.anomalous for image in images]
    offsets = np.cumsum([0] + [p.n_regions for p in positives])
    scores = np.concatenate([p.scores for p in positives])
    regions = np.concatenate([p.regions + np.int32(offset) for p, offset in zip(positives, offsets)])
    return scores, regions, np.concatenate([p.sizes for p in positives])


def collect(score_maps, masks) -> tuple[np.ndarray, list[ImagePixels], list[np.ndarray]]:
    """Validate all images and copy their scores into one flat buffer.

    Returns the buffer, each image's :class:`ImagePixels` and each image's scores (views into the
    buffer, valid until the buffer is sorted).
    """
    maps = as_image_list(score_maps, "score_maps")
    mask_list = as_image_list(masks, "masks")
    if len(maps) != len(mask_list):
        raise ValueError(f"got {len(maps)} score maps but {len(mask_list)} masks")
    buffer = np.empty(sum(m.size for m in maps), dtype=ranking_dtype([m.dtype for m in maps]))
    images, chunks = [], []
    offset = 0
    for index, (score_map, mask) in enumerate(zip(maps, mask_list)):
        chunk = buffer[offset:offset + score_map.size]
        images.append(extract(index, score_map, np.asarray(mask), chunk))
        chunks.append(chunk)
        offset += score_map.size
    return buffer, images, chunks


def pixel_ranking(score_maps, masks, *, keep_next_above: bool = False) -> Ranking:
    """The pooled pixel :class:`Ranking` of score maps against masks (regions included)."""
    buffer, images, _ = collect(score_maps, masks)
    pos_scores, pos_regions, region_sizes = pooled_positives(images)
    return Ranking.from_sorted(SortedScores(buffer), pos_scores, pos_regions, region_sizes,
                               keep_next_above=keep_next_above)


def analyse(buffer: np.ndarray, images: list[ImagePixels], chunks: list[np.ndarray], *,
            image_scores=None, fpr_limit: float = 0.3, threshold: float | None = None,
            resample: bool = False) -> tuple[MetricReport, ResampleSet | None]:
    """The report of the images whose scores fill ``buffer`` (sorted in place here).

    ``chunks`` are each image's scores; they are read before the sort, to build the
    :class:`~pixeval.metrics.bootstrap.ResampleSet` when ``resample`` is true.
    """
    pos_scores, pos_regions, region_sizes = pooled_positives(images)
    groups = group_by_score(pos_scores, pos_regions, region_sizes)
    del pos_scores, pos_regions  # only the groups are needed from here
    image_values, image_labels = image_level(images, image_scores)
    cut = None if threshold is None else smallest_at_least(threshold, buffer.dtype)
    resample_set = None
    if resample:
        resample_set = _resample_set(groups[0], chunks, images, image_values, image_labels, cut)

    scores = SortedScores(buffer)
    ranking = Ranking.from_groups(scores, *groups, region_sizes.size)
    counts = None
    if cut is not None:
        counts = (sum(int(np.count_nonzero(image.anomalous.scores >= cut)) for image in images),
                  scores.count_at_least(cut))
    report = build_report(ranking, fpr_limit, image_values, image_labels, threshold, counts)
    return report, resample_set


def build_report(ranking: Ranking, fpr_limit: float, image_values: np.ndarray,
                 image_labels: np.ndarray, threshold: float | None = None,
                 threshold_counts: tuple[int, int] | None = None,
                 binned: bool = False) -> MetricReport:
    """A :class:`MetricReport` from the pixel ranking, the image scores and labels, and the
    ``(anomalous, all)`` pixel counts at ``score >= threshold``. Warns about undefined metrics."""
    reason = ranking.degenerate_reason()
    if reason is not None:
        warn_degenerate("pixel metrics", reason)
    pixel = ranking.summary(fpr_limit)
    at_threshold = {}
    if threshold is not None:
        f1, precision, recall = threshold_scores(*threshold_counts, ranking.n_pos, ranking.n_neg)
        flagged = image_values >= threshold
        n_anomalous_images = int(image_labels.sum())
        image_f1 = (2.0 * np.count_nonzero(flagged & image_labels) / (np.count_nonzero(flagged) + n_anomalous_images)
                    if 0 < n_anomalous_images < image_labels.size else np.nan)  # the image metrics warn when not
        at_threshold = dict(threshold=float(threshold), pixel_f1_at_threshold=f1,
                            pixel_precision_at_threshold=precision,
                            pixel_recall_at_threshold=recall, image_f1_at_threshold=image_f1)
    image_ranking = Ranking.from_flat(image_values, image_labels)
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
        n_images=int(image_labels.size), n_anomalous_images=int(image_labels.sum()),
        n_regions=ranking.n_regions, n_pixels=ranking.n_pos + ranking.n_neg,
        n_anomalous_pixels=ranking.n_pos, binned=binned, **at_threshold,
    )


def _resample_set(values, chunks, images, image_values, image_labels, cut) -> ResampleSet:
    pixel_units = Units.build(values, chunks, [
        (image.anomalous.scores, 1.0 / image.anomalous.sizes[image.anomalous.regions],
         image.anomalous.n_regions) for image in images])
    image_units = Units.build(
        np.unique(image_values[image_labels]),
        [image_values[j:j + 1] for j in range(len(images))],
        [(image_values[j:j + 1][image_labels[j:j + 1]], np.zeros(int(image_labels[j])), 0)
         for j in range(len(images))])
    threshold_counts = None
    if cut is not None:
        threshold_counts = np.array([
            [np.count_nonzero(image.anomalous.scores >= cut), np.count_nonzero(chunk >= cut)]
            for image, chunk in zip(images, chunks)], dtype=np.int64).reshape(-1, 2)
    return ResampleSet(
        pixel_units, image_units, threshold_counts,
        np.array([image.anomalous.scores.size for image in images], dtype=np.int64),
        np.array([image.n_pixels for image in images], dtype=np.int64))


def pooled_report(buffer, images, chunks, *, image_scores=None, fpr_limit=0.3, threshold=None,
                  bootstrap=0, confidence=0.95, seed=0) -> MetricReport:
    """:func:`analyse`, plus bootstrap intervals of every metric when ``bootstrap > 0`` (the
    caller has checked the arguments)."""
    report, resample_set = analyse(buffer, images, chunks, image_scores=image_scores,
                                   fpr_limit=fpr_limit, threshold=threshold,
                                   resample=bootstrap > 0)
    if resample_set is not None:
        report.intervals = intervals(resample_set, bootstrap, confidence, seed, fpr_limit)
        report.confidence = confidence
        report.bootstrap_resamples = bootstrap
    return report
