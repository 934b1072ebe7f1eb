"""pixeval: exact, fast, imbalance-aware pixel-level evaluation of visual anomaly detection.

The package root is the front door: every name a user or a plugin author needs is here, so no
one needs to know which file holds it::

    import pixeval

    report = pixeval.evaluate(score_maps, masks)           # every pixel and image metric, exactly
    report.pixel_aupr, report.pixel_aupro, report.to_dict()
    result = pixeval.score_folder("preds/", "mvtec_ad/")   # `pixeval score` as a function
    result.table()

    dataset = pixeval.open_dataset("synthetic-textures")
    detector = pixeval.create_detector("patchcore", {"backbone": "resnet18"}).fit(train_images)

A new detector subclasses :class:`Detector` with typed :class:`BaseParams` declared by
:func:`param` and registers with :func:`register_detector` (README, "Add your own detector");
:func:`pixeval.testing.check_detector` tests it against the contract.

Names are imported on first use (PEP 562), so ``import pixeval`` stays cheap: the command line
and ``pixeval score`` start without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: The module that defines each public name.
_EXPORTS = {
    **dict.fromkeys(("evaluate", "aupro", "auroc", "average_precision", "f1_max", "f1_at_threshold",
                     "roc_curve", "precision_recall_curve", "pro_curve", "bootstrap_samples",
                     "paired_bootstrap", "PixelAccumulator", "MetricReport", "DegenerateInputWarning"),
                    "pixeval.metrics"),
    **dict.fromkeys(("score_folder", "ScoreResult"), "pixeval.scoring"),
    **dict.fromkeys(("open_dataset",), "pixeval.data"),
    **dict.fromkeys(("BaseParams", "param"), "pixeval.params"),
    **dict.fromkeys(("Detector", "Prediction", "ProgressCallback", "load_detector"), "pixeval.detector"),
    **dict.fromkeys(("register_detector", "create_detector", "get_detector", "available_detectors"),
                    "pixeval.registry"),
    **dict.fromkeys(("PixevalError", "ParamError", "RegistryError", "DatasetError", "InputError"),
                    "pixeval.errors"),
}

__all__ = [
    # metrics
    "evaluate", "aupro", "auroc", "average_precision", "f1_max", "f1_at_threshold", "roc_curve",
    "precision_recall_curve", "pro_curve", "bootstrap_samples", "paired_bootstrap", "PixelAccumulator",
    "MetricReport", "DegenerateInputWarning",
    # scoring files, datasets
    "score_folder", "ScoreResult", "open_dataset",
    # detectors: hyperparameters, contract, registry
    "BaseParams", "param", "Detector", "Prediction", "ProgressCallback", "load_detector", "register_detector",
    "create_detector", "get_detector", "available_detectors",
    # errors
    "PixevalError", "ParamError", "RegistryError", "DatasetError", "InputError",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pixeval' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from pixeval.data import open_dataset
    from pixeval.detector import Detector, Prediction, ProgressCallback, load_detector
    from pixeval.errors import DatasetError, InputError, ParamError, PixevalError, RegistryError
    from pixeval.metrics import (DegenerateInputWarning, MetricReport, PixelAccumulator, aupro, auroc,
                                 average_precision, bootstrap_samples, evaluate, f1_at_threshold, f1_max,
                                 paired_bootstrap, precision_recall_curve, pro_curve, roc_curve)
    from pixeval.params import BaseParams, param
    from pixeval.registry import available_detectors, create_detector, get_detector, register_detector
    from pixeval.scoring import ScoreResult, score_folder
