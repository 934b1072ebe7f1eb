"""A scoring result as a table, a caption, a document in one of the table formats, and a summary."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pixeval.metrics.by_size import BIN_TITLES
from pixeval.metrics.catalogue import CATALOGUE, METRICS, metric_definition, metric_title
from pixeval.tables import format_table, table_records

if TYPE_CHECKING:
    from pixeval.scoring._compute import ScoreOptions, ScoreResult


def metric_columns(options: ScoreOptions) -> dict[str, str]:
    """Report field -> column title of every metric the table shows, in catalogue order (those
    needing a threshold only when ``options.threshold`` is given, the extended ones only when
    ``options.extended``)."""
    return {info.name: metric_title(info.name, fpr_limit=options.fpr_limit, threshold=options.threshold)
            for info in CATALOGUE if (options.threshold is not None or not info.needs_threshold)
            and (options.extended or not info.extended)}


def size_columns(options: ScoreOptions) -> dict[str, str]:
    """:class:`~pixeval.metrics.SizeBin` field -> column title of the by-size table."""
    return {name: title.format(fpr_limit=f"{options.fpr_limit:g}") for name, title in BIN_TITLES.items()}


def results_table(result: ScoreResult) -> tuple[pd.DataFrame, dict[str, tuple[str, str]]]:
    """The results table (rows, then their mean when there are several; thresholds are not
    averaged) and its interval columns; with ``by="size"``, :func:`size_table`."""
    options = result.options
    if options.by == "size":
        return size_table(result), {}
    titles = metric_columns(options)
    records, intervals = [], {}
    for row in result.rows:
        record = {"category": row.category} | ({"defect": row.defect} if options.by == "defect" else {})
        record["images"] = row.report.n_images
        for field, title in titles.items():
            record[title] = getattr(row.report, field)
        for field, (low, high) in row.report.intervals.items():
            if field in titles:
                title = titles[field]
                record[f"{title} low"], record[f"{title} high"] = low, high
                intervals[title] = (f"{title} low", f"{title} high")
        records.append(record)
    df = pd.DataFrame(records).astype({"images": "Int64"})
    if len(df) > 1:
        mean = {"category": "mean"} | ({"defect": ""} if options.by == "defect" else {})
        thresholds = [title for field, title in titles.items() if METRICS[field].is_threshold]
        means = df.drop(columns=thresholds + list(mean) + ["images"]
                        + [c for bounds in intervals.values() for c in bounds]).mean(skipna=False)
        df = pd.concat([df, pd.DataFrame([mean | means.to_dict()])], ignore_index=True)
    return df, intervals


def size_table(result: ScoreResult) -> pd.DataFrame:
    """One row per category and size bin, then each bin's mean over categories when there are
    several (region counts summed)."""
    titles = size_columns(result.options)
    records = [{"category": row.category, "size": size_bin.label}
               | {title: getattr(size_bin, field) for field, title in titles.items()}
               for row in result.rows for size_bin in row.sizes.bins]
    df = pd.DataFrame(records).astype({titles["n_regions"]: "Int64"})
    if len(result.rows) > 1:
        means = df.drop(columns="category").groupby("size", sort=False).agg(
            {title: "sum" if field == "n_regions" else lambda v: v.mean(skipna=False)
             for field, title in titles.items()}).reset_index()
        df = pd.concat([df, means.assign(category="mean")[df.columns]], ignore_index=True)
    return df


def caption(result: ScoreResult) -> str:
    """What the table shows and how it was made, one sentence per line, then the notes."""
    matching, options = result.matching, result.options
    lines = [f"Ground truth: {matching.description} ({matching.layout} layout)."]
    lines += [f"{title}: {metric_definition(name)}." for name, title in metric_columns(options).items()
              if METRICS[name].optimistic]
    lines.append("Image metrics use " + ("the given image scores." if any(p.image_score is not None
                                                                         for p in matching.pairs)
                                         else "each map's maximum as image score."))
    if options.by == "defect":
        lines.append("Each defect row scores that defect's images together with the category's good images.")
    if options.by == "size":
        lines.append(_size_caption(result))
    if options.threshold is not None:
        lines.append(f"@{options.threshold:g}: pixels scoring >= {options.threshold:g} are predicted anomalous"
                     + (f"; the threshold was {options.threshold_source}." if options.threshold_source else "."))
    if options.bootstrap:
        lines.append(f"[low, high]: {options.confidence:.0%} bootstrap intervals over images "
                     f"({options.bootstrap} resamples, seed {options.seed}); none for the mean.")
    return "\n".join(lines + result.notes)


def _size_caption(result: ScoreResult) -> str:
    first = result.rows[0].sizes
    where = (f"t = {first.threshold:g}" if first.threshold_from == "given"
             else "t = each category's P-F1max threshold (chosen on the scored set)")
    return (f"Rows: anomalous regions (8-connected) binned by their share of the image's pixels; per bin, "
            f"P-AUPR and P-AUPRO@{result.options.fpr_limit:g} rank the bin's anomalous pixels against all normal "
            f"pixels; region overlap@t is the mean share of a region's pixels scoring >= t and detected@t the "
            f"share of regions with overlap >= {first.min_overlap:g}, {where}.")


def render(result: ScoreResult, fmt: str) -> str:
    """The output document in ``fmt``; JSON carries every report field at full precision."""
    df, intervals = results_table(result)
    if fmt != "json":
        return format_table(df, fmt, caption=caption(result), intervals=intervals)
    options = result.options
    document = {
        "layout": result.matching.layout, "source": result.matching.description, "notes": result.notes,
        "options": {"by": options.by, "extended": options.extended, "size_edges": list(options.size_edges),
                    "fpr_limit": options.fpr_limit, "threshold": options.threshold,
                    "threshold_source": options.threshold_source,
                    "bootstrap": options.bootstrap, "confidence": options.confidence, "seed": options.seed,
                    "resize": options.resize},
        "summary": result.counts,
        "rows": [{"category": row.category, "defect": row.defect} | row.report.to_dict() for row in result.rows],
        "size_bins": [{"category": row.category} | record for row in result.rows if row.sizes is not None
                      for record in row.sizes.to_records()],
        "table": table_records(df),
    }
    return json.dumps(_json_ready(document), indent=2, allow_nan=False) + "\n"


def _json_ready(value):
    """``value`` with NumPy scalars made Python ones and NaN made ``None`` (JSON ``null``)."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and np.isnan(value) else value


def summary_line(result: ScoreResult) -> str:
    """What was read and how long it took, for standard error."""
    c = result.counts
    share = c["anomalous_pixels"] / c["pixels"] if c["pixels"] else 0.0
    return (f"read {c['images']} images ({c['anomalous_images']} anomalous, {c['regions']} regions, "
            f"{c['pixels']:,} pixels of which {c['anomalous_pixels']:,} = {share:.3%} anomalous) "
            f"in {result.read_seconds:.1f} s (waiting for the reading threads); metrics in "
            f"{result.metric_seconds:.1f} s")
