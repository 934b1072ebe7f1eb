"""Tables and pictures made from bench results: :mod:`~pixeval.report.ranking` (ranked tables,
average ranks, significance between neighbours) and :mod:`~pixeval.report.html` (a
self-contained HTML page with curves and a qualitative grid).

:func:`render_tables` is the text both ``pixeval bench`` and ``pixeval report`` print.
"""

from __future__ import annotations

import json

import pandas as pd

from pixeval.report.ranking import (DEFAULT_METRICS, PRIMARY, RankedTable, ReportError, category_tables,
                                    cost_table, deployment_table, ranked_table)
from pixeval.report.sizes import size_table

__all__ = ["DEFAULT_METRICS", "PRIMARY", "ReportError", "render_tables"]


def render_tables(results: pd.DataFrame, fmt: str = "table", *, metrics=DEFAULT_METRICS,
                  primary: str = PRIMARY, per_category: bool = False) -> str:
    """The ranked table, the deployment-threshold table and the by-size table (each when the
    results hold its metrics; see :func:`~pixeval.report.ranking.deployment_table` and
    :func:`~pixeval.report.sizes.size_table`) and, with ``per_category``, one table per category,
    in format ``fmt``.

    ``results`` is a tidy table (:mod:`pixeval.bench.store`); the bootstrap samples of its jobs, for
    the p vs next column, are read from the run folders its ``run`` column names.

    In ``json`` the tables form one document ``{"ranked": [...], "deployment": {...}, "by size":
    {...}, "categories": {...}}``; in
    ``csv`` they follow one another, each after a ``# title`` line.
    """
    from pixeval.bench.store import read_resamples
    from pixeval.tables import format_table, table_records

    if results.empty:
        raise ReportError("there are no finished jobs to report")
    resamples = read_resamples(results, primary)
    ranked = ranked_table(results, metrics, primary, resamples)
    extra = [(title, table) for title, table in (("deployment", deployment_table(results, primary, resamples)),
                                                 ("by size", size_table(results))) if table is not None]
    categories = category_tables(results, metrics, primary) if per_category else []
    if fmt == "json":
        document = {"ranked": table_records(ranked.frame), "caption": ranked.caption, "notes": ranked.notes}
        document |= {title: {"table": table_records(table.frame), "caption": table.caption} for title, table in extra}
        document["categories"] = {title: table_records(table.frame) for title, table in categories}
        return json.dumps(document, indent=2) + "\n"
    tables: list[tuple[str, RankedTable]] = [("ranked", ranked), *extra, *categories]
    parts = []
    for title, table in tables:
        text = format_table(table.frame, fmt, highlight=table.highlight, caption=table.caption,
                            floatfmt=".4f")
        if fmt == "csv":
            text = f"# {title}\n{text}"
        parts.append(text + "".join(f"Note: {note}\n" for note in table.notes if fmt != "csv"))
    if fmt in ("table", "markdown"):
        parts.append(format_table(cost_table(results), fmt, floatfmt=".2f",
                                  caption="Cost per job: mean fit and predict seconds, largest peak memory."))
    return "\n".join(parts)
