"""The result of an evaluation: every metric, the counts behind them and bootstrap intervals."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .aupimo import AupimoReport


@dataclass
class MetricReport:
    """Pixel and image metrics of one set of score maps against their masks.

    Pixel metrics pool every pixel of every image (a pixel is anomalous when ``score >= t``):
    ``pixel_auroc`` (trapezoid under the exact ROC curve, = scikit-learn ``roc_auc_score``),
    ``pixel_aupr`` (step-wise average precision, = ``average_precision_score``),
    ``pixel_f1_max`` (best F1 over all thresholds, chosen on this data) at
    ``pixel_f1_threshold``, ``pixel_aupro`` (MVTec AD AUPRO up to FPR ``fpr_limit``, divided by
    the limit). With a given ``threshold``: pixel F1, precision and recall at it, and the image F1
    with images scoring ``>= threshold`` anomalous. Image metrics use one score per image (the
    map's maximum unless given) and the label "mask has an anomalous pixel". The extended
    metrics (``evaluate(extended=True)``, else None): ``pixel_aupimo``, the mean AUPIMO of the
    anomalous images (:func:`~pixeval.metrics.aupimo`, FPR range 1e-5 to 1e-4; ``aupimo`` holds
    each image's value and their spread), and
    ``boundary_f1`` / ``boundary_iou`` at the F1-max threshold (and ``*_at_threshold`` at the
    given one; :func:`~pixeval.metrics.boundary_metrics`, its default tolerance and band).
    Undefined metrics are NaN (a warning said why). ``intervals`` maps a metric name to its
    bootstrap percentile interval over ``bootstrap_resamples`` resamples of the images (empty
    unless requested); ``confidence`` is its level. ``binned`` is true when a binned
    :class:`~pixeval.metrics.PixelAccumulator` computed the pixel metrics (thresholds restricted
    to its bin edges).
    """

    pixel_auroc: float
    pixel_aupr: float
    pixel_f1_max: float
    pixel_f1_threshold: float
    pixel_aupro: float
    fpr_limit: float
    image_auroc: float
    image_aupr: float
    image_f1_max: float
    image_f1_threshold: float
    n_images: int
    n_anomalous_images: int
    n_regions: int
    n_pixels: int
    n_anomalous_pixels: int
    threshold: float | None = None
    pixel_f1_at_threshold: float | None = None
    pixel_precision_at_threshold: float | None = None
    pixel_recall_at_threshold: float | None = None
    image_f1_at_threshold: float | None = None
    pixel_aupimo: float | None = None
    boundary_f1: float | None = None
    boundary_iou: float | None = None
    boundary_f1_at_threshold: float | None = None
    boundary_iou_at_threshold: float | None = None
    aupimo: AupimoReport | None = None
    binned: bool = False
    confidence: float | None = None
    bootstrap_resamples: int = 0
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, float | int | bool | None]:
        """A flat dict: every field, with each interval as ``NAME_ci_low`` / ``NAME_ci_high``
        and, for ``aupimo``, its summary (:meth:`~pixeval.metrics.AupimoReport.to_dict`)."""
        flat = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("intervals", "aupimo")}
        if self.aupimo is not None:
            flat.update(self.aupimo.to_dict())
        for name, (low, high) in self.intervals.items():
            flat[f"{name}_ci_low"] = low
            flat[f"{name}_ci_high"] = high
        return flat
