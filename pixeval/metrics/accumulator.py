"""A streaming, mergeable accumulator of score maps and masks.

Exact mode (default) keeps a copy of every score (in its ranking precision) and the anomalous
pixels' regions; ``compute`` gives exactly :func:`~pixeval.metrics.evaluate`'s result on all
images seen, and merging accumulators (shards from other processes or machines; they pickle)
gives exactly the result of one pass. Memory: the scores, plus one more copy during ``compute``.

Binned mode (``bins=B, score_range=(low, high)``) keeps constant memory: per score bin, the
count of all pixels, of anomalous pixels and their summed PRO weights (``1 / region size``;
regions are labelled per image as usual). Bin ``b`` holds scores in
``[low + b w, low + (b + 1) w)`` with ``w = (high - low) / B``; scores outside the range fall in
the end bins. The binned metrics are *exactly* the metrics of the scores replaced by their bin
index, i.e. thresholds are restricted to the bin edges; the error against the exact values
shrinks with B and is measured in ``benchmarks/bench_metrics.py`` (benchmarks/README.md).
Reported thresholds are bin lower edges; a given threshold is binned like the scores (its bin
and those above count as anomalous). Bootstrap intervals need the exact mode.
"""

from __future__ import annotations

import numpy as np

from ._inputs import check_fpr_limit, check_optional_threshold, ranking_dtype
from .bootstrap import check_bootstrap_args
from .pooled import ImagePixels, build_report, extract, image_level, pooled_report
from .ranking import Ranking
from .report import MetricReport


class PixelAccumulator:
    """Accumulate ``(score map, mask)`` pairs one at a time; ``compute`` the :class:`MetricReport`.

    Args:
        fpr_limit: the FPR integration limit of AUPRO, in (0, 1].
        bins: None for exact mode, or the number of score bins of binned mode.
        score_range: ``(low, high)`` of the bins (required with ``bins``).

    Example (exactly what :func:`~pixeval.metrics.evaluate` gives on the same images):
        >>> import numpy as np
        >>> maps = [np.array([[0.1, 0.7], [0.9, 0.35]]), np.array([[0.6, 0.2], [0.4, 0.1]])]
        >>> masks = [np.array([[0, 1], [1, 1]]), np.zeros((2, 2))]  # one 3-pixel region; a normal image
        >>> from pixeval.metrics import PixelAccumulator
        >>> accumulator = PixelAccumulator()
        >>> for score_map, mask in zip(maps, masks):
        ...     accumulator.update(score_map, mask)
        >>> round(accumulator.compute().pixel_aupr, 4)
        0.8667
    """

    def __init__(self, fpr_limit: float = 0.3, *, bins: int | None = None,
                 score_range: tuple[float, float] | None = None):
        self.fpr_limit = check_fpr_limit(fpr_limit)
        self.bins = bins
        self._images: list[ImagePixels] = []
        self._image_scores: list[float | None] = []
        if bins is None:
            if score_range is not None:
                raise ValueError("score_range only applies to binned mode; also pass bins=")
            self._chunks: list[np.ndarray] = []
            return
        if int(bins) != bins or bins < 1:
            raise ValueError(f"bins must be a positive integer, got {bins}")
        if score_range is None or not np.all(np.isfinite(score_range)) or score_range[1] <= score_range[0]:
            raise ValueError(f"binned mode needs score_range=(low, high) with low < high, got {score_range}")
        self.score_range = (float(score_range[0]), float(score_range[1]))
        self._all = np.zeros(bins, np.int64)
        self._pos = np.zeros(bins, np.int64)
        self._weight = np.zeros(bins, np.float64)
        self._n_regions = 0

    def __len__(self) -> int:
        return len(self._images)

    def update(self, score_map, mask, image_score: float | None = None) -> None:
        """Add one image: its 2-D score map, binary mask and optionally its image score."""
        score_map = np.asarray(score_map)
        index = len(self._images)
        if score_map.ndim != 2:
            raise ValueError(f"image {index}: expected a 2-D score map, got shape {score_map.shape}")
        flat = np.empty(score_map.size, dtype=ranking_dtype([score_map.dtype]))
        image = extract(index, score_map, np.asarray(mask), flat)
        if self.bins is None:
            self._chunks.append(flat)
        else:
            self._add_to_bins(flat, image)
        self._images.append(image)
        self._image_scores.append(None if image_score is None else float(image_score))

    def _bin(self, scores: np.ndarray) -> np.ndarray:
        low, high = self.score_range
        scaled = (scores.astype(np.float64) - low) * (self.bins / (high - low))
        return np.clip(np.floor(scaled), 0, self.bins - 1).astype(np.int64)

    def _add_to_bins(self, flat: np.ndarray, image: ImagePixels) -> None:
        positives = image.anomalous
        self._all += np.bincount(self._bin(flat), minlength=self.bins)
        pos_bins = self._bin(positives.scores)
        self._pos += np.bincount(pos_bins, minlength=self.bins)
        self._weight += np.bincount(pos_bins, weights=1.0 / positives.sizes[positives.regions],
                                    minlength=self.bins)
        self._n_regions += positives.n_regions

    def merge(self, other: PixelAccumulator) -> PixelAccumulator:
        """Add everything ``other`` has seen (after this one's images); returns self."""
        if (other.bins, other.fpr_limit) != (self.bins, self.fpr_limit) or (
                self.bins is not None and other.score_range != self.score_range):
            raise ValueError("cannot merge accumulators with different fpr_limit, bins or score_range")
        self._images.extend(other._images)
        self._image_scores.extend(other._image_scores)
        if self.bins is None:
            self._chunks.extend(other._chunks)
        else:
            self._all += other._all
            self._pos += other._pos
            self._weight += other._weight
            self._n_regions += other._n_regions
        return self

    def _given_image_scores(self):
        given = [s is not None for s in self._image_scores]
        if any(given) and not all(given):
            raise ValueError("image scores were given for some images but not all; give all or none")
        return np.array(self._image_scores, dtype=np.float64) if all(given) else None

    def compute(self, threshold: float | None = None, bootstrap: int = 0,
                confidence: float = 0.95, seed: int = 0) -> MetricReport:
        """The :class:`MetricReport` of all images so far (see :func:`pixeval.metrics.evaluate`)."""
        check_optional_threshold(threshold)
        check_bootstrap_args(bootstrap, confidence)
        if not self._images:
            raise ValueError("PixelAccumulator.compute: no images were added")
        image_scores = self._given_image_scores()
        if self.bins is not None:
            if bootstrap:
                raise ValueError("bootstrap intervals need the exact mode (bins=None)")
            return self._compute_binned(threshold, image_scores)
        dtype = ranking_dtype([chunk.dtype for chunk in self._chunks])
        buffer = np.concatenate(self._chunks, dtype=dtype)
        chunks = [chunk.astype(dtype, copy=False) for chunk in self._chunks]
        return pooled_report(buffer, self._images, chunks, image_scores=image_scores,
                             fpr_limit=self.fpr_limit, threshold=threshold,
                             bootstrap=bootstrap, confidence=confidence, seed=seed)

    def _compute_binned(self, threshold, image_scores) -> MetricReport:
        """Exact metrics of the bin indices (thresholds at bin lower edges)."""
        low, high = self.score_range
        edges = low + np.arange(self.bins + 1) * ((high - low) / self.bins)
        occupied = np.flatnonzero(self._pos)
        cumulative = np.concatenate([[0], np.cumsum(self._all)])
        ranking = Ranking(edges[occupied], self._pos[occupied], self._weight[occupied],
                          cumulative[occupied], cumulative[occupied + 1], int(cumulative[-1]),
                          self._n_regions)
        counts = None
        if threshold is not None:
            first = int(self._bin(np.array([threshold]))[0])
            counts = (int(self._pos[first:].sum()), int(self._all[first:].sum()))
        values, labels = image_level(self._images, image_scores)
        return build_report(ranking, self.fpr_limit, values, labels, threshold, counts,
                            binned=True)
