"""Input validation and the degenerate-input policy of the metric core.

Policy (the same everywhere in :mod:`pixeval.metrics`):

* Errors in the input raise ``ValueError`` naming the image index (or the argument) and the
  problem: a map that is not 2-D or is empty, a mask whose shape differs from its map, NaN or infinite
  scores, a mask that is not binary (more than two distinct values, negative or NaN values;
  ``bool``, 0/1 and 0/255 are all fine, and any value > 0 is anomalous), non-numeric scores,
  different numbers of maps and masks, an empty input, an FPR limit outside (0, 1].
* Degenerate but valid sets do not raise: a metric that is undefined on them is NaN and a
  :class:`DegenerateInputWarning` names the reason: no anomalous pixel (or image), no normal
  pixel (or image). Constant scores are valid (all pixels tie, AUROC is 0.5, AP is the
  anomalous fraction).
* Scores are compared in the precision they were given in: ``float16``, ``float32`` and integers
  of up to 16 bits are ranked as ``float32`` (exactly), everything else as ``float64``.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence

import numpy as np


class DegenerateInputWarning(UserWarning):
    """A metric is undefined on the given input (e.g. no anomalous pixel) and is NaN."""


def warn_degenerate(metric_group: str, reason: str) -> None:
    """Warn that ``metric_group`` is NaN because of ``reason`` (attributed to the caller's line)."""
    warnings.warn(f"{metric_group}: NaN, {reason}", DegenerateInputWarning,
                  stacklevel=_caller_stacklevel())


def warn_caller(message: str) -> None:
    """A :class:`UserWarning` attributed to the caller's line (a result worth a note, not NaN)."""
    warnings.warn(message, UserWarning, stacklevel=_caller_stacklevel())


def _caller_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside this package, for :func:`warnings.warn`."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == package:
        frame, level = frame.f_back, level + 1
    return level


def as_image_list(arrays, name: str) -> list[np.ndarray]:
    """A stacked ``N×H×W`` array or a sequence of 2-D arrays, as a list of 2-D arrays (views)."""
    if isinstance(arrays, np.ndarray):
        if arrays.ndim == 2:
            raise ValueError(
                f"{name}: got one 2-D array; pass a list of maps or a stacked N×H×W array"
            )
        if arrays.ndim != 3:
            raise ValueError(f"{name}: expected an N×H×W array, got shape {arrays.shape}")
        images = list(arrays)
    elif isinstance(arrays, Sequence) or hasattr(arrays, "__iter__"):
        images = [np.asarray(a) for a in arrays]
    else:
        raise ValueError(f"{name}: expected a sequence of 2-D arrays, got {type(arrays).__name__}")
    if not images:
        raise ValueError(f"{name}: no images given")
    for i, image in enumerate(images):
        if image.ndim != 2:
            raise ValueError(f"{name}[{i}]: expected a 2-D array, got shape {image.shape}")
    return images


def ranking_dtype(dtypes) -> np.dtype:
    """``float32`` when every dtype converts to it exactly, else ``float64``."""
    exact_in_float32 = {np.dtype(t) for t in (np.float16, np.float32, np.int8, np.uint8,
                                              np.int16, np.uint16, np.bool_)}
    for dtype in dtypes:
        if dtype.kind not in "biuf":
            raise ValueError(f"scores must be numeric, got dtype {dtype}")
    if all(np.dtype(d) in exact_in_float32 for d in dtypes):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def finite_range(scores: np.ndarray, where: str) -> tuple[float, float]:
    """``(min, max)`` of ``scores``; raise if they hold NaN or an infinity (``where`` names them)."""
    if scores.size == 0:
        return np.inf, -np.inf
    low, high = scores.min(), scores.max()
    if not (np.isfinite(low) and np.isfinite(high)):
        bad = "NaN" if np.isnan(scores).any() else "infinite"
        raise ValueError(f"{where}: scores contain {bad} values; replace them before evaluating")
    return float(low), float(high)


def as_binary(mask: np.ndarray, where: str) -> np.ndarray:
    """A boolean view/copy of a binary mask (any value > 0 is anomalous); raise if not binary."""
    mask = np.asarray(mask)
    if mask.dtype == np.bool_:
        return mask
    if mask.dtype.kind not in "iuf":
        raise ValueError(f"{where}: mask must be boolean or numeric, got dtype {mask.dtype}")
    if mask.size == 0:
        return mask.astype(bool)
    low, high = mask.min(), mask.max()
    if np.isnan(low) or np.isnan(high):
        raise ValueError(f"{where}: mask contains NaN")
    if low < 0:
        raise ValueError(f"{where}: mask has negative values (min {low}); expected 0/1 or 0/255")
    anomalous = mask > 0
    if high > 0 and not np.all(mask[anomalous] == high):
        raise ValueError(
            f"{where}: mask is not binary (values between 0 and {high}); threshold it first, "
            "e.g. mask > 127 for a resized 0/255 mask"
        )
    return anomalous


def check_pair(score_map: np.ndarray, mask: np.ndarray, index: int) -> np.ndarray:
    """Validate image ``index`` (map and mask); return its boolean mask."""
    where = f"image {index}"
    if score_map.size == 0:
        raise ValueError(f"{where}: empty score map (shape {score_map.shape})")
    if score_map.shape != mask.shape:
        raise ValueError(
            f"{where}: score map shape {score_map.shape} differs from mask shape {mask.shape}; "
            "resize the map to the mask's size"
        )
    return as_binary(mask, where)


def check_fpr_limit(fpr_limit: float) -> float:
    """``fpr_limit`` as a float in (0, 1], or raise."""
    limit = float(fpr_limit)
    if not 0.0 < limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    return limit


def check_labels(labels: np.ndarray, n: int, name: str = "labels") -> np.ndarray:
    """Flat binary labels of length ``n`` as bool (any value > 0 is anomalous), or raise."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size != n:
        raise ValueError(f"{name}: expected a 1-D array of length {n}, got shape {labels.shape}")
    return as_binary(labels, name)


def check_fpr_bounds(fpr_bounds) -> tuple[float, float]:
    """``fpr_bounds`` as ``(lower, upper)`` floats with ``0 < lower < upper <= 1``, or raise."""
    try:
        lower, upper = (float(bound) for bound in fpr_bounds)
    except (TypeError, ValueError):
        raise ValueError(f"fpr_bounds: expected two numbers (lower, upper), got {fpr_bounds!r}") from None
    if not 0.0 < lower < upper <= 1.0:
        raise ValueError(f"fpr_bounds: expected 0 < lower < upper <= 1, got ({lower}, {upper})")
    return lower, upper


def check_rate(value, name: str) -> float:
    """``value`` as a float in [0, 1], or raise naming the argument."""
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}") from None
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value}")
    return rate


def check_threshold(threshold, name: str = "threshold") -> float:
    """A finite threshold as a float, or raise."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {threshold!r}") from None
    if not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {threshold}")
    return value


def check_optional_threshold(threshold, name: str = "threshold") -> float | None:
    """``None`` (no threshold), or a finite threshold as a float; raise otherwise."""
    return None if threshold is None else check_threshold(threshold, name)


def check_image_scores(image_scores, n_images: int) -> np.ndarray:
    """One finite score per image as ``float64``, or raise."""
    scores = np.asarray(image_scores)
    if scores.shape != (n_images,):
        raise ValueError(
            f"image_scores: expected one score per image ({n_images}), got shape {scores.shape}"
        )
    if scores.dtype.kind not in "biuf":
        raise ValueError(f"image_scores: must be numeric, got dtype {scores.dtype}")
    finite_range(scores, "image_scores")
    return scores.astype(np.float64)
