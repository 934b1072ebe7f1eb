"""The metric core: exact, fast, imbalance-aware pixel and image metrics.

Conventions (docs/design.md, "Metric conventions"): a pixel is predicted anomalous when
``score >= t``; thresholds are all distinct scores; ties move together. P-AUROC = scikit-learn
``roc_auc_score``; P-AUPR = step-wise average precision (= ``average_precision_score``); F1-max
with its threshold, or F1 at a given threshold; AUPRO = the MVTec AD algorithm (8-connected
regions, PRO interpolated at the FPR limit, trapezoid divided by the limit). Image scores are
the maps' maxima unless given. The metric core never imports torch, click or pandas.

    from pixeval.metrics import evaluate, PixelAccumulator
    report = evaluate(score_maps, masks)            # lists of 2-D arrays, or stacked N×H×W
    report.pixel_aupr, report.pixel_aupro, report.to_dict()
    acc = PixelAccumulator(); acc.update(score_map, mask); acc.merge(other); acc.compute()
    paired_bootstrap(maps_a, maps_b, masks)         # is A's lead over B more than chance?
    bootstrap_samples(score_maps, masks, seed=s)    # every metric per resample; paired across calls
    aupimo(score_maps, masks).per_image             # per-image overlap at shared FPR 1e-5..1e-4
    boundary_metrics(score_maps, masks, t)          # boundary F1 (DAVIS) and Boundary IoU at t
    cut = threshold_at_fpr(normal_maps, 0.01)       # a threshold set on normal data only ...
    metrics_at_threshold(score_maps, masks, cut.threshold)  # ... and what it gives on a test set
    metrics_by_size(score_maps, masks).to_records() # P-AUPR, AUPRO, region recall per size bin
    pixel_curves(score_maps, masks)["pr"]           # ROC, PR and PRO curves, from one sort

Input policy: invalid input (a map that is not 2-D or is empty, map/mask shape mismatch, NaN or
infinite scores, a mask that is not binary) raises ``ValueError`` naming the image index; a
metric undefined on valid input (no anomalous or no normal pixel or image) is NaN with a
:class:`DegenerateInputWarning` naming the reason. Counts are ``int64``, never float32.
"""

from ._inputs import DegenerateInputWarning
from .accumulator import PixelAccumulator
from .aupimo import AupimoReport, aupimo
from .bootstrap import PairedComparison
from .boundary import BoundaryReport, boundary_metrics
from .by_size import SizeBin, SizeReport, metrics_by_size
from .curves import pixel_curves, precision_recall_curve, pro_curve, roc_curve
from .evaluate import aupro, bootstrap_samples, evaluate, paired_bootstrap
from .ranking import auroc, average_precision, f1_at_threshold, f1_max
from .report import MetricReport
from .thresholds import NormalThreshold, ThresholdReport, metrics_at_threshold, threshold_at_fpr

__all__ = [
    "AupimoReport",
    "BoundaryReport",
    "DegenerateInputWarning",
    "MetricReport",
    "NormalThreshold",
    "PairedComparison",
    "PixelAccumulator",
    "SizeBin",
    "SizeReport",
    "ThresholdReport",
    "aupimo",
    "aupro",
    "auroc",
    "average_precision",
    "bootstrap_samples",
    "boundary_metrics",
    "evaluate",
    "f1_at_threshold",
    "f1_max",
    "metrics_at_threshold",
    "metrics_by_size",
    "paired_bootstrap",
    "pixel_curves",
    "precision_recall_curve",
    "pro_curve",
    "roc_curve",
    "threshold_at_fpr",
]
