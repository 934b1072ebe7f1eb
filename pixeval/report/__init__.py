"""Tables and pictures made from bench results: :mod:`~pixeval.report.ranking` (ranked tables,
average ranks, significance between neighbours) and :mod:`~pixeval.report.html` (a
self-contained HTML page with curves and a qualitative grid).

:func:`render_tables` is the text both ``pixeval bench`` and ``pixeval report`` print.
"""

from __future__ import annotations

import json

import pandas as pd

from pixeval.report.ranking import (DEFAULT_METRICS, PRIMARY, RankedTable, ReportError, category_tables,
                                    cost_table, ranked_table)

__all__ = ["DEFAULT_METRICS", "PRIMARY", "ReportError", "render_tables"]


def render_tables(results: pd.DataFrame, fmt: str = "table", *, metrics=DEFAULT_METRICS,
                  primary: str = PRIMARY, per_category: bool = False) -> str:
    """The ranked table (and, with ``per_category``, one table per category) in format ``fmt``.

    ``results`` is a tidy table (:mod:`pixeval.bench.store`); the bootstrap samples of its jobs, for
    the p vs next column, are read from the run folders its ``run`` column names.

    In ``json`` the tables form one document ``{"ranked": [...], "categories": {...}}``; in
    ``csv`` they follow one another, each after a ``# title`` line.
    """
    from pixeval.bench.store import read_resamples
    from pixeval.tables import format_table, table_records

    if results.empty:
        raise ReportError("there are no finished jobs to report")
    resamples = read_resamples(results, primary)
    tables: list[tuple[str, RankedTable]] = [("ranked", ranked_table(results, metrics, primary, resamples))]
    if per_category:
        tables += category_tables(results, metrics, primary)
    if fmt == "json":
        document = {"ranked": table_records(tables[0][1].frame), "caption": tables[0][1].caption,
                    "notes": tables[0][1].notes,
                    "categories": {title: table_records(t.frame) for title, t in tables[1:]}}
        return json.dumps(document, indent=2) + "\n"
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
