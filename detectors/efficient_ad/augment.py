"""The image operations EfficientAD's training uses, on float tensors in [0, 1] (``3×H×W``).

They follow torchvision's definitions (the reference's transforms): grayscale is
``0.299 R + 0.587 G + 0.114 B`` on every channel; brightness multiplies by the factor; contrast
blends with the mean of the grayscale image; saturation blends with the grayscale image; each
result is clipped to [0, 1]. Random choices come from a ``numpy.random.Generator``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

_GREY_WEIGHTS = (0.299, 0.587, 0.114)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """The luma of a ``3×H×W`` image on all three channels."""
    r, g, b = _GREY_WEIGHTS
    luma = r * x[0] + g * x[1] + b * x[2]
    return luma.expand(3, -1, -1).clone()


def colour_jitter(x: torch.Tensor, rng: np.random.Generator, strength: float = 0.2) -> torch.Tensor:
    """The reference's autoencoder view: one of brightness, contrast or saturation (chosen
    uniformly), with a factor drawn from U[1 − strength, 1 + strength]."""
    kind = int(rng.integers(3))
    factor = float(rng.uniform(1.0 - strength, 1.0 + strength))
    if kind == 0:
        blended = x * factor
    elif kind == 1:
        blended = factor * x + (1.0 - factor) * grayscale(x)[0].mean()
    else:
        blended = factor * x + (1.0 - factor) * grayscale(x)
    return blended.clamp(0.0, 1.0)


def random_grayscale(x: torch.Tensor, rng: np.random.Generator, p: float) -> torch.Tensor:
    """``x`` turned grey with probability ``p``."""
    return grayscale(x) if rng.random() < p else x


def random_crop(x: torch.Tensor, rng: np.random.Generator, size: int) -> torch.Tensor:
    """A ``size × size`` window of ``x`` at a uniformly drawn position."""
    top = int(rng.integers(x.shape[1] - size + 1))
    left = int(rng.integers(x.shape[2] - size + 1))
    return x[:, top:top + size, left:left + size]


def random_resized_crop_box(height: int, width: int, rng: np.random.Generator,
                            scale: tuple[float, float] = (0.08, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of a random crop as torchvision's ``RandomResizedCrop`` draws it: an
    area fraction from ``scale`` and a log-uniform aspect ratio from ``ratio``, ten tries, else
    the largest centred crop within ``ratio``."""
    area = height * width
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(height - h + 1)), int(rng.integers(width - w + 1)), h, w
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif aspect > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w
