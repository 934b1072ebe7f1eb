"""Choosing Sp-CFA's fusion weights and region sizes on validation data, never on the test set.

* **Validation data** (:func:`validation_split`). A dataset's labelled validation split when it
  holds at least one anomalous image with a mask (the model is then trained on all training
  images); otherwise a held-out fraction of the *training* images (drawn with the seed, at least
  two images), into each of which :func:`paste_anomalies` pastes one synthetic anomaly, and the
  model is trained on the remaining training images. The pasted anomalies are deliberately not
  those of ``pixeval.data.defects`` (which draws the synthetic-textures test defects), so the
  search does not see the test defect generator.
* **Search** (:class:`TuningRun`). One Sp-CFA model with a branch for the image and for every
  candidate region size is trained once (branches train independently, see
  :func:`detectors.cfa.training.train_heads`, so this equals training each configuration on
  its own); the standardised branch maps of the validation images are computed once. Every
  ``(rs_s, rs_b)`` pair and every weight vector on the simplex grid (``a1 + a2 + a3 = 1`` in
  steps of ``step``; ``a3 = 0`` without a big branch) is scored by the objective on all
  validation pixels at network resolution (masks resized there by nearest neighbour). Order of
  the search, which decides ties (the first best wins): ``rs_s`` ascending, ``rs_b`` with
  "none" first then ascending, weights in lexicographic order of ``(a1, a2, a3)``.
* **Objectives**: ``aupr`` (pixel average precision, the default), ``f1`` (pixel F1-max),
  ``auroc`` (pixel AUROC), computed by :mod:`pixeval.metrics`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from detectors.sp_cfa import SpCFA, fuse
from pixeval import ProgressCallback

OBJECTIVES = ("aupr", "f1", "auroc")


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


def paste_anomalies(images: Sequence[np.ndarray], seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One synthetic anomaly pasted into each image; returns (images, boolean masks).

    Region: an irregular blob, the pixels of a random ellipse (semi-axes 6-18% of the image
    side, random angle) where Gaussian-smoothed noise exceeds its median, kept as the largest
    connected component. Content: the same region of another image of the set (the next one,
    cyclically; the image itself if alone) rotated by 180 degrees, with a random gain in
    [0.5, 0.8] or [1.25, 1.6] and a random offset in [-40, 40] grey levels per colour channel,
    pasted without blending. Seeded, so the same inputs give the same anomalies.
    """
    rng = np.random.default_rng(seed)
    images = [np.asarray(im) for im in images]
    out_images, out_masks = [], []
    for i, image in enumerate(images):
        h, w = image.shape[:2]
        mask = _blob(h, w, rng)
        donor = cv2.resize(images[(i + 1) % len(images)], (w, h), interpolation=cv2.INTER_LINEAR)[::-1, ::-1]
        gain = rng.choice([rng.uniform(0.5, 0.8), rng.uniform(1.25, 1.6)])
        offset = rng.uniform(-40, 40, size=3)
        content = np.clip(donor.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)
        pasted = image.copy()
        pasted[mask] = content[mask]
        out_images.append(pasted)
        out_masks.append(mask)
    return out_images, out_masks


def _blob(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    side = min(h, w)
    cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
    ay, ax = rng.uniform(0.06, 0.18, size=2) * side
    theta = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(theta) + dy * np.sin(theta)) / ax
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) / ay
    ellipse = u ** 2 + v ** 2 <= 1.0
    noise = cv2.GaussianBlur(rng.normal(size=(h, w)).astype(np.float32), (0, 0), max(side / 40, 1.0))
    blob = ellipse & (noise > np.median(noise[ellipse]))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(blob.astype(np.uint8), connectivity=8)
    if count <= 1:
        return ellipse
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


@dataclass
class ValidationSplit:
    """Training images to fit on, validation images with masks, and where they came from."""

    fit_images: list[np.ndarray]
    images: list[np.ndarray]
    masks: list[np.ndarray]
    source: str


def validation_split(category: Any, holdout: float = 0.2, seed: int = 0) -> ValidationSplit:
    """Validation data for a :class:`pixeval.data.CategoryData` (see the module docstring)."""
    labelled = [s for s in category.validation if s.label == 1 and s.mask_path is not None]
    train = [s.load_image() for s in category.train]
    if labelled:
        val = list(category.validation)
        return ValidationSplit(train, [s.load_image() for s in val], [s.load_mask() for s in val],
                               f"labelled validation split ({len(val)} images)")
    if not 0 < holdout < 1:
        raise ValueError(f"holdout={holdout} must be a fraction between 0 and 1")
    n_held = max(2, round(holdout * len(train)))
    if len(train) - n_held < 1:
        raise ValueError(f"category {category.name!r} has {len(train)} training images, too few to hold "
                         f"out {n_held} for validation")
    order = np.random.default_rng(seed).permutation(len(train))
    held, kept = sorted(order[:n_held]), sorted(order[n_held:])
    images, masks = paste_anomalies([train[i] for i in held], seed)
    return ValidationSplit([train[i] for i in kept], images, masks,
                           f"anomalies pasted into {n_held} held-out training images")


@dataclass
class TuneResult:
    """The chosen values, their objective on the validation data, and every scored candidate."""

    a1: float
    a2: float
    a3: float
    rs_s: int
    rs_b: int | None
    objective: str
    value: float
    source: str
    candidates: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def params(self) -> dict[str, Any]:
        """The chosen Sp-CFA hyperparameters."""
        return {"a1": self.a1, "a2": self.a2, "a3": self.a3, "rs_s": self.rs_s, "rs_b": self.rs_b}


class TuningRun:
    """One trained multi-branch Sp-CFA and the validation maps that the searches score.

    ``params``: Sp-CFA hyperparameters (a dict or :class:`~detectors.sp_cfa.SpCFAParams`) for
    everything but the searched values; ``rs_s_grid`` / ``rs_b_grid``: candidate region sizes
    (``None`` in ``rs_b_grid`` = no big branch).
    """

    def __init__(self, params: Any, split: ValidationSplit, rs_s_grid: Sequence[int],
                 rs_b_grid: Sequence[int | None], *, progress: ProgressCallback | None = None) -> None:
        if not rs_s_grid or not rs_b_grid:
            raise ValueError("rs_s_grid and rs_b_grid need at least one value each")
        self.rs_s_grid = sorted(set(rs_s_grid))
        self.rs_b_grid = [None] * (None in rs_b_grid) + sorted({r for r in rs_b_grid if r is not None})
        self.split = split
        base = params if isinstance(params, dict) else dataclasses.asdict(params)
        self.model = SpCFA(**{**base, "table2": None})
        sizes = [None] + sorted(set(self.rs_s_grid) | {r for r in self.rs_b_grid if r is not None})
        self.branches = self.model.fit_branches(split.fit_images, sizes, [1.0] * len(sizes), progress)
        self.model.branches = self.branches
        self.maps = {name: m.ravel() for name, m in self.model.branch_maps(split.images, progress).items()}
        r = self.model.params.resolution
        self.labels = np.concatenate([cv2.resize(m.astype(np.uint8), (r, r), interpolation=cv2.INTER_NEAREST).ravel()
                                      for m in split.masks]).astype(bool)

    def best(self, objective: str = "aupr", step: float = 0.05, free: Sequence[bool] = (True, True, True),
             rs_s_grid: Sequence[int] | None = None, rs_b_grid: Sequence[int | None] | None = None) -> TuneResult:
        """The best candidate; ``free[i] = False`` fixes weight ``a{i+1}`` at 0 (ablations), and
        the grids can be narrowed to values this run was trained for."""
        score = _objective(objective)
        rs_s_grid = self.rs_s_grid if rs_s_grid is None else sorted(rs_s_grid)
        rs_b_grid = self.rs_b_grid if rs_b_grid is None else [r for r in self.rs_b_grid if r in set(rs_b_grid)]
        best, candidates = None, []
        for rs_s in rs_s_grid:
            for rs_b in rs_b_grid:
                if rs_b == rs_s:
                    continue
                mask = (free[0], free[1], free[2] and rs_b is not None)
                for a1, a2, a3 in simplex_grid(step, mask):
                    weights = {"org": a1, f"rs{rs_s}": a2}
                    if rs_b is not None:
                        weights[f"rs{rs_b}"] = a3
                    value = float(score(fuse(self.maps, weights), self.labels))
                    row = {"rs_s": rs_s, "rs_b": rs_b, "a1": a1, "a2": a2, "a3": a3, objective: value}
                    candidates.append(row)
                    if best is None or value > best[objective]:
                        best = row
        if best is None:
            raise ValueError("no candidate: every rs_b equals rs_s")
        return TuneResult(best["a1"], best["a2"], best["a3"], best["rs_s"], best["rs_b"], objective,
                          best[objective], self.split.source, candidates)

    def detector(self, result: TuneResult) -> SpCFA:
        """An Sp-CFA with the chosen values, using this run's trained branches (fitted on
        ``split.fit_images``), ready to predict."""
        chosen = SpCFA(**{**dataclasses.asdict(self.model.params), **result.params()})
        return chosen.use_branches(self.branches)


def _objective(name: str):
    from pixeval.metrics import auroc, average_precision, f1_max

    if name == "aupr":
        return average_precision
    if name == "f1":
        return lambda s, y: f1_max(s, y)[0]
    if name == "auroc":
        return auroc
    raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
