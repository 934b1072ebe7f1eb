"""A self-contained HTML report of bench results: one ``index.html`` with every picture embedded
(base64 PNG), so it can be mailed or archived as one file.

It shows the ranked table, the deployment-threshold and by-size tables, the per-category tables
and the cost table (as the terminal prints them), the definition of every metric shown (from
:mod:`pixeval.metrics.catalogue`), then per category:

* the pixel **PR**, **ROC** and **PRO** curves of every detector (its lowest seed), from the thinned
  curves each job keeps;
* a **qualitative grid**: for the anomalous test images each job kept, the input, the ground truth,
  and per detector its score map (scaled to the map's own range) and its segmentation at the
  F1-optimal threshold, coloured green for true positives, red for false positives and blue for
  false negatives.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no display needed).
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from pixeval.bench.store import load_job_arrays
from pixeval.metrics.catalogue import DEFAULT_FPR_LIMIT, metric_definition, metric_title
from pixeval.report import render_tables
from pixeval.report.ranking import DEFAULT_METRICS, DEPLOYMENT_METRICS, PRIMARY

#: Segmentation colours (RGB): true positive, false positive, false negative.
TP, FP, FN = (0, 170, 0), (220, 30, 30), (40, 90, 255)
#: FPR range of the PRO plot: the AUPRO integration limit of bench results.
PRO_FPR_LIMIT = DEFAULT_FPR_LIMIT

_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1400px; }
pre { background: #f6f6f6; padding: 0.8em; white-space: pre-wrap; font-size: 12px; }
img { max-width: 100%; }
h2 { border-bottom: 1px solid #ccc; }
.legend span { display: inline-block; padding: 0 0.6em; margin-right: 0.4em; color: white; }
"""


def write_html(results: pd.DataFrame, out_dir: str | Path, *, metrics=DEFAULT_METRICS,
               primary: str = PRIMARY) -> Path:
    """Write ``out_dir/index.html`` for the tidy ``results`` and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = (results.drop_duplicates(["run", "job"])
            .sort_values(["dataset", "category", "detector", "seed"])
            [["run", "job", "detector", "dataset", "category", "seed"]])
    runs = sorted(set(results["run"]))
    tables = render_tables(results, "table", metrics=metrics, primary=primary, per_category=True)
    parts = [f"<h1>pixeval report</h1><p>Runs: {', '.join(html.escape(r) for r in runs)}. "
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.</p>",
             "<h2>Ranking</h2>",
             f"<pre>{html.escape(tables)}</pre>",
             _definitions([primary, *metrics, *DEPLOYMENT_METRICS])]
    for (dataset, category), group in jobs.groupby(["dataset", "category"], sort=True):
        first_seed = group.sort_values("seed").drop_duplicates("detector")
        title = html.escape(f"{dataset}/{category}")
        parts.append(f"<h2>{title}</h2>")
        curves = {row.detector: load_job_arrays(row.run, row.job, "curves") for row in first_seed.itertuples()}
        if any(curves.values()):
            parts.append(f"<h3>Curves</h3>{_img(_curves_figure(curves), f'PR, ROC and PRO curves, {title}')}")
        examples = {row.detector: load_job_arrays(row.run, row.job, "examples") for row in first_seed.itertuples()}
        examples = {name: ex for name, ex in examples.items() if ex}
        if examples:
            parts.append("<h3>Examples</h3><p class='legend'>Segmentation at each detector's F1-optimal "
                         f"threshold: <span style='background:rgb{TP}'>true positive</span>"
                         f"<span style='background:rgb{FP}'>false positive</span>"
                         f"<span style='background:rgb{FN}'>false negative</span></p>"
                         f"{_img(_examples_figure(examples), f'qualitative grid, {title}')}")
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>pixeval report</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _definitions(metrics: list[str]) -> str:
    """A definition list of the metrics shown, in the catalogue's words."""
    items = "".join(f"<dt>{html.escape(metric_title(m))}</dt><dd>{html.escape(metric_definition(m))}</dd>"
                    for m in dict.fromkeys(metrics) if metric_definition(m))
    return f"<h2>Metrics</h2><dl>{items}</dl>" if items else ""


def _img(figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<p><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'></p>"


def _curves_figure(curves: dict[str, dict[str, np.ndarray]]):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 4), layout="constrained")
    pr, roc, pro = figure.subplots(1, 3)
    for name, c in curves.items():
        if not c:
            continue
        pr.plot(c["pr_recall"], c["pr_precision"], label=name, drawstyle="steps-pre")  # AP: P_n over (R_{n-1}, R_n]
        roc.plot(c["roc_fpr"], c["roc_tpr"], label=name)
        pro.plot(c["pro_fpr"], c["pro_pro"], label=name)
    for axes, (title, x, y) in zip((pr, roc, pro), (("Precision-recall", "recall", "precision"),
                                                     ("ROC", "false positive rate", "true positive rate"),
                                                     (f"PRO (FPR ≤ {PRO_FPR_LIMIT}, the AUPRO range)",
                                                      "false positive rate", "per-region overlap"))):
        axes.set(title=title, xlabel=x, ylabel=y, ylim=(0, 1.02))
        axes.grid(alpha=0.3)
    pr.set_xlim(0, 1)
    roc.set_xlim(0, 1)
    pro.set_xlim(0, PRO_FPR_LIMIT)
    pro.legend(loc="lower right", fontsize="small")
    return figure


def _examples_figure(examples: dict[str, dict[str, np.ndarray]]):
    """Rows: the images the first detector kept (and every other one kept too); columns: input,
    ground truth, then map and segmentation per detector."""
    from matplotlib.figure import Figure

    names = list(examples)
    ids = [i for i in examples[names[0]]["ids"] if all(i in ex["ids"] for ex in examples.values())]
    columns = 2 + 2 * len(names)
    figure = Figure(figsize=(1.6 * columns, 1.7 * len(ids) + 0.4), layout="constrained")
    grid = np.atleast_2d(figure.subplots(len(ids), columns, squeeze=False))
    for r, image_id in enumerate(ids):
        base = examples[names[0]]
        k = list(base["ids"]).index(image_id)
        h, w = base["shape"][k]
        grid[r, 0].imshow(base["image"][k][:h, :w])
        grid[r, 1].imshow(base["mask"][k][:h, :w], cmap="gray", vmin=0, vmax=1)
        grid[r, 0].set_ylabel(str(image_id), fontsize="small")
        for d, name in enumerate(names):
            ex = examples[name]
            j = list(ex["ids"]).index(image_id)
            grid[r, 2 + 2 * d].imshow(ex["map"][j][:h, :w], cmap="inferno")
            grid[r, 3 + 2 * d].imshow(segmentation_colours(ex["segmentation"][j][:h, :w], ex["mask"][j][:h, :w]))
    titles = ["input", "ground truth"] + [f"{n}\n{kind}" for n in names for kind in ("score map", "segmentation")]
    for c, title in enumerate(titles):
        grid[0, c].set_title(title, fontsize="small")
    for axes in grid.ravel():
        axes.set_xticks([])
        axes.set_yticks([])
    return figure


def segmentation_colours(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """An RGB picture of a segmentation against the truth: :data:`TP`, :data:`FP`, :data:`FN`
    colours, black for true negatives."""
    predicted, truth = predicted.astype(bool), truth.astype(bool)
    picture = np.zeros((*predicted.shape, 3), dtype=np.uint8)
    picture[predicted & truth] = TP
    picture[predicted & ~truth] = FP
    picture[~predicted & truth] = FN
    return picture
