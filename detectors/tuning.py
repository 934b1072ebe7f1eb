"""Choosing Sp-CFA's fusion weights and region sizes on validation data, never on the test set.

* **Validation data** (:func:`validation_split`). A dataset's labelled validation split when it
  holds at least one anomalous image with a mask (the model is then trained on all training
  images); otherwise held-out training images, clean and with synthetic anomalies of ``family``
  (:func:`detectors.validation.hold_out`), and the model is trained on the remaining ones.
* **Search** (:class:`TuningRun`). One Sp-CFA model with a branch for the image and for every
  candidate region size is trained once (branches train independently, see
  :func:`detectors.cfa.training.train_heads`, so this equals training each configuration on
  its own); the standardised branch maps of the validation images are computed once. Every
  ``(rs_s, rs_b)`` pair and every weight vector on the simplex grid (``a1 + a2 + a3 = 1`` in
  steps of ``step``; ``a3 = 0`` without a big branch) is scored by the objective on all
  validation pixels, at each image's own size. Order of the search, which decides ties (the
  first best wins): ``rs_s`` ascending, ``rs_b`` with "none" first then ascending, weights in
  lexicographic order of ``(a1, a2, a3)``.
* **Objectives**: those of :mod:`detectors.validation` (``aupr``, the default; ``f1``; ``auroc``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.sp_cfa import SpCFA
from detectors.validation import ValidationSplit, fuse, hold_out, simplex_grid
from detectors.validation import objective as objective_fn
from pixeval import ProgressCallback

__all__ = ["TuneResult", "TuningRun", "ValidationSplit", "simplex_grid", "validation_split"]


def validation_split(category: Any, holdout: float = 0.2, seed: int = 0, family: str = "mixed",
                     per_image: int = 2) -> ValidationSplit:
    """Validation data for a :class:`pixeval.data.CategoryData` (see the module docstring)."""
    labelled = [s for s in category.validation if s.label == 1 and s.mask_path is not None]
    train = [s.load_image() for s in category.train]
    if labelled:
        val = list(category.validation)
        return ValidationSplit(train, [s.load_image() for s in val], [s.load_mask() for s in val],
                               f"labelled validation split ({len(val)} images)")
    try:
        return hold_out(train, holdout, seed, family, per_image)
    except ValueError as exc:
        raise ValueError(f"category {category.name!r}: {exc}") from None


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
        self.maps = {name: np.concatenate([m.ravel() for m in maps])
                     for name, maps in self.model.branch_maps(split.images, progress).items()}
        self.labels = np.concatenate([np.asarray(m).ravel() for m in split.masks]).astype(bool)

    def best(self, objective: str = "aupr", step: float = 0.05, free: Sequence[bool] = (True, True, True),
             rs_s_grid: Sequence[int] | None = None, rs_b_grid: Sequence[int | None] | None = None) -> TuneResult:
        """The best candidate; ``free[i] = False`` fixes weight ``a{i+1}`` at 0 (ablations), and
        the grids can be narrowed to values this run was trained for."""
        score = objective_fn(objective)
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

