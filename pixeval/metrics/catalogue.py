"""The metric catalogue: every metric pixeval reports, with its one name, title and definition.

``name`` is the metric's field of :class:`~pixeval.metrics.MetricReport`, its key in
``MetricReport.to_dict()`` and its name in the bench results store. ``title`` is its column title
in every table (``pixeval score``, ``pixeval report``, the HTML page) and in the README's metric
table. ``definition`` is the one line that says what the number is. Every output reads them from
here, in this order, so adding a metric to the outputs is one entry in :data:`CATALOGUE`.

Titles and definitions may hold ``{fpr_limit}`` (the AUPRO integration limit) and
``{threshold}`` (a given threshold, ``t`` when none is given); :func:`metric_title` and
:func:`metric_definition` fill them in.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATALOGUE", "DEFAULT_FPR_LIMIT", "METRICS", "MetricInfo", "metric_definition", "metric_title"]

#: The FPR limit of AUPRO unless told otherwise (pixeval score --fpr-limit, evaluate(fpr_limit=)).
DEFAULT_FPR_LIMIT = 0.3


@dataclass(frozen=True)
class MetricInfo:
    """One metric: its name, column title and one-line definition.

    ``is_threshold``: the entry is a threshold, not a score, so no mean over rows and no "best"
    highlight. ``needs_threshold``: defined only when a threshold is given
    (``evaluate(threshold=...)``, ``pixeval score --threshold``). ``optimistic``: its threshold is
    chosen on the scored data itself, so it overstates what a threshold fixed beforehand achieves;
    tables that show it repeat its definition in their caption. ``extended``: computed only when
    asked for (``evaluate(extended=True)``, ``pixeval score --extended``; the bench always asks),
    as it costs more than the default set (benchmarks/README.md, "Metric core").
    """

    name: str
    title: str
    definition: str
    is_threshold: bool = False
    needs_threshold: bool = False
    optimistic: bool = False
    extended: bool = False


CATALOGUE: tuple[MetricInfo, ...] = (
    MetricInfo("pixel_auroc", "P-AUROC",
               "area under the exact pixel ROC curve, by trapezoids (= scikit-learn roc_auc_score)"),
    MetricInfo("pixel_aupr", "P-AUPR",
               "pixel average precision, step-wise: sum over thresholds of (R_n - R_n-1) * P_n "
               "(= scikit-learn average_precision_score; not the optimistic trapezoid)"),
    MetricInfo("pixel_f1_max", "P-F1max",
               "best pixel F1 over all thresholds; the threshold is chosen on the scored set itself, "
               "so it is optimistic", optimistic=True),
    MetricInfo("pixel_f1_threshold", "P-F1max thr",
               "the threshold that reaches P-F1max (pixels scoring >= it are anomalous)", is_threshold=True),
    MetricInfo("pixel_aupro", "P-AUPRO@{fpr_limit}",
               "MVTec AD AUPRO: mean overlap with each 8-connected defect region against the false positive "
               "rate, area up to FPR {fpr_limit} divided by {fpr_limit}"),
    MetricInfo("image_auroc", "I-AUROC",
               "image AUROC; an image's score is the maximum of its map unless image scores are given"),
    MetricInfo("image_aupr", "I-AUPR", "image average precision, step-wise as P-AUPR"),
    MetricInfo("image_f1_max", "I-F1max", "best image F1 over all thresholds, chosen on the scored set",
               optimistic=True),
    MetricInfo("pixel_f1_at_threshold", "P-F1@{threshold}",
               "pixel F1 with pixels scoring >= {threshold} anomalous, the threshold given (e.g. chosen on "
               "validation data)", needs_threshold=True),
    MetricInfo("pixel_precision_at_threshold", "P-Prec@{threshold}",
               "pixel precision with pixels scoring >= {threshold} anomalous", needs_threshold=True),
    MetricInfo("pixel_recall_at_threshold", "P-Rec@{threshold}",
               "pixel recall with pixels scoring >= {threshold} anomalous", needs_threshold=True),
    MetricInfo("image_f1_at_threshold", "I-F1@{threshold}",
               "image F1 with images scoring >= {threshold} anomalous (with maxima as image scores: the images "
               "having a pixel >= {threshold})", needs_threshold=True),
    MetricInfo("pixel_aupimo", "AUPIMO",
               "mean over anomalous images of AUPIMO (Bertoldo et al. 2024): the image's overlap (its share of "
               "anomalous pixels >= t) integrated over log FPR from 1e-5 to 1e-4 and divided by log(10), the FPR "
               "being the mean per-image FPR of the normal images", extended=True),
    MetricInfo("boundary_f1", "B-F1",
               "boundary F1 at the P-F1max threshold: precision and recall of predicted and true mask contour "
               "pixels matched within 0.008 of the image diagonal (DAVIS contour measure), pooled over images; "
               "the threshold is chosen on the scored set", optimistic=True, extended=True),
    MetricInfo("boundary_iou", "B-IoU",
               "Boundary IoU (Cheng et al. 2021) at the P-F1max threshold: intersection over union of the "
               "predicted and true masks' inner bands 0.02 of the diagonal wide, pooled over images",
               optimistic=True, extended=True),
    MetricInfo("boundary_f1_at_threshold", "B-F1@{threshold}",
               "boundary F1 as B-F1, with pixels scoring >= {threshold} anomalous", needs_threshold=True,
               extended=True),
    MetricInfo("boundary_iou_at_threshold", "B-IoU@{threshold}",
               "Boundary IoU as B-IoU, with pixels scoring >= {threshold} anomalous", needs_threshold=True,
               extended=True),
)

#: The catalogue by metric name.
METRICS: dict[str, MetricInfo] = {info.name: info for info in CATALOGUE}


def metric_title(name: str, *, fpr_limit: float = DEFAULT_FPR_LIMIT, threshold: float | None = None) -> str:
    """The column title of metric ``name`` (the name itself for a name not in the catalogue)."""
    info = METRICS.get(name)
    return _filled(info.title, fpr_limit, threshold) if info is not None else name


def metric_definition(name: str, *, fpr_limit: float = DEFAULT_FPR_LIMIT, threshold: float | None = None) -> str:
    """The one-line definition of metric ``name`` (empty for a name not in the catalogue)."""
    info = METRICS.get(name)
    return _filled(info.definition, fpr_limit, threshold) if info is not None else ""


def _filled(text: str, fpr_limit: float, threshold: float | None) -> str:
    return text.format(fpr_limit=f"{fpr_limit:g}", threshold="t" if threshold is None else f"{threshold:g}")
