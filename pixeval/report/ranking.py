"""Ranked comparison tables made from a tidy results table (:mod:`pixeval.bench.store`).

Definitions, for a chosen list of metrics and a primary metric:

* A **cell** is one (dataset, category, seed). Only cells that every detector in the table has a
  result for are used, so all detectors are averaged over the same work; the caption says how
  many cells that is.
* A detector's **score** on a metric: per seed, the mean over its (dataset, category) cells; then
  the mean over seeds, with the sample standard deviation over seeds beside it (``sd`` columns,
  only when there are several seeds).
* **Average rank**: per (dataset, category) and metric, the detectors are ranked on their mean
  over seeds (1 = best, ties share the average rank; NaN values take no rank); a detector's
  average rank is the mean of its ranks over all those (category, metric) pairs.
* Rows are sorted by the primary metric, best first (NaN last).
* **p vs next**: the p-value of a paired test of the primary metric's difference between a row
  and the next (:mod:`pixeval.report.significance`): the paired bootstrap over test images when
  every cell of both rows has bootstrap samples (resamples in the store), else the exact paired
  sign-flip test over cells. The caption says which test the rows use, and a note names any
  pair that had to fall back.

Every metric here is "higher is better" (a threshold, which is not, is never highlighted). Column
titles and definitions come from the metric catalogue (:mod:`pixeval.metrics.catalogue`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pixeval.errors import ReportError
from pixeval.metrics.catalogue import METRICS, metric_definition, metric_title
from pixeval.report.significance import (BOOTSTRAP, PairedTest, bootstrap_test, sign_flip_test,
                                         smallest_bootstrap_p_value, smallest_p_value)

#: Metrics a table shows unless told otherwise, in this order.
DEFAULT_METRICS = ("pixel_aupr", "pixel_f1_max", "pixel_auroc", "pixel_aupro", "image_auroc")
#: The second table's metrics, where the results hold them: at each detector's deployment
#: threshold (set on held-out normal images by the bench), AUPIMO, and boundary accuracy.
DEPLOYMENT_METRICS = ("pixel_f1_at_threshold", "pixel_precision_at_threshold", "pixel_recall_at_threshold",
                      "image_f1_at_threshold", "pixel_aupimo", "boundary_f1", "boundary_iou")
PRIMARY = "pixel_aupr"
#: Significance level for the ``*`` in captions.
ALPHA = 0.05
CELL = ["dataset", "category", "seed"]
#: Bootstrap samples of one metric by (detector, dataset, category, seed), as
#: :func:`pixeval.bench.store.read_resamples` reads them.
Resamples = Mapping[tuple, np.ndarray]


@dataclass
class RankedTable:
    """A table ready for :func:`pixeval.tables.format_table`: the frame, which columns to
    highlight (best bold, second underlined) and a caption stating the definitions used."""

    frame: pd.DataFrame
    highlight: dict[str, str]
    caption: str
    notes: list[str] = field(default_factory=list)


def cell_values(results: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per (detector, dataset, category, seed), one column per metric, restricted to the
    cells every detector has."""
    missing = sorted(set(metrics) - set(results["metric"]))
    if missing:
        raise ReportError(f"the results hold no metric {', '.join(missing)}; they hold "
                          f"{', '.join(sorted(set(results['metric'])))}")
    picked = results[results["metric"].isin(metrics)]
    wide = picked.set_index(["detector", *CELL, "metric"])["value"].unstack("metric")
    wide = wide.reindex(columns=list(metrics)).reset_index()
    detectors = wide["detector"].unique()
    counts = wide.groupby(CELL)["detector"].nunique()
    common = counts[counts == len(detectors)].index
    if len(common) == 0:
        raise ReportError("no (dataset, category, seed) has results from every detector, so they cannot "
                          "be compared; report runs that share their datasets, categories and seeds")
    return wide.set_index(CELL).loc[common].reset_index()


def ranked_table(results: pd.DataFrame, metrics: list[str] | tuple[str, ...] = DEFAULT_METRICS,
                 primary: str = PRIMARY, resamples: Resamples | None = None) -> RankedTable:
    """The ranked comparison table (see the module docstring); ``resamples``: the primary
    metric's bootstrap samples of the jobs (without them, every p vs next is a sign-flip test)."""
    metrics = list(dict.fromkeys([primary, *metrics]))
    cells = cell_values(results, metrics)
    n_cells = len(cells[CELL].drop_duplicates())
    n_all = len(results[CELL].drop_duplicates())
    seeds = sorted(cells["seed"].unique())

    per_seed = cells.groupby(["detector", "seed"])[metrics].mean()
    mean = per_seed.groupby("detector").mean()
    frame = pd.DataFrame(index=mean.index)
    for metric in metrics:
        frame[metric_title(metric)] = mean[metric]
        if len(seeds) > 1:
            frame[f"{metric_title(metric)} sd"] = per_seed[metric].groupby("detector").std(ddof=1)
    frame["avg rank"] = average_ranks(cells, metrics)
    frame = frame.sort_values(metric_title(primary), ascending=False, na_position="last")

    order = list(frame.index)
    paired = cells.set_index(["detector", *CELL])[primary]
    tests = [neighbour_test(paired, upper, lower, resamples or {}) for upper, lower in zip(order, order[1:])]
    frame["p vs next"] = [test.p_value for test in tests] + [np.nan]
    frame.index.name = "detector"

    highlight = {metric_title(m): "max" for m in metrics if not _is_threshold(m)}
    highlight["avg rank"] = "min"
    spread = f"mean ± sd (the sd columns) over {len(seeds)} seeds" if len(seeds) > 1 else "one seed"
    test_text, notes = significance_text(tests, order, metric_title(primary), n_cells, bool(resamples))
    caption = (f"Detectors ranked by {metric_title(primary)}; each metric is the mean over "
               f"{cells[['dataset', 'category']].drop_duplicates().shape[0]} categories, {spread}. "
               f"{_definitions(metrics)}"
               f"avg rank: mean rank over categories × metrics (1 = best). {test_text}")
    if n_cells < n_all:
        notes.append(f"{n_all - n_cells} of {n_all} cells lack results from some detector and are left out.")
    return RankedTable(frame.reset_index(), highlight, caption, notes)


def deployment_table(results: pd.DataFrame, primary: str = PRIMARY,
                     resamples: Resamples | None = None) -> RankedTable | None:
    """:func:`ranked_table` of :data:`DEPLOYMENT_METRICS` (those the results hold), its caption
    saying how each detector's threshold t was set; None when the results hold none of them."""
    held = set(results["metric"])
    metrics = [m for m in DEPLOYMENT_METRICS if m in held]
    if not metrics:
        return None
    table = ranked_table(results, metrics, primary, resamples)
    if "normal_threshold" in held:
        normal = results[results["metric"].isin(["normal_images", "normal_target_fpr"])]
        settings = normal.groupby("metric")["value"].agg(["min", "max"])
        images, fpr = settings.loc["normal_images"], settings.loc["normal_target_fpr"]
        count = f"{images['min']:g}" if images["min"] == images["max"] else f"{images['min']:g}-{images['max']:g}"
        table.caption += (f" @t: at each detector's own deployment threshold t, set on its maps of the {count} "
                          f"training images of the category held out of its fit: the lowest t whose pixel FPR "
                          f"there is <= {fpr['max']:g} (test data never sets it).")
    return table


def neighbour_test(paired: pd.Series, upper: str, lower: str, resamples: Resamples) -> PairedTest:
    """``upper`` against ``lower`` on the primary metric (``paired``: values by detector and
    cell): the bootstrap test when every cell of both has samples of one length, else the
    sign-flip test."""
    a = paired.loc[upper]
    b = paired.loc[lower].reindex(a.index)
    samples = [[resamples.get((detector, *cell)) for cell in a.index] for detector in (upper, lower)]
    lengths = {s.shape for side in samples for s in side if s is not None}
    if all(s is not None for side in samples for s in side) and len(lengths) == 1:
        return bootstrap_test(a.to_numpy(), b.to_numpy(), np.stack(samples[0]), np.stack(samples[1]),
                              a.index.get_level_values("seed").to_numpy())
    return sign_flip_test(a.to_numpy(), b.to_numpy())


def significance_text(tests: list[PairedTest], order: list[str], title: str, n_cells: int,
                      any_samples: bool) -> tuple[str, list[str]]:
    """The caption's sentence on the p vs next column, and notes naming the pairs that used the
    sign-flip fallback while others used the bootstrap (``any_samples``: whether the results had
    bootstrap samples at all)."""
    sign_flip = (f"exact paired sign-flip test of the {title} difference with the next row over {n_cells} "
                 f"dataset × category × seed cells (smallest possible p = {smallest_p_value(n_cells):.2g})")
    booted = [test.method == BOOTSTRAP for test in tests]
    if not tests:
        return "p vs next: none, for a single detector.", []
    if not any(booted):
        reason = "some cells lack paired bootstrap samples" if any_samples else \
            "these results have no bootstrap samples (pixeval bench --bootstrap 0, or an older run)"
        return f"p vs next: two-sided {sign_flip}, since {reason}; p < {ALPHA} is significant.", []
    n_resamples = max(test.n_resamples for test in tests)
    text = (f"p vs next: two-sided paired bootstrap test of the {title} difference with the next row: "
            f"{n_resamples} resamples of each category's test images, the same for every detector and "
            f"seed, drawn independently per category; the difference averaged as the table averages "
            f"(smallest possible p = {smallest_bootstrap_p_value(n_resamples):.2g}; p < {ALPHA} is "
            f"significant).")
    notes = [f"p vs next of {upper} (vs {lower}): {sign_flip}, since some of their cells lack paired "
             f"bootstrap samples." for upper, lower, test in zip(order, order[1:], tests) if test.method != BOOTSTRAP]
    return text, notes


def average_ranks(cells: pd.DataFrame, metrics: list[str]) -> pd.Series:
    """Each detector's mean rank over (dataset, category) × metric (see the module docstring)."""
    per_category = cells.groupby(["detector", "dataset", "category"])[metrics].mean()
    ranks = per_category.groupby(["dataset", "category"]).rank(ascending=False, method="average")
    return ranks.stack().groupby("detector").mean()


def category_tables(results: pd.DataFrame, metrics: list[str] | tuple[str, ...] = DEFAULT_METRICS,
                    primary: str = PRIMARY) -> list[tuple[str, RankedTable]]:
    """One table per (dataset, category): detectors × metrics, mean over seeds, sorted by the
    primary metric."""
    metrics = list(dict.fromkeys([primary, *metrics]))
    cells = cell_values(results, metrics)
    tables = []
    for (dataset, category), group in cells.groupby(["dataset", "category"], sort=True):
        frame = group.groupby("detector")[metrics].mean()
        frame.columns = [metric_title(m) for m in metrics]
        frame = frame.sort_values(metric_title(primary), ascending=False, na_position="last")
        n_seeds = group["seed"].nunique()
        caption = (f"{dataset}/{category}: mean over {n_seeds} seed{'s' * (n_seeds > 1)}, "
                   f"ranked by {metric_title(primary)}.")
        highlight = {metric_title(m): "max" for m in metrics if not _is_threshold(m)}
        tables.append((f"{dataset}/{category}", RankedTable(frame.reset_index(), highlight, caption)))
    return tables


def _is_threshold(metric: str) -> bool:
    return metric in METRICS and METRICS[metric].is_threshold


def _definitions(metrics: list[str]) -> str:
    """The caption's reminder of what the optimistic metrics shown mean, one sentence each."""
    return "".join(f"{metric_title(m)}: {metric_definition(m)}. " for m in metrics
                   if m in METRICS and METRICS[m].optimistic)


def cost_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per detector: mean fit and predict seconds per job and the largest peak memory (MiB)."""
    jobs = results.drop_duplicates(["run", "job"])
    frame = jobs.groupby("detector").agg(jobs=("job", "size"), fit_s=("fit_seconds", "mean"),
                                         predict_s=("predict_seconds", "mean"),
                                         peak_mib=("peak_memory_mb", "max"))
    return frame.rename(columns={"fit_s": "fit s/job", "predict_s": "predict s/job",
                                 "peak_mib": "peak MiB"}).reset_index()
