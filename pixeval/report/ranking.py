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
* **p vs next**: the p-value of the paired sign-flip test (:mod:`pixeval.report.significance`) of
  the primary metric's difference between a row and the next, paired over cells.

Every metric here is "higher is better".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pixeval.report.significance import sign_flip_test, smallest_p_value

#: Metric name in the results store -> column title.
METRIC_TITLES = {
    "pixel_aupr": "P-AUPR",
    "pixel_f1_max": "P-F1max",
    "pixel_auroc": "P-AUROC",
    "pixel_aupro": "P-AUPRO",
    "image_auroc": "I-AUROC",
    "image_aupr": "I-AUPR",
    "image_f1_max": "I-F1max",
}
#: Metrics a table shows unless told otherwise, in this order.
DEFAULT_METRICS = ("pixel_aupr", "pixel_f1_max", "pixel_auroc", "pixel_aupro", "image_auroc")
PRIMARY = "pixel_aupr"
#: Significance level for the ``*`` in captions.
ALPHA = 0.05
CELL = ["dataset", "category", "seed"]


class ReportError(ValueError):
    """Results that cannot make the table asked for; the message says why."""


@dataclass
class RankedTable:
    """A table ready for :func:`pixeval.tables.format_table`: the frame, which columns to
    highlight (best bold, second underlined) and a caption stating the definitions used."""

    frame: pd.DataFrame
    highlight: dict[str, str]
    caption: str
    notes: list[str] = field(default_factory=list)


def metric_title(metric: str) -> str:
    return METRIC_TITLES.get(metric, metric)


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
                 primary: str = PRIMARY) -> RankedTable:
    """The ranked comparison table (see the module docstring)."""
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
    p_next = []
    for upper, lower in zip(order, order[1:]):
        a, b = paired.loc[upper], paired.loc[lower]
        p_next.append(sign_flip_test(a.to_numpy(), b.reindex(a.index).to_numpy()).p_value)
    frame["p vs next"] = p_next + [np.nan]
    frame.index.name = "detector"

    highlight = {metric_title(m): "max" for m in metrics}
    highlight["avg rank"] = "min"
    spread = f"mean ± sd (the sd columns) over {len(seeds)} seeds" if len(seeds) > 1 else "one seed"
    caption = (f"Detectors ranked by {metric_title(primary)}; each metric is the mean over "
               f"{cells[['dataset', 'category']].drop_duplicates().shape[0]} categories, {spread}. "
               f"P-F1max is the F1 at the best threshold chosen on the test set (optimistic). "
               f"avg rank: mean rank over categories × metrics (1 = best). p vs next: two-sided exact "
               f"paired sign-flip test of the {metric_title(primary)} difference with the next row over "
               f"{n_cells} dataset × category × seed cells (smallest possible p = "
               f"{smallest_p_value(n_cells):.2g}; p < {ALPHA} is significant).")
    notes = []
    if n_cells < n_all:
        notes.append(f"{n_all - n_cells} of {n_all} cells lack results from some detector and are left out.")
    return RankedTable(frame.reset_index(), highlight, caption, notes)


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
        tables.append((f"{dataset}/{category}",
                       RankedTable(frame.reset_index(), {c: "max" for c in frame.columns}, caption)))
    return tables


def cost_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per detector: mean fit and predict seconds per job and the largest peak memory (MiB)."""
    jobs = results.drop_duplicates(["run", "job"])
    frame = jobs.groupby("detector").agg(jobs=("job", "size"), fit_s=("fit_seconds", "mean"),
                                         predict_s=("predict_seconds", "mean"),
                                         peak_mib=("peak_memory_mb", "max"))
    return frame.rename(columns={"fit_s": "fit s/job", "predict_s": "predict s/job",
                                 "peak_mib": "peak MiB"}).reset_index()
