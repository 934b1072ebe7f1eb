"""Exact threshold counts from one sort, and the metrics on flat score arrays.

Conventions (pinned in docs/design.md): a pixel is predicted anomalous when ``score >= t``; the
thresholds are all distinct score values and tied scores move together, exactly as
scikit-learn.

How: every curve (ROC, PR, PRO) changes direction only at the scores of anomalous pixels, so
all metrics follow from the counts at the *K distinct anomalous scores*. All scores are sorted
once as plain numbers, without ``argsort`` (float32 as radix-sorted integer keys, see
:class:`SortedScores`); only the anomalous pixels carry weights. The counts at the K values come
from a galloping sweep over the sorted scores, so after the sort the work is proportional to
the number of anomalous pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _kernels
from ._inputs import finite_range, check_labels, ranking_dtype, warn_degenerate


class SortedScores:
    """All scores, sorted so that counts below any value come from a galloping search.

    ``float32`` scores are turned, in place, into order-preserving ``uint32`` keys
    (:func:`~pixeval.metrics._kernels.encode_in_place`) and radix-sorted in chunks of at most
    :attr:`CHUNK` keys and at most an eighth of the keys (but at least 2**16), with one chunk of
    scratch space; counts are summed over the chunks.
    ``float64`` scores are sorted in place with ``np.sort``, as one chunk. Either way the buffer
    given is consumed (its content is no longer the scores).
    """

    CHUNK = 1 << 23

    def __init__(self, buffer: np.ndarray):
        self.size = buffer.size
        self.keyed = buffer.dtype == np.float32
        if not self.keyed:
            buffer.sort()
            self.chunks = [buffer]
            return
        keys = _kernels.encode_in_place(buffer)
        size = min(self.CHUNK, max(keys.size // 8, 1 << 16))
        self.chunks = [keys[start:start + size] for start in range(0, keys.size, size)]
        scratch = np.empty(min(size, keys.size), np.uint32)
        for chunk in self.chunks:
            _kernels.radix_sort(chunk, scratch)

    def _keys(self, values: np.ndarray) -> np.ndarray:
        return _kernels.encode(values.astype(np.float32)) if self.keyed else values

    def counts_below(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For ascending ``values`` (of the scores' dtype): counts of scores ``< v`` and ``<= v``."""
        keys = self._keys(values)
        below = np.zeros(values.size, np.int64)
        at_or_below = np.zeros(values.size, np.int64)
        for chunk in self.chunks:
            _kernels.add_counts_below(chunk, keys, below, at_or_below)
        return below, at_or_below

    def next_above(self, values: np.ndarray) -> np.ndarray:
        """For ascending ``values``: the smallest score > each (``inf`` if none), as float64."""
        keys = self._keys(values)
        nearest = np.full(values.size, np.inf)
        for chunk in self.chunks:
            at_or_below = np.zeros(values.size, np.int64)
            _kernels.add_counts_below(chunk, keys, np.zeros(values.size, np.int64), at_or_below)
            inside = at_or_below < chunk.size
            found = chunk[at_or_below[inside]]
            found = _kernels.decode(found) if self.keyed else found
            nearest[inside] = np.minimum(nearest[inside], found)
        return nearest

    def count_at_least(self, cut) -> int:
        """Scores ``>= cut`` (``cut`` of the scores' dtype)."""
        key = self._keys(np.array([cut]))
        return int(sum(chunk.size - np.searchsorted(chunk, key[0], side="left")
                       for chunk in self.chunks))


@dataclass(frozen=True)
class Ranking:
    """Counts at every distinct anomalous score, in ascending order of the score.

    Attributes:
        values: the distinct scores of anomalous pixels, ascending (length K).
        per_value: anomalous pixels at each value (``int64``).
        weight_per_value: their summed PRO weights ``1 / region size`` (``float64``; empty when
            regions do not apply, i.e. ``n_regions == 0``).
        below, at_or_below: all pixels with score ``< v`` and ``<= v`` (``int64``).
        n, n_regions: total pixels and regions.
        next_above: the smallest score > each value (``inf`` if none), the threshold of the curve
            vertex just before the tie group at the value; only kept for curves, else None.

    The descending-order views used by the curves (``tp``, ``fp``, ``fp_above``, ``pro``)
    are derived properties; the metrics are computed without materialising them.
    """

    values: np.ndarray
    per_value: np.ndarray
    weight_per_value: np.ndarray
    below: np.ndarray
    at_or_below: np.ndarray
    n: int
    n_regions: int
    next_above: np.ndarray | None = None

    @property
    def n_pos(self) -> int:
        return int(self.per_value.sum())

    @property
    def n_neg(self) -> int:
        return self.n - self.n_pos

    @property
    def tp(self) -> np.ndarray:
        """Descending: anomalous pixels with score >= values[::-1][k]."""
        return np.cumsum(self.per_value[::-1])

    @property
    def fp(self) -> np.ndarray:
        """Descending: normal pixels with score >= values[::-1][k]."""
        return (self.n - self.below[::-1]) - self.tp

    @property
    def fp_above(self) -> np.ndarray:
        """Descending: normal pixels with score > values[::-1][k]."""
        return (self.n - self.at_or_below[::-1]) - (self.tp - self.per_value[::-1])

    @property
    def pro(self) -> np.ndarray:
        """Descending: PRO at values[::-1][k] (summed weights / n_regions, clipped to 1)."""
        if not self.n_regions:
            return np.zeros(self.values.size)
        return np.minimum(np.cumsum(self.weight_per_value[::-1]) / self.n_regions, 1.0)

    @classmethod
    def from_sorted(cls, scores: SortedScores, pos_scores, pos_regions=None, region_sizes=None,
                    *, keep_next_above: bool = False) -> Ranking:
        """Build from all scores and the anomalous pixels' scores (any order).

        ``pos_scores`` must have the dtype the scores had. ``pos_regions`` (each anomalous
        pixel's region index) and ``region_sizes`` give the PRO weights; None when regions do
        not apply.
        """
        groups = group_by_score(pos_scores, pos_regions, region_sizes)
        n_regions = 0 if region_sizes is None else int(region_sizes.size)
        return cls.from_groups(scores, *groups, n_regions, keep_next_above=keep_next_above)

    @classmethod
    def from_groups(cls, scores: SortedScores, values, per_value, weight_per_value, n_regions,
                    *, keep_next_above: bool = False) -> Ranking:
        """Build from all scores and :func:`group_by_score`'s output."""
        below, at_or_below = scores.counts_below(values)
        n = scores.size
        next_above = scores.next_above(values) if keep_next_above else None
        if weight_per_value is None:
            weight_per_value = np.zeros(0)
        return cls(values, per_value, weight_per_value, below, at_or_below, int(n),
                   int(n_regions), next_above)

    @classmethod
    def from_flat(cls, scores, labels, *, keep_next_above: bool = False) -> Ranking:
        """Build from flat ``scores`` and binary ``labels`` (validated)."""
        scores = np.asarray(scores)
        if scores.ndim != 1:
            raise ValueError(f"scores: expected a 1-D array, got shape {scores.shape}")
        labels = check_labels(labels, scores.size)
        dtype = ranking_dtype([scores.dtype])
        finite_range(scores, "scores")
        buffer = scores.astype(dtype, copy=True)
        pos_scores = buffer[labels]
        return cls.from_sorted(SortedScores(buffer), pos_scores, keep_next_above=keep_next_above)

    def degenerate_reason(self) -> str | None:
        """Why the ranking metrics are undefined here, or None."""
        if self.n_pos == 0:
            return "no anomalous pixel"
        if self.n_neg == 0:
            return "no normal pixel"
        return None

    def summary(self, fpr_limit: float = 0.3) -> RankingSummary:
        """AUROC, AP, F1-max with its threshold and AUPRO@fpr_limit (NaN when degenerate)."""
        if self.degenerate_reason() is not None:
            return RankingSummary(np.nan, np.nan, np.nan, np.nan, np.nan)
        auroc, ap, f1, best, aupro = _kernels.summarise(
            self.per_value, self.weight_per_value, self.below, self.at_or_below, self.n,
            self.n_regions, fpr_limit
        )
        if self.n_regions == 0:
            aupro = np.nan
        return RankingSummary(auroc, ap, f1, float(self.values[best]), aupro)


def group_by_score(scores, regions=None, region_sizes=None):
    """Distinct ``scores`` ascending, the count at each, and the summed ``1 / region size`` at each.

    The weights need the scores sorted together with the regions. For ``float32`` scores both
    travel in one ``uint64`` key (score bits above, region index below; see
    :func:`~pixeval.metrics._kernels.pack_keys`) sorted with ``np.sort``, several times faster
    than an ``argsort`` plus gathers and without their temporaries; ``float64`` scores take the
    ``argsort``. The weight sums are None when ``regions`` is None.
    """
    weights = None
    if regions is None:
        ordered = np.sort(scores)
    elif scores.dtype == np.float32:
        keys = _kernels.pack_keys(scores, regions)
        keys.sort()
        return _kernels.group_keys(keys, region_sizes)
    else:
        order = np.argsort(scores, kind="stable")
        ordered = scores[order]
        weights = 1.0 / region_sizes[regions[order]]
    if ordered.size == 0:
        empty = np.zeros(0, np.int64)
        return ordered, empty, None if weights is None else np.zeros(0)
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    counts = np.diff(np.r_[starts, ordered.size]).astype(np.int64)
    weight_sums = None if weights is None else np.add.reduceat(weights, starts)
    return ordered[starts], counts, weight_sums


@dataclass(frozen=True)
class RankingSummary:
    """The threshold-free metrics of one :class:`Ranking`."""

    auroc: float
    average_precision: float
    f1_max: float
    f1_threshold: float
    aupro: float


def _summary_of_flat(scores, labels) -> RankingSummary:
    ranking = Ranking.from_flat(scores, labels)
    reason = ranking.degenerate_reason()
    if reason is not None:
        warn_degenerate("ranking metrics", reason)
    return ranking.summary()


def auroc(scores, labels) -> float:
    """Area under the ROC curve, trapezoid over the exact curve (ties count one half).

    Equals ``sklearn.metrics.roc_auc_score(labels, scores)``. NaN with a
    :class:`~pixeval.metrics.DegenerateInputWarning` when only one class is present.

    Example:
        >>> from pixeval.metrics import auroc
        >>> auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.75
    """
    return float(_summary_of_flat(scores, labels).auroc)


def average_precision(scores, labels) -> float:
    """Step-wise average precision ``AP = sum_n (R_n - R_{n-1}) P_n`` over all thresholds.

    Equals ``sklearn.metrics.average_precision_score(labels, scores)`` (no interpolation; the
    trapezoid AUPR is optimistic and is not what this computes). NaN when only one class is
    present.

    Example (recall 0.5 at precision 1 from score 0.8, then recall 1 at precision 2/3 from 0.35):
        >>> from pixeval.metrics import average_precision
        >>> round(average_precision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 4)
        0.8333
    """
    return float(_summary_of_flat(scores, labels).average_precision)


def f1_max(scores, labels) -> tuple[float, float]:
    """The best F1 over all thresholds and the threshold reaching it: ``(f1, threshold)``.

    F1 at threshold t is ``2 TP / (2 TP + FP + FN)`` with pixels ``score >= t`` predicted
    anomalous. Among thresholds with the same best F1, the highest is returned. This threshold is
    chosen on the evaluated data itself; see :func:`f1_at_threshold` for a given one.

    Example (at 0.35: TP 2, FP 1, FN 0, so F1 = 4 / 5):
        >>> from pixeval.metrics import f1_max
        >>> f1_max([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        (0.8, 0.35)
    """
    summary = _summary_of_flat(scores, labels)
    return float(summary.f1_max), float(summary.f1_threshold)


def threshold_scores(tp: int, predicted: int, n_pos: int, n_neg: int,
                     unit: str = "pixel") -> tuple[float, float, float]:
    """F1, precision and recall from counts at one threshold (NaN where undefined, with a warning).

    ``tp``: anomalous units (pixels, or images with ``unit="image"``) predicted anomalous;
    ``predicted``: all units predicted anomalous.
    """
    if n_pos == 0 or n_neg == 0:
        warn_degenerate("metrics at the threshold",
                        f"no anomalous {unit}" if n_pos == 0 else f"no normal {unit}")
        return np.nan, np.nan, np.nan
    recall = tp / n_pos
    f1 = 2.0 * tp / (predicted + n_pos)
    if predicted == 0:
        warn_degenerate("precision at the threshold", f"no {unit} scores >= the threshold")
        return f1, np.nan, recall
    return f1, tp / predicted, recall


def f1_at_threshold(scores, labels, threshold: float) -> tuple[float, float, float]:
    """F1, precision and recall with pixels ``score >= threshold`` predicted anomalous.

    Returns ``(f1, precision, recall)``. Precision is NaN (with a warning) when no score reaches
    the threshold; all three are NaN when only one class is present.

    Example:
        >>> from pixeval.metrics import f1_at_threshold
        >>> f1, precision, recall = f1_at_threshold([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.5)
        >>> round(f1, 4), precision, recall
        (0.6667, 1.0, 0.5)
    """
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise ValueError(f"scores: expected a 1-D array, got shape {scores.shape}")
    labels = check_labels(labels, scores.size)
    finite_range(scores, "scores")
    predicted = scores >= threshold
    n_pos = int(np.count_nonzero(labels))
    return threshold_scores(int(np.count_nonzero(predicted & labels)),
                            int(np.count_nonzero(predicted)), n_pos, scores.size - n_pos)
