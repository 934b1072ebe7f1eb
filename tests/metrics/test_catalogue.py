"""The metric catalogue: one name, one title and one definition per metric, read by every output
(pixeval score, pixeval report, the HTML page) and the README."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd

from pixeval.metrics import MetricReport
from pixeval.metrics.catalogue import CATALOGUE, METRICS, metric_definition, metric_title
from pixeval.report.ranking import DEFAULT_METRICS, ranked_table
from pixeval.scoring import ScoreOptions
from pixeval.scoring._output import metric_columns

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_entry_is_a_report_field_under_one_name_and_one_title():
    fields = {f.name for f in dataclasses.fields(MetricReport)}
    assert [info.name for info in CATALOGUE if info.name not in fields] == []
    assert len(METRICS) == len(CATALOGUE)
    for settings in ({}, {"fpr_limit": 0.1, "threshold": 0.5}):
        titles = [metric_title(info.name, **settings) for info in CATALOGUE]
        assert len(set(titles)) == len(titles), titles


def test_titles_and_definitions_fill_in_the_limit_and_the_threshold():
    assert metric_title("pixel_aupro") == "P-AUPRO@0.3" and metric_title("pixel_aupro", fpr_limit=0.05) == "P-AUPRO@0.05"
    assert metric_title("pixel_f1_at_threshold", threshold=0.25) == "P-F1@0.25"
    assert metric_title("pixel_f1_at_threshold") == "P-F1@t"
    assert "up to FPR 0.05 divided by 0.05" in metric_definition("pixel_aupro", fpr_limit=0.05)
    assert metric_title("n_regions") == "n_regions" and metric_definition("n_regions") == ""


def test_the_readme_metric_table_is_the_catalogue():
    section = README.read_text().split("## Metrics and their conventions", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| metric |")]
    assert rows == [f"| {metric_title(info.name)} | {metric_definition(info.name)} |" for info in CATALOGUE]


def test_score_and_report_tables_title_their_columns_from_the_catalogue():
    assert list(metric_columns(ScoreOptions()).values()) == [
        metric_title(info.name) for info in CATALOGUE if not (info.needs_threshold or info.extended)]
    assert list(metric_columns(ScoreOptions(threshold=0.5, fpr_limit=0.1, extended=True)).values()) == [
        metric_title(info.name, threshold=0.5, fpr_limit=0.1) for info in CATALOGUE]
    rng = np.random.default_rng(0)
    results = pd.DataFrame([{"detector": d, "dataset": "s", "category": c, "seed": 0, "metric": m,
                             "value": rng.random()}
                            for d in ("a", "b") for c in ("x", "y") for m in DEFAULT_METRICS])
    table = ranked_table(results)
    assert [c for c in table.frame.columns if c not in ("detector", "avg rank", "p vs next")] == [
        metric_title(m) for m in DEFAULT_METRICS]
    assert re.search(r"P-F1max: best pixel F1 over all thresholds.*optimistic", table.caption)
