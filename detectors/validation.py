"""Validation data made from normal images, and the fusion-weight search that uses it.

* **Held-out validation images** (:func:`hold_out`): a fraction of the given normal images
  (drawn with the seed, at least two), each kept as it is (normal) and painted ``per_image``
  times with a synthetic anomaly of ``family`` (:mod:`detectors.pseudo_anomalies`); the model
  is trained on the remaining images. The synthetic families are deliberately not
  ``pixeval.data.defects`` (which draws the synthetic-textures test defects), so a search never
  sees the test defect generator. How well each family ranks settings as the test set does is
  measured in benchmarks/README.md ("Sp-CFA: the evidence").
* **Weight search** (:func:`best_weights`): every weight vector on the simplex grid
  (:func:`simplex_grid`), scored by an objective on all validation pixels; the first best in
  lexicographic order of the weights wins ties.
* **Objectives**: ``aupr`` (pixel average precision), ``f1`` (pixel F1-max), ``auroc`` (pixel
  AUROC), computed by :mod:`pixeval.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from detectors.pseudo_anomalies import synthesize

OBJECTIVES = ("aupr", "f1", "auroc")


@dataclass
class ValidationSplit:
    """Training images to fit on, validation images with masks, and where they came from."""

    fit_images: list[np.ndarray]
    images: list[np.ndarray]
    masks: list[np.ndarray]
    source: str


def hold_out(images: Sequence[np.ndarray], fraction: float = 0.2, seed: int = 0, family: str = "mixed",
             per_image: int = 2) -> ValidationSplit:
    """Validation data from normal ``images`` alone (see the module docstring)."""
    images = list(images)
    if not 0 < fraction < 1:
        raise ValueError(f"holdout fraction {fraction} must be between 0 and 1")
    n_held = max(2, round(fraction * len(images)))
    if len(images) - n_held < 1:
        raise ValueError(f"{len(images)} training images are too few to hold out {n_held} for validation "
                         "and train on the rest")
    order = np.random.default_rng(seed).permutation(len(images))
    held, kept = sorted(order[:n_held]), sorted(order[n_held:])
    normal = [images[i] for i in held]
    painted, masks = synthesize(normal, family, seed, per_image)
    clean = [np.zeros(im.shape[:2], bool) for im in normal]
    return ValidationSplit([images[i] for i in kept], normal + painted, clean + masks,
                           f"{n_held} held-out training images, as they are and with {per_image} "
                           f"'{family}' synthetic anomalies each")


def simplex_grid(step: float = 0.05, free: Sequence[bool] = (True, True, True)) -> list[tuple[float, ...]]:
    """Every weight vector with non-negative entries summing to 1 in multiples of ``step``, in
    lexicographic order; entries where ``free`` is False are fixed at 0."""
    n = round(1.0 / step)
    if n < 1 or abs(n * step - 1.0) > 1e-9:
        raise ValueError(f"step={step} must divide 1 exactly (e.g. 0.05, 0.1, 0.25)")
    free = list(free)
    out = []

    def extend(prefix: list[int], left: int, i: int) -> None:
        if i == len(free) - 1:
            if left == 0 or free[i]:
                out.append(tuple(v / n for v in prefix + [left]))
            return
        for v in range(0, left + 1 if free[i] else 1):
            extend(prefix + [v], left - v, i + 1)

    extend([], n, 0)
    return out


def fuse(branch_maps: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """``Σ weights[name] · branch_maps[name]`` over the named branches (weights may be 0), float32."""
    total = None
    for name, weight in weights.items():
        term = np.float32(weight) * branch_maps[name]
        total = term if total is None else total + term
    return total.astype(np.float32)


def objective(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """The validation metric ``name`` as ``f(scores, labels)``."""
    from pixeval.metrics import auroc, average_precision, f1_max

    if name == "aupr":
        return average_precision
    if name == "f1":
        return lambda s, y: f1_max(s, y)[0]
    if name == "auroc":
        return auroc
    raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")


def best_weights(maps: Mapping[str, np.ndarray], labels: np.ndarray, step: float = 0.1,
                 free: Sequence[bool] | None = None, metric: str = "aupr") -> tuple[dict[str, float], float]:
    """The weight vector (one weight per entry of ``maps``, in its order) on the simplex grid that
    maximises ``metric`` of the fused flat maps against ``labels``, and that value."""
    score = objective(metric)
    names = list(maps)
    best, best_value = None, -np.inf
    for w in simplex_grid(step, free if free is not None else [True] * len(names)):
        value = float(score(fuse(maps, dict(zip(names, w))), labels))
        if value > best_value:
            best, best_value = dict(zip(names, w)), value
    return best, best_value
