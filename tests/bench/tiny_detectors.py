"""Two tiny numpy-only detectors for the bench tests, registered on import.

Importable by name (``tiny_detectors``) when this folder is on ``sys.path``/``PYTHONPATH``, so
worker processes and Dask workers can load them through ``pixeval bench --import tiny_detectors``.

* ``tiny_zscore``: per-pixel colour z-score, max over channels, against the training pixels'
  per-channel mean and standard deviation; image score = the map's maximum.
* ``tiny_blur``: the same map smoothed with a Gaussian of ``sigma`` pixels.

``delay`` (seconds slept per predicted image) lets a test catch a run in the middle of a job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from pixeval import BaseParams, Detector, Prediction, param, register_detector


@dataclass
class ZScoreParams(BaseParams):
    delay: float = param(0.0, "Seconds to sleep per predicted image.", min=0.0)


@register_detector("tiny_zscore")
class ZScore(Detector):
    """Per-pixel colour z-score against the training pixels (a test detector)."""

    Params = ZScoreParams

    def fit(self, train_images, progress=None):
        pixels = np.concatenate([im.reshape(-1, 3).astype(np.float64) for im in train_images])
        self.mean = pixels.mean(axis=0)
        self.std = pixels.std(axis=0) + 1e-6
        if progress:
            progress("fit", 1, 1)
        return self

    def score_map(self, image: np.ndarray) -> np.ndarray:
        return (np.abs(image.astype(np.float64) - self.mean) / self.std).max(axis=2)

    def predict(self, images, progress=None):
        maps = []
        for i, image in enumerate(images):
            time.sleep(self.params.delay)
            maps.append(self.score_map(image).astype(np.float32))
            if progress:
                progress("predict", i + 1, len(images))
        return Prediction(maps, np.array([m.max() for m in maps], dtype=np.float64))

    def state_dict(self):
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state):
        self.mean, self.std = state["mean"], state["std"]


@dataclass
class BlurParams(ZScoreParams):
    sigma: float = param(2.0, "Gaussian smoothing of the z-score map, in pixels.", min=0.0)


@register_detector("tiny_blur")
class BlurredZScore(ZScore):
    """The colour z-score map smoothed with a Gaussian (a test detector)."""

    Params = BlurParams

    def score_map(self, image: np.ndarray) -> np.ndarray:
        return gaussian_filter(super().score_map(image), self.params.sigma)
