"""Small striped, noisy RGB textures that the detector tests fit on and score."""

import numpy as np


def texture_images(n=6, seed=0, shape=(40, 48)):
    """``n`` uint8 ``H×W×3`` images: a sinusoidal stripe pattern with a random phase each, plus
    Gaussian noise (σ 12), drawn from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    out = []
    for _ in range(n):
        base = 120 + 60 * np.sin(x / 3 + rng.uniform(0, 6)) * np.cos(y / 4)
        out.append(np.clip(base[..., None] + rng.normal(0, 12, shape + (3,)), 0, 255).astype(np.uint8))
    return out
