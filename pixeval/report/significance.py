"""Is one detector's lead over the next one in the ranking more than chance?

Two tests, over the cells (dataset × category × seed) both detectors have:

The **paired bootstrap over test images** (:func:`bootstrap_test`), used when every cell has
bootstrap samples (each bench job keeps its metrics on B resamples of its test images, see
:mod:`pixeval.bench.runner`). All detectors and seeds of one category are scored on the same
resamples, drawn independently per category, so resample ``b`` of the whole table is one
stratified bootstrap resample (each category's images resampled within the category). Its
difference is averaged as the table averages a score: ``D_b`` = mean over seeds of the mean over
(dataset, category) cells of ``A_b − B_b``. The p-value is the two-sided bootstrap p-value of
:class:`~pixeval.metrics.PairedComparison`, ``min(1, 2 (1 + #{D_b ≤ 0 or D_b ≥ 0, the smaller})
/ (1 + B))``, so never below ``2 / (B + 1)``; resamples in which the metric is undefined for some
cell are left out. It measures how much the ranking could change with other test images of the
same categories; the categories and the trained models (seeds) are held fixed.

The fallback when only per-cell numbers are kept (runs with ``--bootstrap 0``, runs made before
the samples were kept, or results without them): a two-sided **paired sign-flip (randomisation) test** over cells
(:func:`sign_flip_test`). Under the null hypothesis that the two detectors are exchangeable, each
cell's difference ``d_i = a_i − b_i`` is as likely to have either sign, so the p-value is the
share of the ``2^n`` sign patterns whose mean difference is at least as far from 0 as the
observed one (enumerated exactly for ``n ≤ 16``, else estimated from seeded random patterns).
Unlike a bootstrap over few cells, which is anti-conservative when ``n`` is small, it is exact:
with ``n`` cells the smallest possible p-value is ``2 / 2^n`` (0.25 for three cells), so a short
run can never claim significance it has not got.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from pixeval.metrics.bootstrap import compare

#: Names of the two tests, as :attr:`PairedTest.method` gives them.
BOOTSTRAP, SIGN_FLIP = "bootstrap", "sign-flip"
#: Cells up to which all sign patterns are enumerated.
EXACT_LIMIT = 16
#: Random sign patterns drawn beyond :data:`EXACT_LIMIT`.
MONTE_CARLO_DRAWS = 20000


@dataclass(frozen=True)
class PairedTest:
    """The outcome of comparing ``a`` with ``b`` on ``n`` paired cells by test ``method``
    (``n_resamples``: the bootstrap resamples used, 0 for the sign-flip test)."""

    mean_difference: float
    p_value: float
    n: int
    method: str = SIGN_FLIP
    n_resamples: int = 0


def sign_flip_test(a: np.ndarray, b: np.ndarray, seed: int = 0) -> PairedTest:
    """Two-sided paired sign-flip test of mean(a − b) = 0 (see the module docstring). Pairs with a
    NaN on either side are dropped; with no pair left the p-value is NaN."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values must be two 1-D arrays of one length, got {a.shape} and {b.shape}")
    d = (a - b)[~(np.isnan(a) | np.isnan(b))]
    n = d.size
    if n == 0:
        return PairedTest(float("nan"), float("nan"), 0)
    observed = abs(d.mean())
    if n <= EXACT_LIMIT:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        p = float(np.mean(np.abs(signs @ d) / n >= observed - 1e-12 * max(1.0, observed)))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(MONTE_CARLO_DRAWS, n))
        hits = int(np.sum(np.abs(signs @ d) / n >= observed - 1e-12 * max(1.0, observed)))
        p = (hits + 1) / (MONTE_CARLO_DRAWS + 1)
    return PairedTest(float(d.mean()), p, n)


def smallest_p_value(n: int) -> float:
    """The smallest p-value :func:`sign_flip_test` can return for ``n`` non-zero differences."""
    return 2.0 / 2.0 ** n if n <= EXACT_LIMIT else 1.0 / (MONTE_CARLO_DRAWS + 1)


def bootstrap_test(a: np.ndarray, b: np.ndarray, samples_a: np.ndarray, samples_b: np.ndarray,
                   seeds: np.ndarray) -> PairedTest:
    """Two-sided paired bootstrap test of ``D = 0`` (see the module docstring).

    ``a``, ``b``: the two detectors' values on ``n`` cells; ``samples_a``, ``samples_b``:
    ``(n, B)``, their values on the B resamples of each cell's test images (paired: the same
    resamples on both sides); ``seeds``: each cell's seed. Cells with a NaN value on either side
    are dropped; with none left the p-value is NaN. ``mean_difference`` is ``D`` on all images.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = ~(np.isnan(a) | np.isnan(b))
    if not keep.any():
        return PairedTest(float("nan"), float("nan"), 0, BOOTSTRAP)
    seeds = np.asarray(seeds)[keep]
    value_a, value_b = seed_average(a[keep], seeds), seed_average(b[keep], seeds)
    comparison = compare("", value_a, value_b, seed_average(samples_a[keep], seeds),
                         seed_average(samples_b[keep], seeds), confidence=0.95)
    return PairedTest(float(comparison.difference), comparison.p_value, int(keep.sum()), BOOTSTRAP,
                      comparison.n_resamples)


def seed_average(values: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The table's average of per-cell ``values`` (along the first axis): per seed the mean over
    its cells, then the mean over seeds. A NaN in a column makes that column's average NaN."""
    return np.mean([values[seeds == seed].mean(axis=0) for seed in np.unique(seeds)], axis=0)


def smallest_bootstrap_p_value(n_resamples: int) -> float:
    """The smallest p-value :func:`bootstrap_test` can return with ``n_resamples`` resamples."""
    return 2.0 / (n_resamples + 1)
