"""ROC, precision-recall and PRO curves for plotting, optionally thinned to a bounded size;
:func:`pixel_curves` gives all three of a set of maps from one sort of their pixels.

Each curve is exact: its vertices are the points where it changes direction (two per distinct
anomalous score at most: just above the tie group and at it), so linear interpolation between
them reproduces the full curve over every threshold. Thinning (``max_points``) keeps evenly
spaced vertices including both ends; it is for plotting only, so compute areas with the metric
functions, never from a thinned curve. On a degenerate input (one class only) the curves are
empty, with a :class:`~pixeval.metrics.DegenerateInputWarning`.
"""

from __future__ import annotations

import numpy as np

from ._inputs import check_fpr_limit, warn_degenerate
from .pooled import pixel_ranking
from .ranking import Ranking


def thin(max_points: int | None, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """At most ``max_points`` evenly spaced entries of the parallel ``arrays``, ends kept."""
    size = arrays[0].size
    if max_points is None or size <= max_points:
        return arrays
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    keep = np.unique(np.round(np.linspace(0, size - 1, max_points)).astype(np.int64))
    return tuple(a[keep] for a in arrays)


def _vertices(ranking: Ranking, y_at: np.ndarray, x_total: float, y_end: float):
    """Vertices (x, y, threshold) of a curve with x = normal pixels >= t and y = ``y_at``.

    Starts at (0, 0) (threshold inf), ends at (x_total, y_end) (threshold -inf: everything);
    repeated consecutive points are dropped.
    """
    k = ranking.values.size
    x = np.empty(2 * k + 2)
    y = np.empty(2 * k + 2)
    thresholds = np.empty(2 * k + 2)
    x[0], y[0], thresholds[0] = 0.0, 0.0, np.inf
    x[1:-1:2] = ranking.fp_above
    y[1:-1:2] = np.r_[0.0, y_at[:-1]]
    thresholds[1:-1:2] = ranking.next_above[::-1]
    x[2:-1:2] = ranking.fp
    y[2:-1:2] = y_at
    thresholds[2:-1:2] = ranking.values[::-1]
    x[-1], y[-1], thresholds[-1] = x_total, y_end, -np.inf
    repeated = np.r_[False, (x[1:] == x[:-1]) & (y[1:] == y[:-1])]
    return x[~repeated], y[~repeated], thresholds[~repeated]


def _checked(ranking: Ranking) -> bool:
    reason = ranking.degenerate_reason()
    if reason is not None:
        warn_degenerate("curves (empty)", reason)
        return False
    return True


def _empty():
    return np.zeros(0), np.zeros(0), np.zeros(0)


def roc_curve(scores, labels, max_points: int | None = None):
    """``(fpr, tpr, thresholds)``: the exact ROC curve's vertices, thresholds descending.

    A point at threshold t has pixels ``score >= t`` predicted anomalous; the first point is
    (0, 0) at ``inf``, the last (1, 1) at ``-inf``. Its trapezoid area is :func:`auroc`.

    Example:
        >>> from pixeval.metrics import roc_curve
        >>> fpr, tpr, thresholds = roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        >>> fpr.tolist(), tpr.tolist(), thresholds.tolist()
        ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0], [inf, 0.8, 0.4, 0.35, -inf])
    """
    return _roc(Ranking.from_flat(scores, labels, keep_next_above=True), max_points)


def _roc(ranking: Ranking, max_points: int | None):
    """:func:`roc_curve` of a ranking kept with ``next_above``."""
    if not _checked(ranking):
        return _empty()
    x, y, thresholds = _vertices(ranking, ranking.tp.astype(np.float64), ranking.n_neg,
                                 ranking.n_pos)
    return thin(max_points, x / ranking.n_neg, y / ranking.n_pos, thresholds)


def precision_recall_curve(scores, labels, max_points: int | None = None):
    """``(precision, recall, thresholds)`` at each distinct anomalous score, descending.

    These are the points where recall changes; :func:`average_precision` is
    ``sum (R_n - R_{n-1}) P_n`` over them (starting from recall 0).

    Example:
        >>> import numpy as np
        >>> from pixeval.metrics import precision_recall_curve
        >>> precision, recall, thresholds = precision_recall_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        >>> np.round(precision, 4).tolist(), recall.tolist(), thresholds.tolist()
        ([1.0, 0.6667], [0.5, 1.0], [0.8, 0.35])
    """
    return _precision_recall(Ranking.from_flat(scores, labels), max_points)


def _precision_recall(ranking: Ranking, max_points: int | None):
    """:func:`precision_recall_curve` of a ranking."""
    if not _checked(ranking):
        return _empty()
    tp = ranking.tp
    precision = tp / (tp + ranking.fp)
    return thin(max_points, precision, tp / ranking.n_pos, ranking.values[::-1].astype(np.float64))


def pro_curve(score_maps, masks, max_points: int | None = None, fpr_limit: float | None = None):
    """``(fpr, pro, thresholds)``: the exact MVTec AD PRO curve's vertices, thresholds descending.

    FPR is over all normal pixels of all images; PRO is the mean over all regions (8-connected
    components of each mask) of the fraction of the region with ``score >= t``. Starts at
    (0, 0) (``inf``) and ends at FPR 1 (``-inf``); with ``fpr_limit``, ends at FPR = limit
    instead, PRO linearly interpolated there (threshold NaN when interpolated), the part of
    the curve AUPRO integrates. AUPRO itself is :func:`~pixeval.metrics.aupro`.

    Example (the region is a third, two thirds, then all detected; the second normal pixel at
    0.4 puts the FPR past the limit):
        >>> import numpy as np
        >>> maps = [np.array([[0.1, 0.7], [0.9, 0.35]]), np.array([[0.6, 0.2], [0.4, 0.1]])]
        >>> masks = [np.array([[0, 1], [1, 1]]), np.zeros((2, 2))]  # one 3-pixel region; a normal image
        >>> from pixeval.metrics import pro_curve
        >>> fpr, pro, thresholds = pro_curve(maps, masks, fpr_limit=0.3)
        >>> fpr.tolist(), np.round(pro, 4).tolist(), thresholds.tolist()
        ([0.0, 0.0, 0.0, 0.3], [0.0, 0.3333, 0.6667, 0.6667], [inf, 0.9, 0.7, nan])
    """
    return _pro(pixel_ranking(score_maps, masks, keep_next_above=True), max_points, fpr_limit)


def _pro(ranking: Ranking, max_points: int | None, fpr_limit: float | None):
    """:func:`pro_curve` of a ranking kept with regions and ``next_above``."""
    if not _checked(ranking):
        return _empty()
    pro = ranking.pro
    x, y, thresholds = _vertices(ranking, pro, ranking.n_neg, pro[-1])
    x = x / ranking.n_neg
    if fpr_limit is not None:
        x, y, thresholds = _cut(x, y, thresholds, check_fpr_limit(fpr_limit))
    return thin(max_points, x, y, thresholds)


def pixel_curves(score_maps, masks, max_points: int | None = None) -> dict[str, tuple[np.ndarray, ...]]:
    """The three curves of score maps against masks from one ranking of their pixels (one sort):
    ``{"roc": roc_curve(...), "pr": precision_recall_curve(...), "pro": pro_curve(...)}``, each
    equal to that function on the maps' pixels (pooled over the images) and masks.

    Example:
        >>> import numpy as np
        >>> maps = [np.array([[0.1, 0.7], [0.9, 0.35]]), np.array([[0.6, 0.2], [0.4, 0.1]])]
        >>> masks = [np.array([[0, 1], [1, 1]]), np.zeros((2, 2))]
        >>> from pixeval.metrics import pixel_curves
        >>> precision, recall, thresholds = pixel_curves(maps, masks)["pr"]
        >>> np.round(precision, 4).tolist(), np.round(recall, 4).tolist(), thresholds.tolist()
        ([1.0, 1.0, 0.6], [0.3333, 0.6667, 1.0], [0.9, 0.7, 0.35])
    """
    ranking = pixel_ranking(score_maps, masks, keep_next_above=True)
    if not _checked(ranking):
        return {"roc": _empty(), "pr": _empty(), "pro": _empty()}
    return {"roc": _roc(ranking, max_points), "pr": _precision_recall(ranking, max_points),
            "pro": _pro(ranking, max_points, None)}


def _cut(x, y, thresholds, limit):
    """The curve up to ``x = limit``, with y linearly interpolated at the limit if needed."""
    inside = int(np.searchsorted(x, limit, side="right"))
    if x[inside - 1] == limit:
        return x[:inside], y[:inside], thresholds[:inside]
    share = (limit - x[inside - 1]) / (x[inside] - x[inside - 1])
    y_limit = y[inside - 1] + share * (y[inside] - y[inside - 1])
    return (np.r_[x[:inside], limit], np.r_[y[:inside], y_limit],
            np.r_[thresholds[:inside], np.nan])
