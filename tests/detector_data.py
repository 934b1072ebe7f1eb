"""What the detector tests fit on and score: small striped textures, and the built-in data."""

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


def defect_contrast(detector, category="grass", n_train=16, n_anomalous=6):
    """Fit ``detector`` on the first ``n_train`` training images of the built-in ``category``,
    score its first ``n_anomalous`` anomalous test images and return the mean score inside the
    defect masks and outside them (per image, then averaged)."""
    from pixeval.data.synthetic import generate_category

    items = list(generate_category(category))
    train = [image for split, _, image, _, _ in items if split == "train"][:n_train]
    anomalous = [(image, mask) for split, defect, image, mask, _ in items if defect != "good"][:n_anomalous]
    maps = detector.fit(train).predict([image for image, _ in anomalous]).maps
    inside = np.mean([m[mask].mean() for m, (_, mask) in zip(maps, anomalous)])
    outside = np.mean([m[~mask].mean() for m, (_, mask) in zip(maps, anomalous)])
    return inside, outside
