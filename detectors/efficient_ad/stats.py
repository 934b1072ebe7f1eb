"""Exact statistics EfficientAD needs: per-channel moments over many feature maps (float64), an
exact upper quantile of a tensor without ``torch.quantile``'s 2^24-element limit, and the
quantile normalisation of anomaly maps with its guard against a zero spread."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

#: Quantiles of the held-out maps that set a map's normalisation (the reference's q_a and q_b).
MAP_QUANTILES = (0.9, 0.995)
#: A normalised map is ``SCALE · (map − q_a) / (q_b − q_a)``.
MAP_SCALE = 0.1
#: The smallest spread ``q_b − q_a`` allowed, relative to ``max(|q_b|, 1e-6)``.
RELATIVE_SPREAD_FLOOR = 1e-6


class ChannelMoments:
    """Per-channel mean and standard deviation over every pixel of every ``N×C×H×W`` batch
    added, accumulated in float64 with Chan's pairwise update. The standard deviation is the
    population one, ``sqrt(mean((x − mean)²))``: the reference's two passes (mean of per-image
    means, then mean of per-image mean squared deviations) give the same value whenever all
    images have the same size, as here."""

    def __init__(self) -> None:
        self.count = 0
        self.sum_of_squares: torch.Tensor | None = None
        self._mean: torch.Tensor | None = None

    def update(self, batch: torch.Tensor) -> None:
        x = batch.detach().to(torch.float64).transpose(0, 1).flatten(1)
        n = x.shape[1]
        mean = x.mean(dim=1)
        squares = ((x - mean[:, None]) ** 2).sum(dim=1)
        if self._mean is None:
            self.count, self._mean, self.sum_of_squares = n, mean, squares
            return
        total = self.count + n
        delta = mean - self._mean
        self._mean = self._mean + delta * (n / total)
        self.sum_of_squares = self.sum_of_squares + squares + delta ** 2 * (self.count * n / total)
        self.count = total

    @property
    def mean(self) -> torch.Tensor:
        """Per-channel mean (float64, CPU)."""
        if self._mean is None:
            raise ValueError("no data: call update first")
        return self._mean.cpu()

    @property
    def std(self) -> torch.Tensor:
        """Per-channel population standard deviation (float64, CPU)."""
        if self.sum_of_squares is None:
            raise ValueError("no data: call update first")
        return (self.sum_of_squares / self.count).sqrt().cpu()

    @property
    def divisor(self) -> torch.Tensor:
        """:attr:`std` with 1 for channels of zero spread (all values equal, e.g. a dead ReLU
        channel), so that normalising by it never divides by zero."""
        std = self.std
        return torch.where(std > 0, std, torch.ones_like(std))


def upper_quantile(x: torch.Tensor, q: float) -> torch.Tensor:
    """The ``q`` quantile of all values of ``x`` with linear interpolation between order
    statistics (``numpy.quantile``'s and ``torch.quantile``'s default), found from the largest
    ``n − floor(q·(n − 1))`` values only (cheap for q near 1, no size limit)."""
    flat = x.detach().reshape(-1)
    n = flat.numel()
    if n == 0:
        raise ValueError("the quantile of an empty tensor is undefined")
    position = q * (n - 1)
    below = min(int(math.floor(position)), n - 1)
    fraction = position - below
    largest = torch.topk(flat, n - below, largest=True, sorted=True).values
    lower = largest[-1]
    upper = largest[-2] if len(largest) > 1 else lower
    return lower + fraction * (upper - lower)


@dataclass(frozen=True)
class QuantileNormalisation:
    """``normalised = SCALE · (raw − start) / spread``: the reference's map normalisation with
    ``start`` = q_a and ``spread`` = q_b − q_a, the two quantiles of held-out normal maps.

    ``guarded`` records that q_b − q_a fell below ``RELATIVE_SPREAD_FLOOR · max(|q_b|, 1e-6)``
    (for example on constant maps) and that floor was used as the spread instead."""

    start: float
    end: float
    spread: float
    guarded: bool

    @classmethod
    def from_maps(cls, maps: np.ndarray) -> "QuantileNormalisation":
        """The normalisation whose quantiles are taken over every pixel of ``maps`` (float64,
        ``numpy.quantile``, linear interpolation)."""
        values = np.asarray(maps, dtype=np.float64).reshape(-1)
        start, end = (float(v) for v in np.quantile(values, MAP_QUANTILES))
        floor = RELATIVE_SPREAD_FLOOR * max(abs(end), 1e-6)
        spread = end - start
        if not spread >= floor:
            return cls(start, end, floor, True)
        return cls(start, end, spread, False)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return MAP_SCALE * (np.asarray(raw, dtype=np.float64) - self.start) / self.spread

    def as_dict(self) -> dict[str, float | bool]:
        return {"start": self.start, "end": self.end, "spread": self.spread, "guarded": self.guarded}
