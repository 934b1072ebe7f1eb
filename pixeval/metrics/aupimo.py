"""AUPIMO: the area under each anomalous image's Per-IMage Overlap curve.

Bertoldo, Ameln, Vaidya and Akçay, "AUPIMO: Redefining Visual Anomaly Detection Benchmarks with
High Speed and Low Tolerance" (BMVC 2024, arXiv 2401.01984); reference code jpcbertoldo/aupimo
(``pimo_numpy.py``, ``binclf_curve_numpy.py``) and anomalib ``metrics/pimo/functional.py``.

Definition. A pixel is predicted anomalous when ``score >= t``. With the N0 *normal* images
(masks without an anomalous pixel) of P_j pixels each,

* shared FPR: ``F(t) = (1 / N0) sum_j #{pixels of normal image j with score >= t} / P_j``, the
  mean of the per-image FPRs over the normal images only (the reference's only option,
  ``mean-per-image-fpr``; for normal images of one size it equals the pooled FPR);
* per-image TPR (overlap) of anomalous image i: ``T_i(t) = #{anomalous pixels of i with score
  >= t} / #{anomalous pixels of i}``;
* the PIMO curve of image i is ``(log F(t), T_i(t))`` over the thresholds, a polyline through
  its points (the reference integrates it with the trapezoid rule in ``log F``);
* ``AUPIMO_i = (1 / log(U / L)) * integral from log L to log U of T_i``, with
  ``(L, U) = fpr_bounds`` (default 1e-5, 1e-4); the log base cancels out. Normal images have
  no AUPIMO (NaN); the mean and spread are over the anomalous images.

Exact thresholds. Here the thresholds are every distinct score (ties move together), so the
curve is exact: ``F`` changes only at scores of normal images, and the polyline's vertices are,
for each distinct normal score v in descending order, ``(F just above v, T_i(> v))`` and
``(F(v), T_i(>= v))``. The integral is taken over exactly ``[log L, log U]``, with ``T_i``
linearly interpolated (in ``log F``) at both bounds, as AUPRO is at its FPR limit; so a
perfect image scores exactly 1.

The reference (and anomalib) instead uses K = 300,000 thresholds ``linspace(min, max)`` of the
normal images' scores, takes as integration bounds the thresholds whose shared FPR is *nearest*
to L and U (``argmin |F - bound|``, the lowest such threshold; no interpolation), drops points
with ``F = 0``, integrates by the trapezoid and clips the result to [0, 1]. Pass those
thresholds and ``bound_rule="nearest"`` to reproduce its numbers; with every distinct score as
thresholds, ``"nearest"`` is the limit of the reference as K grows. The two bound rules agree
when F takes the values L and U exactly, and otherwise differ by at most the share of
``[log L, log U]`` between each bound and the nearest F that the data can take.

The range must be reachable: the smallest positive shared FPR must be <= L (at least 1 / L
normal pixels, and no large tie at the top of the normal scores). The reference raises
``RuntimeError`` when it is not (or when its grid leaves 30 points or fewer in the range); here
the AUPIMO of every image is NaN with a :class:`~pixeval.metrics.DegenerateInputWarning`
naming the smallest shared FPR, and ``n_fpr_levels`` reports how many distinct shared FPR values
lie in the range.

Cost (exact): per normal image one ``np.partition`` keeping only the scores whose shared FPR can
be <= U (about ``U * N0 * P_j`` of them), one sort of each image's anomalous pixels, and a
vectorised integral: linear in the pixels, no full sort. Given thresholds need a sort of each
normal image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._inputs import check_fpr_bounds, warn_degenerate
from .pooled import ImagePixels, collect, smallest_at_least

BOUND_RULES = ("interpolate", "nearest")
#: The reference's FPR range ``(L, U)``.
DEFAULT_FPR_BOUNDS = (1e-5, 1e-4)


@dataclass(frozen=True)
class AupimoReport:
    """AUPIMO of each image and its distribution over the anomalous images.

    Attributes:
        per_image: AUPIMO of each image in input order (``float64``); NaN for normal images
            (and for all images when the set is degenerate).
        mean, std, median, q1, q3, minimum, maximum: over the anomalous images; ``std`` with
            ``ddof=1`` (NaN for fewer than two images), quartiles by linear interpolation.
        fpr_bounds: ``(L, U)``.
        bound_rule: ``"interpolate"`` (exact bounds) or ``"nearest"`` (the reference's rule).
        smallest_fpr: the smallest positive shared FPR the thresholds reach (the resolution at L).
        n_fpr_levels: distinct shared FPR values within the integrated range.
        n_anomalous_images, n_normal_images: the images of each kind.
    """

    per_image: np.ndarray
    mean: float
    std: float
    median: float
    q1: float
    q3: float
    minimum: float
    maximum: float
    fpr_bounds: tuple[float, float]
    bound_rule: str
    smallest_fpr: float
    n_fpr_levels: int
    n_anomalous_images: int
    n_normal_images: int

    def to_dict(self) -> dict[str, float | int | str]:
        """The summary numbers, flat, named ``pixel_aupimo*`` (per-image values left out)."""
        return {
            "pixel_aupimo": self.mean, "pixel_aupimo_std": self.std,
            "pixel_aupimo_median": self.median, "pixel_aupimo_q1": self.q1,
            "pixel_aupimo_q3": self.q3, "pixel_aupimo_min": self.minimum,
            "pixel_aupimo_max": self.maximum, "aupimo_fpr_lower": self.fpr_bounds[0],
            "aupimo_fpr_upper": self.fpr_bounds[1], "aupimo_bound_rule": self.bound_rule,
            "aupimo_smallest_fpr": self.smallest_fpr, "aupimo_fpr_levels": self.n_fpr_levels,
            "aupimo_anomalous_images": self.n_anomalous_images,
            "aupimo_normal_images": self.n_normal_images,
        }


def aupimo(score_maps, masks, *, fpr_bounds: tuple[float, float] = DEFAULT_FPR_BOUNDS,
           thresholds=None, bound_rule: str = "interpolate") -> AupimoReport:
    """AUPIMO of each anomalous image: its overlap integrated over a log shared-FPR range.

    ``AUPIMO_i = (1 / log(U / L)) * integral_{log L}^{log U} T_i d(log F)`` where ``F(t)`` is
    the mean per-image FPR over the *normal* images and ``T_i(t)`` the fraction of image i's
    anomalous pixels with ``score >= t`` (the full definition, the reference's conventions and
    where they differ are in the module docstring).

    Args:
        score_maps: 2-D maps (a sequence, or a stacked ``N×H×W`` array); higher = more anomalous.
        masks: binary masks of the same shapes; a mask without an anomalous pixel marks a normal
            image, whose pixels alone define the shared FPR.
        fpr_bounds: ``(L, U)``, ``0 < L < U <= 1``.
        thresholds: None for every distinct score (exact), or an ascending array of thresholds
            (e.g. the reference's ``np.linspace(normal.min(), normal.max(), 300_000,
            dtype=np.float32)`` over the normal images' scores) to evaluate the curve at those
            only. Each is applied exactly (``score >= t``).
        bound_rule: ``"interpolate"``: integrate over exactly ``[log L, log U]``, the curve
            interpolated at the bounds; ``"nearest"``: between the reached shared FPRs nearest
            to L and U (the reference's rule; ties to the larger FPR), result clipped to [0, 1].

    Returns:
        An :class:`AupimoReport`. NaN with a :class:`~pixeval.metrics.DegenerateInputWarning`
        without a normal or an anomalous image, or when the shared FPR cannot reach the range.

    Example:
        One normal image of 10 pixels (scores 0..9) and one anomalous image whose two anomalous
        pixels score 9 and 8. F(9) = 0.1 and F(8) = 0.2, so between FPR 0.1 and 0.2 the overlap
        goes from 1/2 to 1 linearly in log F: AUPIMO = 3/4.

        >>> import numpy as np
        >>> normal = np.arange(10.0).reshape(2, 5)
        >>> anomalous = np.array([[9.0, 8.0, 0.0, 0.0, 0.0], [0.0] * 5])
        >>> mask = anomalous > 0
        >>> report = aupimo([normal, anomalous], [np.zeros((2, 5)), mask], fpr_bounds=(0.1, 0.2))
        >>> np.round(report.per_image, 12).tolist()
        [nan, 0.75]
    """
    lower, upper = check_fpr_bounds(fpr_bounds)
    if bound_rule not in BOUND_RULES:
        raise ValueError(f"bound_rule: expected one of {BOUND_RULES}, got {bound_rule!r}")
    given = None if thresholds is None else _check_thresholds(thresholds)
    _, images, chunks = collect(score_maps, masks)
    return aupimo_report(images, chunks, (lower, upper), given, bound_rule)


def aupimo_report(images: list[ImagePixels], chunks: list[np.ndarray],
                  fpr_bounds: tuple[float, float], thresholds: np.ndarray | None = None,
                  bound_rule: str = "interpolate") -> AupimoReport:
    """:func:`aupimo` of validated images (:func:`~pixeval.metrics.pooled.collect`'s output:
    ``chunks`` are each image's scores, read before the buffer holding them is sorted)."""
    lower, upper = fpr_bounds
    anomalous = [i for i, image in enumerate(images) if image.anomalous.scores.size]
    normal = [chunks[i] for i, image in enumerate(images) if not image.anomalous.scores.size]
    per_image = np.full(len(images), np.nan)

    def report(n_levels=0, smallest=np.nan) -> AupimoReport:
        return _summarise(per_image, anomalous, fpr_bounds, bound_rule, smallest, n_levels,
                          len(normal))

    if not normal or not anomalous:
        warn_degenerate("AUPIMO", "no normal image (the shared FPR is measured on normal images "
                                  "only)" if not normal else "no anomalous image")
        return report()
    positives = [np.sort(images[i].anomalous.scores) for i in anomalous]
    if thresholds is None:
        fpr, tpr, threshold_fpr = _exact_points(normal, positives, upper)
    else:
        fpr, tpr = _points_at(thresholds, normal, positives)
        threshold_fpr = fpr
    with np.errstate(divide="ignore"):
        log_fpr = np.log(fpr)
    reached = fpr[fpr > 0]
    smallest = float(reached[0]) if reached.size else np.nan
    span = _integration_span(threshold_fpr, lower, upper, bound_rule)
    if span is None:
        warn_degenerate("AUPIMO", f"the shared FPR cannot reach the range {lower:g} to {upper:g}: "
                                  f"its smallest positive value is {smallest:.3g} (the normal "
                                  "images need more pixels, or fewer ties at their highest score)")
        return report(smallest=smallest)
    low, high = span
    weights = _polyline_weights(log_fpr, math.log(low), math.log(high))
    values = tpr @ weights / math.log(upper / lower)
    per_image[anomalous] = np.clip(values, 0.0, 1.0)
    return report(int(np.unique(fpr[(fpr >= low) & (fpr <= high)]).size), smallest)


def _check_thresholds(thresholds) -> np.ndarray:
    given = np.asarray(thresholds, dtype=np.float64)
    if given.ndim != 1 or given.size < 2:
        raise ValueError(f"thresholds: expected a 1-D array of at least 2 values, got shape {given.shape}")
    if not np.all(np.isfinite(given)):
        raise ValueError("thresholds: must be finite")
    if not np.all(np.diff(given) > 0):
        raise ValueError("thresholds: must be strictly increasing")
    return given


def _exact_points(normal: list[np.ndarray], positives: list[np.ndarray], upper: float):
    """Vertices of the exact PIMO curves up to the first shared FPR above ``upper``.

    Returns the points' ``fpr`` (nondecreasing, starting at 0) and ``tpr`` (anomalous images ×
    points), in descending order of the threshold: two points per distinct normal score v, just
    above v and at v; and the shared FPR at each v.

    Only the top of each normal image matters: at a threshold with ``F <= U``, normal image j
    has at most ``U * N0 * P_j`` pixels at or above it. Keeping ``floor(U N0 P_j) + 2`` of its
    highest scores (one spare against rounding) gives exact counts for every value above the
    smallest kept one; any value at or below it has ``F > U`` from image j alone. So the
    distinct kept values whose partial ``F`` is <= U are exactly the curve's thresholds with
    ``F <= U``, and the next kept value is the next distinct normal score, whose ``F`` is
    recounted over all pixels when a partial count may be short.
    """
    n_normal = len(normal)
    tails = []
    for scores in normal:
        keep = min(scores.size, math.floor(upper * n_normal * scores.size) + 2)
        tail = np.partition(scores, scores.size - keep)[scores.size - keep:]
        tail.sort()
        tails.append(tail)
    values = np.unique(np.concatenate(tails))[::-1]
    fpr = np.zeros(values.size)
    for scores, tail in zip(normal, tails):
        fpr += (tail.size - np.searchsorted(tail, values, side="left")) / scores.size
    fpr /= n_normal
    inside = int(np.count_nonzero(fpr <= upper))
    if inside < values.size:
        beyond = values[inside]
        if any(tail.size < scores.size and beyond <= tail[0] for scores, tail in zip(normal, tails)):
            fpr[inside] = sum(np.count_nonzero(scores >= beyond) / scores.size
                              for scores in normal) / n_normal
        values, fpr = values[:inside + 1], fpr[:inside + 1]
    at = np.stack([_share_at_least(p, values, "left") for p in positives])
    above = np.stack([_share_at_least(p, values, "right") for p in positives])
    points_fpr = np.empty(2 * values.size)
    points_fpr[0::2] = np.r_[0.0, fpr[:-1]]
    points_fpr[1::2] = fpr
    points_tpr = np.empty((len(positives), 2 * values.size))
    points_tpr[:, 0::2] = above
    points_tpr[:, 1::2] = at
    return points_fpr, points_tpr, fpr


def _points_at(thresholds: np.ndarray, normal: list[np.ndarray], positives: list[np.ndarray]):
    """Shared FPR and TPRs at the given ascending ``thresholds``, in descending threshold order."""
    dtype = normal[0].dtype
    cuts = np.array([smallest_at_least(t, dtype) for t in thresholds[::-1]], dtype=dtype)
    fpr = np.zeros(cuts.size)
    for scores in normal:
        fpr += (scores.size - np.searchsorted(np.sort(scores), cuts, side="left")) / scores.size
    fpr /= len(normal)
    return fpr, np.stack([_share_at_least(p, cuts, "left") for p in positives])


def _share_at_least(sorted_scores: np.ndarray, values: np.ndarray, side: str) -> np.ndarray:
    """Fraction of ``sorted_scores`` ``>= v`` (side ``"left"``) or ``> v`` (``"right"``)."""
    return (sorted_scores.size - np.searchsorted(sorted_scores, values, side=side)) / sorted_scores.size


def _integration_span(levels: np.ndarray, lower: float, upper: float, bound_rule: str):
    """The shared-FPR range ``(low, high)`` to integrate over, or None when it is not reached.

    ``levels`` are the shared FPRs at the thresholds (ascending order of FPR). The lowest must
    be <= L and the highest >= U; with exact thresholds the lowest is the FPR at the highest
    normal score, as for the reference, whose thresholds stop there.
    """
    if levels[0] > lower or levels[-1] < upper:
        return None
    if bound_rule == "interpolate":
        return (lower, upper) if np.any((levels > 0) & (levels <= lower)) else None
    unique = np.unique(levels)
    low, high = _nearest(unique, lower), _nearest(unique, upper)
    if high <= low:
        return None
    if low == 0:
        low = float(unique[1])  # the reference drops the points with log F = -inf
    return low, high


def _nearest(levels: np.ndarray, target: float) -> float:
    """The level nearest to ``target``; of two equally near, the larger (the reference's argmin
    over ascending thresholds returns the lowest threshold, i.e. the larger FPR)."""
    distance = np.abs(levels - target)
    return float(levels[distance == distance.min()].max())


def _polyline_weights(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Weights ``w`` with ``integral_low^high y = sum_p w_p y_p`` for the polyline through
    ``(x_p, y_p)`` (``x`` nondecreasing, possibly starting at -inf, ``low`` at or after the
    first finite x): each segment's part inside ``[low, high]`` by the trapezoid, with y
    linearly interpolated where a bound cuts it. Vertical segments weigh nothing."""
    weights = np.zeros(x.size)
    start, end = x[:-1], x[1:]
    cut_low, cut_high = np.maximum(start, low), np.minimum(end, high)
    segments = np.flatnonzero(cut_high > cut_low)
    start, end = start[segments], end[segments]
    cut_low, cut_high = cut_low[segments], cut_high[segments]
    at_low = (cut_low - start) / (end - start)
    at_high = (cut_high - start) / (end - start)
    half = (cut_high - cut_low) / 2.0
    np.add.at(weights, segments, half * ((1.0 - at_low) + (1.0 - at_high)))
    np.add.at(weights, segments + 1, half * (at_low + at_high))
    return weights


def _summarise(per_image, anomalous, fpr_bounds, bound_rule, smallest, levels,
               n_normal) -> AupimoReport:
    values = per_image[anomalous]
    values = values[np.isfinite(values)]
    if values.size:
        q1, median, q3 = (float(q) for q in np.quantile(values, [0.25, 0.5, 0.75]))
        stats = (float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else np.nan,
                 median, q1, q3, float(values.min()), float(values.max()))
    else:
        stats = (np.nan,) * 7
    return AupimoReport(per_image, *stats, fpr_bounds=fpr_bounds, bound_rule=bound_rule,
                        smallest_fpr=float(smallest), n_fpr_levels=int(levels),
                        n_anomalous_images=len(anomalous), n_normal_images=n_normal)
