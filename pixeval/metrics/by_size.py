"""Results by defect size: small defects are where the pixel imbalance bites hardest.

Anomalous regions (8-connected components of each mask, as for AUPRO) fall into bins by their
area as a fraction of their image's pixels: with edges ``e_1 < ... < e_k`` the bins are
``[0, e_1), [e_1, e_2), ..., [e_k, 1]`` (a region exactly at an edge goes to the bin above);
the default edges 0.001 and 0.01 give < 0.1 %, 0.1-1 % and >= 1 % of the image.

Per bin, with the bin's anomalous pixels as the positives and *all normal pixels of all images*
as the negatives (the other bins' anomalous pixels are left out, neither positive nor
negative), every distinct score a threshold and a pixel anomalous when ``score >= t`` (ties move
together):

* ``pixel_aupr``: step-wise average precision (as P-AUPR);
* ``aupro``: AUPRO up to ``fpr_limit`` with only the bin's regions (each region's pixels weigh
  ``1 / (region size * regions in the bin)``), the MVTec AD algorithm as in
  :func:`~pixeval.metrics.aupro`;
* at a threshold t (given, or by default the pixel F1-max threshold of the whole set), a region's
  *overlap* is the fraction of its pixels with ``score >= t``: ``region_recall`` is the mean
  overlap over the bin's regions (PRO at t), ``region_detection_rate`` the share of regions with
  overlap >= ``min_overlap`` (default 0.5), ``pixel_recall`` the share of the bin's pixels
  with ``score >= t``.

All come from one sort of all the scores (the one :func:`~pixeval.metrics.evaluate` does):
counts of normal pixels below a value are the counts of all pixels minus those of the anomalous
ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ._inputs import check_fpr_limit, check_threshold, warn_degenerate
from .pooled import ImagePixels, collect, pooled_positives, smallest_at_least
from .ranking import Ranking, SortedScores, group_by_score

DEFAULT_EDGES = (0.001, 0.01)

#: :class:`SizeBin` field -> column title in every by-size table (``pixeval score --by size``,
#: ``pixeval report``); ``{fpr_limit}`` is AUPRO's limit.
BIN_TITLES = {"n_regions": "regions", "pixel_aupr": "P-AUPR", "aupro": "P-AUPRO@{fpr_limit}",
              "region_recall": "region overlap@t", "region_detection_rate": "detected@t"}


@dataclass(frozen=True)
class SizeBin:
    """The metrics of the anomalous regions whose area fraction lies in ``[low, high)``
    (the last bin includes 1). NaN where the bin has no region."""

    label: str
    low: float
    high: float
    n_regions: int
    n_pixels: int
    n_images: int
    pixel_aupr: float
    aupro: float
    region_recall: float
    region_detection_rate: float
    pixel_recall: float

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


@dataclass(frozen=True)
class SizeReport:
    """Per-bin metrics (:class:`SizeBin`) and the settings they used.

    ``threshold_from`` is ``"given"`` or ``"pixel_f1_max"`` (the F1-max threshold of the whole
    set, chosen on it).
    """

    bins: tuple[SizeBin, ...]
    edges: tuple[float, ...]
    threshold: float
    threshold_from: str
    fpr_limit: float
    min_overlap: float

    def to_records(self) -> list[dict[str, float | int | str]]:
        """One flat dict per bin (tidy rows), with the settings repeated in each."""
        settings = dict(threshold=self.threshold, threshold_from=self.threshold_from,
                        fpr_limit=self.fpr_limit, min_overlap=self.min_overlap)
        return [{**size_bin.to_dict(), **settings} for size_bin in self.bins]


def metrics_by_size(score_maps, masks, *, edges=DEFAULT_EDGES, threshold: float | None = None,
                    fpr_limit: float = 0.3, min_overlap: float = 0.5) -> SizeReport:
    """P-AUPR, AUPRO and per-region recall for each bin of defect size.

    Args:
        score_maps: 2-D maps (a sequence, or a stacked ``N×H×W`` array).
        masks: binary masks of the same shapes.
        edges: increasing area fractions in (0, 1) between the bins.
        threshold: for the per-region recall; default the pixel F1-max threshold of the set.
        fpr_limit: the FPR limit of the per-bin AUPRO, in (0, 1].
        min_overlap: the overlap at which a region counts as detected, in (0, 1].

    Returns:
        A :class:`SizeReport`; definitions in the module docstring. A bin without a region is
        NaN with a :class:`~pixeval.metrics.DegenerateInputWarning`.

    Example:
        One 100-pixel image with a 1-pixel defect (1 %) found at the top score and a 5-pixel one
        (5 %) of which two pixels score high. With one edge at 2 %: the small bin's AP is 1; the
        large bin's is 0.4 (recall 0.4 at precision 1) + 0.6 * 5 / 99 (all pixels flagged).

        >>> import numpy as np
        >>> scores = np.zeros((10, 10)); mask = np.zeros((10, 10), bool)
        >>> mask[0, 0] = True; scores[0, 0] = 1.0
        >>> mask[5, 2:7] = True; scores[5, 2:7] = [0.9, 0.9, 0.0, 0.0, 0.0]
        >>> report = metrics_by_size([scores], [mask], edges=[0.02], threshold=0.5)
        >>> [(b.label, b.n_regions, round(b.pixel_aupr, 4), b.region_recall) for b in report.bins]
        [('< 2%', 1, 1.0, 1.0), ('>= 2%', 1, 0.4303, 0.4)]
    """
    edges = check_edges(edges)
    fpr_limit = check_fpr_limit(fpr_limit)
    min_overlap = float(min_overlap)
    if not 0.0 < min_overlap <= 1.0:
        raise ValueError(f"min_overlap: expected a number in (0, 1], got {min_overlap}")
    if threshold is not None:
        threshold = check_threshold(threshold)
    buffer, images, _ = collect(score_maps, masks)
    return size_report(SortedScores(buffer), images, edges, threshold, fpr_limit, min_overlap)


def check_edges(edges) -> tuple[float, ...]:
    """``edges`` (numbers, or text of comma-separated numbers such as ``"0.001,0.01"``) as an
    increasing tuple of floats in (0, 1), or raise ``ValueError`` saying what was expected."""
    try:
        parts = [part for part in edges.split(",") if part.strip()] if isinstance(edges, str) else edges
        values = np.asarray(parts, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"edges: expected comma-separated numbers such as 0.001,0.01, got {edges!r}") from None
    if not np.all((values > 0) & (values < 1)) or not np.all(np.diff(values) > 0):
        raise ValueError(f"edges: expected increasing area fractions in (0, 1), got {values.tolist()}")
    return tuple(float(v) for v in values)


def size_report(scores: SortedScores, images: list[ImagePixels], edges: tuple[float, ...],
                threshold: float | None, fpr_limit: float, min_overlap: float) -> SizeReport:
    """The :class:`SizeReport` of the images whose scores are all in ``scores`` (sorted)."""
    pos_scores, pos_regions, region_sizes = pooled_positives(images)
    n_regions = region_sizes.size
    region_image = np.repeat(np.arange(len(images)), [i.anomalous.n_regions for i in images])
    region_area = region_sizes / np.array([i.n_pixels for i in images])[region_image]
    region_bin = np.searchsorted(np.asarray(edges), region_area, side="right")
    sorted_positives = np.sort(pos_scores)
    threshold_from = "given"
    if threshold is None:
        groups = group_by_score(pos_scores, pos_regions, region_sizes)
        ranking = Ranking.from_groups(scores, *groups, n_regions)
        threshold = float(ranking.summary().f1_threshold)
        threshold_from = "pixel_f1_max"
    if np.isnan(threshold):
        overlap, detected = np.full(n_regions, np.nan), np.full(pos_scores.size, np.nan)
    else:
        detected = pos_scores >= smallest_at_least(threshold, pos_scores.dtype)
        overlap = np.bincount(pos_regions, weights=detected, minlength=n_regions) / region_sizes
    bins = []
    for index, label in enumerate(_labels(edges)):
        low = 0.0 if index == 0 else edges[index - 1]
        high = 1.0 if index == len(edges) else edges[index]
        chosen = np.flatnonzero(region_bin == index)
        if chosen.size == 0:
            warn_degenerate(f"size bin {label}", "no anomalous region of this size")
            bins.append(SizeBin(label, low, high, 0, 0, 0, *(np.nan,) * 5))
            continue
        renumber = np.full(n_regions, -1, dtype=np.int32)
        renumber[chosen] = np.arange(chosen.size, dtype=np.int32)
        in_bin = renumber[pos_regions] >= 0
        ranking = _bin_ranking(scores, sorted_positives, pos_scores[in_bin],
                               renumber[pos_regions[in_bin]], region_sizes[chosen])
        reason = ranking.degenerate_reason()
        if reason is not None:
            warn_degenerate(f"size bin {label}", reason)
        summary = ranking.summary(fpr_limit)
        bins.append(SizeBin(
            label, low, high, int(chosen.size), int(np.count_nonzero(in_bin)),
            int(np.unique(region_image[chosen]).size), float(summary.average_precision),
            float(summary.aupro), float(overlap[chosen].mean()),
            float(np.mean(overlap[chosen] >= min_overlap)) if not np.isnan(threshold) else np.nan,
            float(np.mean(detected[in_bin]))))
    return SizeReport(tuple(bins), edges, float(threshold), threshold_from, fpr_limit, min_overlap)


def _bin_ranking(scores: SortedScores, sorted_positives: np.ndarray, bin_scores: np.ndarray,
                 bin_regions: np.ndarray, bin_sizes: np.ndarray) -> Ranking:
    """The :class:`Ranking` of one bin's anomalous pixels against all normal pixels.

    Normal pixels below a value are all pixels below it minus all anomalous ones
    (``sorted_positives``); the bin's own anomalous pixels are then added back.
    """
    values, per_value, weight_per_value = group_by_score(bin_scores, bin_regions, bin_sizes)
    below, at_or_below = scores.counts_below(values)
    below -= np.searchsorted(sorted_positives, values, side="left")
    at_or_below -= np.searchsorted(sorted_positives, values, side="right")
    cumulative = np.cumsum(per_value)
    n_normal = scores.size - sorted_positives.size
    return Ranking(values, per_value, weight_per_value, below + cumulative - per_value,
                   at_or_below + cumulative, int(n_normal + bin_scores.size), int(bin_sizes.size))


def _labels(edges: tuple[float, ...]) -> list[str]:
    """``< 0.1%``, ``0.1-1%``, ``>= 1%`` for edges 0.001 and 0.01; ``all`` without edges."""
    if not edges:
        return ["all"]
    percent = [f"{100 * edge:g}" for edge in edges]
    return ([f"< {percent[0]}%"] + [f"{a}-{b}%" for a, b in zip(percent, percent[1:])]
            + [f">= {percent[-1]}%"])
