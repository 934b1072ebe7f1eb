"""Scoring paired files: the options, the rows and the result, one category at a time.

Memory holds two categories' maps: the one being scored and the next, which the reading threads
read meanwhile.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from pixeval.errors import InputError
from pixeval.metrics import (AupimoReport, MetricReport, SizeReport, average_precision, evaluate, f1_max,
                             metrics_by_size)
from pixeval.metrics.by_size import DEFAULT_EDGES, check_edges
from pixeval.scoring import _output
from pixeval.scoring._pairing import Matching, attach_image_scores, match
from pixeval.scoring._reading import LoadedPair, submit_reads, wait_for_reads

if TYPE_CHECKING:
    import pandas as pd

#: The values of :attr:`ScoreOptions.by`.
ROW_GROUPINGS = ("category", "defect", "size")


@dataclass(frozen=True)
class ScoreOptions:
    """What to compute and how to read the files.

    ``by``: one row per ``"category"``, or per ``"defect"`` type (each with its category's good
    images), or per category and ``"size"`` bin of the anomalous regions (bins between
    ``size_edges``, area fractions (or their comma-separated text); :func:`~pixeval.metrics.metrics_by_size`, the region
    metrics at ``threshold`` or else the category's F1-max threshold). ``extended``: also the
    extended metrics (AUPIMO, boundary F1 and IoU). ``fpr_limit``: the AUPRO integration limit.
    ``threshold``: also F1, precision and recall (and image F1) at ``score >= threshold``;
    ``threshold_source``: where it came from, for the caption (e.g. set on normal maps by
    :func:`~pixeval.scoring.threshold_from_folder`). ``bootstrap``,
    ``confidence``, ``seed``: bootstrap intervals over images (0 resamples: none). ``resize``:
    resize maps bilinearly to their mask's size instead of refusing them. ``npz_key``: the array
    to read from ``.npz`` maps. ``jobs``: reading threads. ``per_image``: also each image's own
    metrics (:attr:`ScoreResult.per_image`).

    Checked when made, before any file is read: a bad value raises
    :class:`~pixeval.errors.InputError` naming it.
    """

    by: str = "category"
    size_edges: tuple[float, ...] = DEFAULT_EDGES
    extended: bool = False
    fpr_limit: float = 0.3
    threshold: float | None = None
    threshold_source: str | None = None
    bootstrap: int = 0
    confidence: float = 0.95
    seed: int = 0
    resize: bool = False
    npz_key: str | None = None
    jobs: int = 4
    per_image: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.by in ROW_GROUPINGS, f"by={self.by!r}: expected one of {', '.join(ROW_GROUPINGS)}"),
            (0 < self.fpr_limit <= 1, f"fpr_limit={self.fpr_limit!r}: expected a number in (0, 1]"),
            (self.threshold is None or math.isfinite(self.threshold),
             f"threshold={self.threshold!r}: expected a finite number or None"),
            (int(self.bootstrap) == self.bootstrap and self.bootstrap >= 0,
             f"bootstrap={self.bootstrap!r}: expected a whole number of resamples >= 0"),
            (0 < self.confidence < 1, f"confidence={self.confidence!r}: expected a number in (0, 1)"),
            (int(self.jobs) == self.jobs and self.jobs >= 1, f"jobs={self.jobs!r}: expected a whole number >= 1"),
        ]
        try:
            object.__setattr__(self, "size_edges", check_edges(self.size_edges))
        except ValueError as exc:
            checks.append((False, f"size_edges={self.size_edges!r}: {str(exc).removeprefix('edges: ')}"))
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise InputError("; ".join(problems))


@dataclass
class ScoredRow:
    """One table row: its category, defect (``None`` when rows are categories) and report, and
    with ``by="size"`` the category's metrics per size bin."""

    category: str
    defect: str | None
    report: MetricReport
    sizes: SizeReport | None = None


@dataclass
class ScoreResult:
    """Everything a scoring run computed: rows, per-image rows, counts, notes and timings, with the
    pairing and options that made them (so the result can render itself)."""

    matching: Matching
    options: ScoreOptions
    rows: list[ScoredRow]
    #: each image's own metrics when ``options.per_image`` (see ``pixeval score --per-image``)
    per_image: list[dict]
    #: images, anomalous_images, regions, pixels, anomalous_pixels
    counts: dict[str, int]
    notes: list[str]
    #: waiting for the reading threads (reading overlaps the previous category's metrics)
    read_seconds: float
    metric_seconds: float

    def table(self) -> pd.DataFrame:
        """The results table: one row per category (or defect), then their mean when there are
        several; columns titled as in every pixeval table (:mod:`pixeval.metrics.catalogue`)."""
        return _output.results_table(self)[0]

    def render(self, fmt: str = "table") -> str:
        """The table as ``pixeval score --format FMT`` prints it (:data:`pixeval.tables.FORMATS`);
        ``json`` carries every report field at full precision."""
        return _output.render(self, fmt)

    def summary_line(self) -> str:
        """What was read and how long it took (``pixeval score`` prints it on standard error)."""
        return _output.summary_line(self)


def score_folder(preds: str | Path, masks: str | Path, *, layout: str = "auto", map_suffix: str | None = None,
                 allow_missing: bool = False, image_scores: str | Path | None = None, by: str = "category",
                 fpr_limit: float = 0.3, threshold: float | None = None, bootstrap: int = 0,
                 confidence: float = 0.95, seed: int = 0, resize: bool = False, npz_key: str | None = None,
                 jobs: int = 4, per_image: bool = False, extended: bool = False,
                 size_edges: tuple[float, ...] = DEFAULT_EDGES, progress: bool = False) -> ScoreResult:
    """Score the maps under ``preds`` against the ground truth at ``masks``: ``pixeval score`` as
    a function.

    ``preds`` is a folder of score maps (float32/float16 TIFF, ``.npy``, ``.npz``, quantised
    uint8/uint16 PNG); ``masks`` the ground truth, paired with them by ``layout`` (``"auto"``,
    ``"mvtec"``, ``"ksdd2"``, ``"folder"`` or ``"masks"``; see :func:`pixeval.scoring.match`),
    reading only maps ending in ``map_suffix`` when given and skipping unpaired files with
    ``allow_missing``. ``image_scores``: a CSV (columns ``map``, ``image_score``) of image scores
    to use instead of the maps' maxima. The other arguments are :class:`ScoreOptions`;
    ``progress`` shows a progress bar on standard error.

    Every argument is checked before any file is read. Files that do not pair or cannot be read
    raise :class:`~pixeval.errors.InputError` naming them and the fix.
    """
    options = ScoreOptions(by=by, fpr_limit=fpr_limit, threshold=threshold, bootstrap=bootstrap,
                           confidence=confidence, seed=seed, resize=resize, npz_key=npz_key, jobs=jobs,
                           per_image=per_image, extended=extended, size_edges=size_edges)
    matching = match(preds, masks, layout=layout, map_suffix=map_suffix, allow_missing=allow_missing)
    if image_scores is not None:
        matching = attach_image_scores(matching, image_scores)
    return score_matching(matching, options, progress=progress)


def score_matching(matching: Matching, options: ScoreOptions | None = None, *, progress: bool = False) -> ScoreResult:
    """Read every pair of ``matching`` (from :func:`~pixeval.scoring.match` or
    :func:`~pixeval.scoring.read_pair_list`) and compute the rows, one category at a time: the
    next category is read while the metrics of the current one run.

    Metric warnings (e.g. a category without normal pixels) become notes naming the row. Raises
    :class:`~pixeval.errors.InputError` when files cannot be read or no image has an anomalous
    pixel.
    """
    options = options or ScoreOptions()
    notes = list(matching.notes)
    rows, image_rows = [], []
    counts = dict.fromkeys(("images", "anomalous_images", "regions", "pixels", "anomalous_pixels"), 0)
    quantised, resized = set(), 0
    read_seconds = metric_seconds = 0.0
    bar = tqdm(total=len(matching.pairs), desc="reading", unit="map", file=sys.stderr,
               disable=None if progress else True)
    categories = matching.categories
    with bar, ThreadPoolExecutor(max_workers=options.jobs) as executor:
        def submit(index: int) -> list[Future]:
            pairs = [p for p in matching.pairs if p.category == categories[index]] if index < len(categories) else []
            return submit_reads(pairs, executor, resize=options.resize, npz_key=options.npz_key, on_read=bar.update)

        pending = submit(0)
        for index, category in enumerate(categories):
            start = time.perf_counter()
            loaded = wait_for_reads(pending)
            pending = submit(index + 1)  # read the next category while this one's metrics run
            middle = time.perf_counter()
            quantised |= {item.quantised for item in loaded if item.quantised}
            resized += sum(item.resized for item in loaded)
            category_rows = [ScoredRow(category, defect, evaluate_set(items, options, _where(category, defect), notes))
                             for defect, items in groups_of(loaded, options.by)]
            if options.by == "size":
                category_rows[0].sizes = sizes_of(loaded, options, category, notes)
            rows += category_rows
            counts["images"] += len(loaded)
            counts["anomalous_images"] += sum(bool(item.mask.any()) for item in loaded)
            counts["pixels"] += sum(item.mask.size for item in loaded)
            counts["anomalous_pixels"] += sum(int(np.count_nonzero(item.mask)) for item in loaded)
            counts["regions"] += sum(row.report.n_regions for row in category_rows)  # good images have none
            if options.per_image:
                whole = category_rows[0].report if options.by != "defect" else \
                    evaluate_set(loaded, options, _where(category, None), [])
                threshold = options.threshold if options.threshold is not None else whole.pixel_f1_threshold
                image_rows += per_image_rows(loaded, threshold, whole.aupimo)
            metric_seconds += time.perf_counter() - middle
            read_seconds += middle - start
    if counts["anomalous_pixels"] == 0:
        raise InputError(f"all {counts['images']} images are normal: no mask has an anomalous pixel, so no pixel "
                         f"metric is defined ({matching.description}). Fix: check that MASKS holds the ground "
                         "truth of these maps (masks with values > 0 on the defects)")
    if quantised:
        notes.append(f"score maps stored as {', '.join(sorted(quantised))} are quantised: pixels with different "
                     "scores before quantisation tie, which changes every metric; save float32 TIFF maps")
    if resized:
        notes.append(f"--resize: {resized} score map(s) resized bilinearly to their mask's (or image's) size")
    return ScoreResult(matching, options, rows, image_rows, counts, notes, read_seconds, metric_seconds)


def _where(category: str, defect: str | None) -> str:
    return category if defect is None else f"{category}/{defect}"


def groups_of(loaded: list[LoadedPair], by: str) -> list[tuple[str | None, list[LoadedPair]]]:
    """The image sets of one category's rows: the whole category (``by="category"`` or
    ``"size"``), or one set
    per defect type other than ``good``, each together with the category's good images, so every
    row has normal images for its image metrics and normal pixels from normal images."""
    if by != "defect":
        return [(None, loaded)]
    good = [item for item in loaded if item.defect == "good"]
    defects = dict.fromkeys(item.defect for item in loaded if item.defect != "good")
    return [(defect, [item for item in loaded if item.defect == defect] + good) for defect in defects]


def evaluate_set(items: list[LoadedPair], options: ScoreOptions, where: str, notes: list[str]) -> MetricReport:
    """:func:`pixeval.metrics.evaluate` on ``items``; its warnings become ``notes`` naming ``where``."""
    given = [item.pair.image_score for item in items]
    image_scores = np.array(given, dtype=np.float64) if None not in given else None
    return _noted(lambda: evaluate([item.scores for item in items], [item.mask for item in items], image_scores,
                                   fpr_limit=options.fpr_limit, threshold=options.threshold,
                                   bootstrap=options.bootstrap, confidence=options.confidence, seed=options.seed,
                                   extended=options.extended), where, notes)


def sizes_of(items: list[LoadedPair], options: ScoreOptions, where: str, notes: list[str]) -> SizeReport:
    """:func:`pixeval.metrics.metrics_by_size` on ``items``; its warnings become ``notes``."""
    return _noted(lambda: metrics_by_size([item.scores for item in items], [item.mask for item in items],
                                          edges=options.size_edges, threshold=options.threshold,
                                          fpr_limit=options.fpr_limit), where, notes)


def _noted(compute, where: str, notes: list[str]):
    """``compute()``, its warnings appended to ``notes`` (naming ``where``) and a ``ValueError``
    raised as an :class:`~pixeval.errors.InputError` naming it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = compute()
        except ValueError as exc:
            raise InputError(f"cannot score {where}: {exc}") from None
    notes += [f"{where}: {message}" for message in dict.fromkeys(str(w.message) for w in caught)]
    return result


def per_image_rows(items: list[LoadedPair], threshold: float, aupimo: AupimoReport | None = None) -> list[dict]:
    """Each image's own metrics (see ``pixeval score --help``, option ``--per-image``), with its
    AUPIMO when ``aupimo`` (the category's) is given."""
    rows = []
    for index, item in enumerate(items):
        scores, labels = item.scores.ravel(), item.mask.ravel()
        n_anomalous = int(np.count_nonzero(labels))
        n_normal = labels.size - n_anomalous
        ap = average_precision(scores, labels) if n_anomalous and n_normal else np.nan
        f1 = f1_max(scores, labels)[0] if n_anomalous and n_normal else np.nan
        false_positives = np.count_nonzero(scores[~labels] >= threshold) if n_normal else 0
        rows.append({"map": item.pair.name, "category": item.pair.category, "defect": item.defect,
                     "image_score": item.pair.image_score if item.pair.image_score is not None
                     else float(item.scores.max()),
                     "pixels": labels.size, "anomalous_pixels": n_anomalous, "pixel_ap": ap, "pixel_f1_max": f1,
                     "threshold": threshold,
                     "false_positive_fraction": false_positives / n_normal if n_normal else np.nan}
                    | ({"aupimo": aupimo.per_image[index]} if aupimo is not None else {}))
    return rows
