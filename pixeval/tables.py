"""Rendering a results table (a pandas DataFrame) as text: a terminal table, Markdown, CSV, JSON or
LaTeX.

Conventions shared by ``pixeval score``, ``bench`` and ``report``:

* A DataFrame with a named index (not a plain ``RangeIndex``) has its index written as the first
  column(s).
* Human formats (``table``, ``markdown``, ``latex``) round floats with ``floatfmt``; a missing float
  (NaN) is written ``n/a``, a missing value of any other type (``None``, ``pd.NA``) as an empty
  cell. Machine formats (``csv``, ``json``) keep every float at full precision (Python's shortest
  round-tripping repr), and write missing values as an empty CSV cell or JSON ``null``.
* ``highlight`` marks per column the best value (bold) and the second best (underlined) in
  Markdown and LaTeX, ``"max"`` or ``"min"`` being best; ties share the mark. NaN never ranks.
* ``intervals`` maps a column to its (low, high) columns, e.g. bootstrap confidence intervals: the
  human formats show ``value [low, high]`` in one cell and drop the low/high columns; the machine
  formats keep all three columns.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping

import pandas as pd

__all__ = ["FORMATS", "format_table", "table_records"]

#: The formats :func:`format_table` writes.
FORMATS = ("table", "markdown", "csv", "json", "latex")

_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def format_table(df: pd.DataFrame, fmt: str, *, highlight: Mapping[str, str] | None = None,
                 floatfmt: str = ".4f", caption: str | None = None,
                 intervals: Mapping[str, tuple[str, str]] | None = None) -> str:
    """``df`` rendered in format ``fmt`` (one of :data:`FORMATS`), following the module's conventions.

    ``caption`` is printed above a ``table``, below a Markdown table, as ``\\caption`` in LaTeX,
    and ignored by CSV and JSON. The returned text ends with a newline.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; expected one of {', '.join(FORMATS)}")
    df = df if isinstance(df.index, pd.RangeIndex) else df.reset_index()
    highlight = dict(highlight or {})
    intervals = dict(intervals or {})
    for column, rule in highlight.items():
        if column not in df.columns or rule not in ("max", "min"):
            raise ValueError(f"highlight {column!r}: {rule!r} needs a column of the table and 'max' or 'min'")
    for column, bounds in intervals.items():
        missing = [c for c in (column, *bounds) if c not in df.columns]
        if missing:
            raise ValueError(f"intervals for {column!r} name columns the table lacks: {', '.join(map(repr, missing))}")
    if fmt == "csv":
        out = io.StringIO()
        df.to_csv(out, index=False, lineterminator="\n")
        return out.getvalue()
    if fmt == "json":
        return json.dumps(table_records(df), indent=2) + "\n"
    cells = _human_cells(df, fmt, highlight, floatfmt, intervals)
    shown = [c for c in df.columns if c not in {b for bounds in intervals.values() for b in bounds}]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in shown]
    if fmt == "latex":
        return _latex(shown, cells, numeric, caption)
    return _text(shown, cells, numeric, caption, markdown=fmt == "markdown")


def table_records(df: pd.DataFrame) -> list[dict]:
    """The rows of ``df`` (index included when named) as JSON-ready dicts: full-precision floats,
    ``None`` for missing values, NumPy scalars turned into Python ones."""
    df = df if isinstance(df.index, pd.RangeIndex) else df.reset_index()
    return [{str(k): _plain(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def _plain(value):
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):  # NumPy scalar
        return _plain(value.item())
    return value


def _human_cells(df: pd.DataFrame, fmt: str, highlight: dict[str, str], floatfmt: str,
                 intervals: dict[str, tuple[str, str]]) -> list[list[str]]:
    hidden = {b for bounds in intervals.values() for b in bounds}
    marks = {c: _marks(df[c], rule) for c, rule in highlight.items()} if fmt != "table" else {}
    text = {c: [_cell(v, floatfmt, fmt) for v in df[c]] for c in df.columns}
    columns = [c for c in df.columns if c not in hidden]
    rows = []
    for i in range(len(df)):
        row = []
        for c in columns:
            cell = text[c][i]
            if c in intervals and not any(pd.isna(df[b].iloc[i]) for b in intervals[c]):
                low, high = (text[b][i] for b in intervals[c])
                cell = f"{cell} [{low}, {high}]"
            row.append(_emphasis(cell, marks.get(c, [0] * len(df))[i], fmt))
        rows.append(row)
    return rows


def _cell(value, floatfmt: str, fmt: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float) or (hasattr(value, "dtype") and value.dtype.kind == "f"):
        return format(float(value), floatfmt)
    text = str(value)
    if fmt == "latex":
        return _latex_escape(text)
    return text.replace("|", r"\|") if fmt == "markdown" else text


def _marks(column: pd.Series, rule: str) -> list[int]:
    """Per row: 1 for the best value of ``column``, 2 for the second best, 0 otherwise."""
    values = pd.to_numeric(column, errors="coerce")
    distinct = sorted(set(values.dropna()), reverse=rule == "max")
    rank = {v: i + 1 for i, v in enumerate(distinct[:2])}
    return [rank.get(v, 0) if not pd.isna(v) else 0 for v in values]


def _emphasis(cell: str, mark: int, fmt: str) -> str:
    if not mark or not cell:
        return cell
    if fmt == "latex":
        return rf"\textbf{{{cell}}}" if mark == 1 else rf"\underline{{{cell}}}"
    return f"**{cell}**" if mark == 1 else f"<ins>{cell}</ins>"


def _text(columns: list, rows: list[list[str]], numeric: list[bool], caption: str | None, *,
          markdown: bool) -> str:
    header = [str(c) for c in columns]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)]
        return ("| " + " | ".join(padded) + " |") if markdown else "  ".join(padded).rstrip()

    if markdown:
        rule = "|" + "|".join(("-" * (w + 1) + ":") if num else (":" + "-" * (w + 1))
                              for w, num in zip(widths, numeric)) + "|"
    else:
        rule = "  ".join("-" * w for w in widths)
    lines = [line(header), rule] + [line(r) for r in rows]
    if caption and markdown:
        lines += ["", caption]
    elif caption:
        lines = [caption, ""] + lines
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def _latex(columns: list, rows: list[list[str]], numeric: list[bool], caption: str | None) -> str:
    spec = "".join("r" if num else "l" for num in numeric)
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{_latex_escape(caption)}}}")
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
              " & ".join(_latex_escape(str(c)) for c in columns) + r" \\", r"\midrule"]
    lines += [" & ".join(r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
