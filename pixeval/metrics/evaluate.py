"""``evaluate``: every metric of a set of score maps against their masks, in one call;
``aupro`` alone; and ``paired_bootstrap``: whether two detectors really differ on the same
images."""

from __future__ import annotations

from ._inputs import as_image_list, check_fpr_limit, warn_degenerate
from .bootstrap import PairedComparison, check_bootstrap_args, compare, draw_multiplicities
from .pooled import analyse, collect, pixel_ranking, pooled_report
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

    Memory: one copy of the scores (sorted in place; float32 adds 32 MiB of radix-sort
    scratch), plus the anomalous pixels' data (and, with ``bootstrap``, each image's counts per
    score cell; see :mod:`.bootstrap`).
    """
    fpr_limit = check_fpr_limit(fpr_limit)
    buffer, images, chunks = collect(score_maps, masks)
    return pooled_report(buffer, images, chunks, image_scores=image_scores, fpr_limit=fpr_limit,
                         threshold=threshold, bootstrap=bootstrap, confidence=confidence,
                         seed=seed)


def aupro(score_maps, masks, fpr_limit: float = 0.3) -> float:
    """AUPRO up to ``fpr_limit``, normalised by the limit: the MVTec AD algorithm.

    Regions are the 8-connected components of each mask; a pixel of a region carries weight
    ``1 / (region size * number of regions in the set)``; PRO(t) sums the weights of pixels with
    ``score >= t`` and FPR(t) is over all normal pixels of all images (defect-free images only
    add normal pixels). The curve starts at (0, 0), ties move together, PRO is linearly
    interpolated at FPR = ``fpr_limit``; the trapezoid area is divided by the limit.
    NaN (with a warning) without anomalous or without normal pixels.
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
    """
    fpr_limit = check_fpr_limit(fpr_limit)
    check_bootstrap_args(n_resamples, confidence)
    if n_resamples < 1:
        raise ValueError("paired_bootstrap needs n_resamples >= 1")
    mask_list = as_image_list(masks, "masks")
    results = []
    for maps, image_scores in ((score_maps_a, image_scores_a), (score_maps_b, image_scores_b)):
        buffer, images, chunks = collect(maps, mask_list)
        report, resample_set = analyse(buffer, images, chunks, image_scores=image_scores,
                                       fpr_limit=fpr_limit, threshold=threshold, resample=True)
        del buffer, chunks
        results.append((report, resample_set))
    (report_a, set_a), (report_b, set_b) = results
    multiplicities = draw_multiplicities(set_a.n_images, n_resamples, seed)
    samples_a = set_a.metrics(multiplicities, fpr_limit)
    samples_b = set_b.metrics(multiplicities, fpr_limit)
    names = list(samples_a) if metrics is None else list(metrics)
    unknown = [name for name in names if name not in samples_a]
    if unknown:
        raise ValueError(f"metrics: unknown or unavailable {unknown}; choose from {list(samples_a)}")
    return {name: compare(name, getattr(report_a, name), getattr(report_b, name),
                          samples_a[name], samples_b[name], confidence) for name in names}
