"""The by-defect-size table of bench results: how each detector does on small, medium and large
defects (:mod:`pixeval.metrics.by_size` defines the per-bin metrics; the bench stores them under
:func:`~pixeval.bench.runner.size_metric_name`)."""

from __future__ import annotations

import pandas as pd

from pixeval.bench.runner import parse_size_metric_name, size_metric_name
from pixeval.metrics.by_size import BIN_TITLES
from pixeval.metrics.catalogue import DEFAULT_FPR_LIMIT
from pixeval.report.ranking import CELL, RankedTable, cell_values

#: Per-bin metrics the table shows (fields of :class:`~pixeval.metrics.SizeBin`).
SIZE_METRICS = ("pixel_aupr", "aupro", "region_recall")


def size_table(results: pd.DataFrame) -> RankedTable | None:
    """Detectors × (bin, metric): the mean over the (dataset, category, seed) cells every
    detector has, sorted by the first column; None when the results hold no by-size metric (runs
    made before the bench kept them)."""
    parsed = {name: parse_size_metric_name(name) for name in results["metric"].unique()}
    parsed = {name: found for name, found in parsed.items() if found and found[0] in SIZE_METRICS}
    if not parsed:
        return None
    labels = list(dict.fromkeys(label for _, label in parsed.values()))
    ordered = [size_metric_name(field, label) for label in labels for field in SIZE_METRICS
               if size_metric_name(field, label) in parsed]
    cells = cell_values(results, ordered)
    titles = {name: f"{parsed[name][1]} " + BIN_TITLES[parsed[name][0]].format(fpr_limit=f"{DEFAULT_FPR_LIMIT:g}")
              for name in ordered}
    frame = (cells.groupby("detector")[ordered].mean().rename(columns=titles)
             .sort_values(titles[ordered[0]], ascending=False, na_position="last"))
    caption = ("By defect size: anomalous regions (8-connected) binned by their share of the image's pixels "
               f"({_regions_per_bin(results, labels)}); per bin, P-AUPR and P-AUPRO rank the bin's anomalous "
               "pixels against all normal pixels, and region overlap@t is the mean share of a region's pixels "
               "scoring >= t, t being each detector's deployment threshold (its P-F1max threshold when the run "
               f"held no training images out). Mean over {len(cells[CELL].drop_duplicates())} (dataset, "
               "category, seed) cells; n/a: a bin without regions.")
    return RankedTable(frame.reset_index(), {title: "max" for title in titles.values()}, caption)


def _regions_per_bin(results: pd.DataFrame, labels: list[str]) -> str:
    """``"< 0.1%: 12 regions, ..."``: each bin's regions over the categories, counted once (every
    detector and seed sees the same test images)."""
    one = results[(results["detector"] == results["detector"].iloc[0]) & (results["seed"] == results["seed"].min())]
    counts = one.groupby("metric")["value"].sum()
    return ", ".join(f"{label}: {int(counts.get(size_metric_name('n_regions', label), 0))} regions"
                     for label in labels)
