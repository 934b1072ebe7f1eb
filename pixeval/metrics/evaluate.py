"""``evaluate``: every metric of a set of score maps against their masks, in one call;
``aupro`` alone; ``bootstrap_samples``: every metric on each bootstrap resample of the images;
and ``paired_bootstrap``: whether two detectors really differ on the same images."""

from __future__ import annotations

import numpy as np

from ._inputs import as_image_list, check_fpr_limit, check_image_scores, check_optional_threshold, warn_degenerate
from .aupimo import DEFAULT_FPR_BOUNDS, aupimo_report
from .bootstrap import PairedComparison, check_bootstrap_args, compare, draw_multiplicities, resampled_metric_names
from .boundary import boundary_metrics
from .pooled import analyse, collect, pixel_ranking, pooled_report
from .report import MetricReport


def evaluate(score_maps, masks, image_scores=None, *, fpr_limit: float = 0.3,
             threshold: float | None = None, bootstrap: int = 0, confidence: float = 0.95,
             seed: int = 0, extended: bool = False) -> MetricReport:
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
        extended: also the extended metrics: the mean AUPIMO of the anomalous images
            (:func:`~pixeval.metrics.aupimo` with its default FPR range) and boundary F1 and
            Boundary IoU (:func:`~pixeval.metrics.boundary_metrics` with its defaults) at the
            F1-max threshold and at ``threshold``. No bootstrap intervals for these.

    Returns:
        A :class:`MetricReport`. Invalid input raises ``ValueError`` naming the image; a metric
        undefined on the data (e.g. no anomalous pixel) is NaN with a warning.

    Memory: one copy of the scores (sorted in place; float32 adds 32 MiB of radix-sort
    scratch), plus the anomalous pixels' data (and, with ``bootstrap``, each image's counts per
    score cell; see :mod:`.bootstrap`).

    Example:
        >>> import numpy as np
        >>> maps = [np.array([[0.1, 0.7], [0.9, 0.35]]), np.array([[0.6, 0.2], [0.4, 0.1]])]
        >>> masks = [np.array([[0, 1], [1, 1]]), np.zeros((2, 2))]  # one 3-pixel region; a normal image
        >>> from pixeval.metrics import evaluate
        >>> report = evaluate(maps, masks)
        >>> round(report.pixel_auroc, 4), round(report.pixel_aupr, 4), report.pixel_f1_max, report.pixel_f1_threshold
        (0.8667, 0.8667, 0.8, 0.7)
        >>> round(report.pixel_aupro, 4), report.image_auroc, report.n_regions
        (0.6667, 1.0, 1)
    """
    fpr_limit = check_fpr_limit(fpr_limit)
    check_optional_threshold(threshold)
    check_bootstrap_args(bootstrap, confidence)
    maps = as_image_list(score_maps, "score_maps")
    if image_scores is not None:
        check_image_scores(image_scores, len(maps))
    buffer, images, chunks = collect(maps, masks)
    per_image_overlap = aupimo_report(images, chunks, DEFAULT_FPR_BOUNDS) if extended else None
    report = pooled_report(buffer, images, chunks, image_scores=image_scores, fpr_limit=fpr_limit,
                           threshold=threshold, bootstrap=bootstrap, confidence=confidence,
                           seed=seed)
    if extended:
        del buffer, chunks
        report.pixel_aupimo, report.aupimo = per_image_overlap.mean, per_image_overlap
        report.boundary_f1, report.boundary_iou = _boundary(maps, masks, report.pixel_f1_threshold)
        if threshold is not None:
            report.boundary_f1_at_threshold, report.boundary_iou_at_threshold = _boundary(maps, masks, threshold)
    return report


def _boundary(maps, masks, threshold: float) -> tuple[float, float]:
    """Pooled boundary F1 and Boundary IoU at ``threshold``; NaN when the threshold is (no
    F1-max threshold on a degenerate set)."""
    if np.isnan(threshold):
        return np.nan, np.nan
    report = boundary_metrics(maps, masks, threshold)
    return report.boundary_f1, report.boundary_iou


def aupro(score_maps, masks, fpr_limit: float = 0.3) -> float:
    """AUPRO up to ``fpr_limit``, normalised by the limit: the MVTec AD algorithm.

    Regions are the 8-connected components of each mask; a pixel of a region carries weight
    ``1 / (region size * number of regions in the set)``; PRO(t) sums the weights of pixels with
    ``score >= t`` and FPR(t) is over all normal pixels of all images (defect-free images only
    add normal pixels). The curve starts at (0, 0), ties move together, PRO is linearly
    interpolated at FPR = ``fpr_limit``; the trapezoid area is divided by the limit.
    NaN (with a warning) without anomalous or without normal pixels.

    Example (PRO is 2/3 from FPR 0 to beyond the limit):
        >>> import numpy as np
        >>> maps = [np.array([[0.1, 0.7], [0.9, 0.35]]), np.array([[0.6, 0.2], [0.4, 0.1]])]
        >>> masks = [np.array([[0, 1], [1, 1]]), np.zeros((2, 2))]  # one 3-pixel region; a normal image
        >>> from pixeval.metrics import aupro
        >>> round(aupro(maps, masks, fpr_limit=0.3), 4)
        0.6667
    """
    fpr_limit = check_fpr_limit(fpr_limit)
    ranking = pixel_ranking(score_maps, masks)
    reason = ranking.degenerate_reason()
    if reason is not None:
        warn_degenerate("AUPRO", reason)
    return float(ranking.summary(fpr_limit).aupro)


def paired_bootstrap(score_maps_a, score_maps_b, masks, *, image_scores_a=None,
                     image_scores_b=None, n_resamples: int = 1000, confidence: float = 0.95,
                     seed: int = 0, fpr_limit: float = 0.3, threshold: float | None = None,
                     metrics=None) -> dict[str, PairedComparison]:
    """Compare two detectors' maps on the same images: difference, interval, p-value per metric.

    Both detectors are scored on the *same* bootstrap resamples of the images, so the interval
    of ``metric(A) - metric(B)`` accounts for the images both share (a paired test). See
    :class:`~pixeval.metrics.bootstrap.PairedComparison` for the p-value.

    Args:
        score_maps_a, score_maps_b: the two detectors' maps for the same images, in the same order.
        masks: the images' ground truth.
        image_scores_a, image_scores_b: optional image scores (default: each map's maximum).
        n_resamples, confidence, seed: the bootstrap.
        fpr_limit, threshold: as in :func:`evaluate`.
        metrics: names to compare (default: all of the pixel and image metrics, and the
            metrics at the threshold when one is given).

    Returns:
        ``{metric name: PairedComparison}``.

    Example (B scores one anomalous pixel below every normal one):
        >>> import numpy as np
        >>> maps = [np.array([[0.1, 0.7], [0.9, 0.35]]), np.array([[0.6, 0.2], [0.4, 0.1]])]
        >>> masks = [np.array([[0, 1], [1, 1]]), np.zeros((2, 2))]  # one 3-pixel region; a normal image
        >>> from pixeval.metrics import paired_bootstrap
        >>> worse = [maps[0].copy(), maps[1]]
        >>> worse[0][1, 1] = 0.05
        >>> comparison = paired_bootstrap(maps, worse, masks, n_resamples=100, seed=0)["pixel_aupr"]
        >>> round(comparison.value_a, 4), round(comparison.value_b, 4), round(comparison.difference, 4)
        (0.8667, 0.7917, 0.075)
    """
    fpr_limit = check_fpr_limit(fpr_limit)
    check_optional_threshold(threshold)
    check_bootstrap_args(n_resamples, confidence)
    _check_resamples(n_resamples, "paired_bootstrap")
    available = resampled_metric_names(threshold is not None)
    names = list(available) if metrics is None else list(metrics)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ValueError(f"metrics: unknown or unavailable {unknown}; choose from {list(available)}")
    mask_list = as_image_list(masks, "masks")
    (report_a, samples_a), (report_b, samples_b) = (
        _report_and_samples(maps, mask_list, image_scores, n_resamples, seed, fpr_limit, threshold)
        for maps, image_scores in ((score_maps_a, image_scores_a), (score_maps_b, image_scores_b)))
    return {name: compare(name, getattr(report_a, name), getattr(report_b, name),
                          samples_a[name], samples_b[name], confidence) for name in names}


def bootstrap_samples(score_maps, masks, *, image_scores=None, n_resamples: int = 1000,
                      seed: int = 0, fpr_limit: float = 0.3) -> dict[str, np.ndarray]:
    """Every pixel and image metric on each of ``n_resamples`` bootstrap resamples of the images.

    Resample ``b`` takes image ``j`` ``m[b, j]`` times, where ``m`` is
    ``draw_multiplicities(n_images, n_resamples, seed)``
    (:func:`pixeval.metrics.bootstrap.draw_multiplicities`); each value equals :func:`evaluate` on
    that resampled image list, and is NaN where the metric is undefined on it (e.g. no anomalous
    image drawn). Returns ``{metric name: float64 array of length n_resamples}``.

    **Pairing**: the resamples depend only on the number of images, ``n_resamples`` and ``seed``.
    Two calls on the same images (in the same order) with the same ``n_resamples`` and ``seed``
    use the same resamples, so the samples of two detectors are paired: ``samples_a[b] -
    samples_b[b]`` is the difference on one resample, as in :func:`paired_bootstrap`.

    Example (the first resample drew only the normal image, so its P-AUPR is undefined):
        >>> import numpy as np
        >>> maps = [np.array([[0.1, 0.7], [0.9, 0.35]]), np.array([[0.6, 0.2], [0.4, 0.1]])]
        >>> masks = [np.array([[0, 1], [1, 1]]), np.zeros((2, 2))]  # one 3-pixel region; a normal image
        >>> from pixeval.metrics import bootstrap_samples
        >>> samples = bootstrap_samples(maps, masks, n_resamples=4, seed=0)
        >>> np.round(samples["pixel_aupr"], 4).tolist()
        [nan, 0.8667, 1.0, 1.0]
    """
    fpr_limit = check_fpr_limit(fpr_limit)
    _check_resamples(n_resamples, "bootstrap_samples")
    return _report_and_samples(score_maps, masks, image_scores, n_resamples, seed, fpr_limit,
                               None)[1]


def _check_resamples(n_resamples: int, caller: str) -> None:
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"{caller} needs an integer n_resamples >= 1, got {n_resamples}")


def _report_and_samples(score_maps, masks, image_scores, n_resamples: int, seed: int,
                        fpr_limit: float, threshold: float | None
                        ) -> tuple[MetricReport, dict[str, np.ndarray]]:
    """The report of all images and every metric on each resample (see :func:`bootstrap_samples`)."""
    buffer, images, chunks = collect(score_maps, masks)
    report, resample_set = analyse(buffer, images, chunks, image_scores=image_scores,
                                   fpr_limit=fpr_limit, threshold=threshold, resample=True)
    del buffer, chunks
    multiplicities = draw_multiplicities(resample_set.n_images, n_resamples, seed)
    return report, resample_set.metrics(multiplicities, fpr_limit)
