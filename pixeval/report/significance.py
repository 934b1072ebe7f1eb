"""Is one detector's lead over the next one in the ranking more than chance?

The test used when only per-cell numbers are kept: a two-sided **paired sign-flip (randomisation)
test** over cells (dataset × category × seed). Under the null hypothesis that the two detectors
are exchangeable, each cell's difference ``d_i = a_i − b_i`` is as likely to have either sign, so
the p-value is the share of the ``2^n`` sign patterns whose mean difference is at least as far
from 0 as the observed one (enumerated exactly for ``n ≤ 16``, else estimated from seeded random
patterns). Unlike a bootstrap over few cells, which is anti-conservative when ``n`` is small, it
is exact: with ``n`` cells the smallest possible p-value is ``2 / 2^n`` (0.25 for three cells), so
a short run can never claim significance it has not got.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

#: Cells up to which all sign patterns are enumerated.
EXACT_LIMIT = 16
#: Random sign patterns drawn beyond :data:`EXACT_LIMIT`.
MONTE_CARLO_DRAWS = 20000


@dataclass(frozen=True)
class PairedTest:
    """The outcome of comparing ``a`` with ``b`` on ``n`` paired cells."""

    mean_difference: float
    p_value: float
    n: int


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
