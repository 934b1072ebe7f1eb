"""DFM, deep feature modelling (Ahuja et al., "Probabilistic Modeling of Deep Features for
Out-of-Distribution and Adversarial Detection", 2019), as anomalib implements it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from detectors.common import BackboneDetector, BackboneParams, to_image_maps
from pixeval import Prediction, ProgressCallback, param


@dataclass
class DFMParams(BackboneParams):
    pooling_kernel_size: int = param(4, "Kernel (and stride) of the average pooling of the deepest feature "
                                        "layer before PCA.", min=1)
    pca_level: float = param(0.97, "Fraction of the training variance the kept principal components explain.",
                             min=1e-6, max=1.0)


class DFM(BackboneDetector):
    """DFM: PCA of pooled deep features; the score is the feature reconstruction error.

    Definition (anomalib's ``fre`` score, its default):

    * Feature vector of an image: the deepest of the backbone's ``feature_layers`` (layer3 of a
      ResNet, ``blocks.10`` of EfficientNet-Lite0), average-pooled with kernel and stride
      ``pooling_kernel_size`` and flattened (``C·h'·w'`` values; 112·4·4 for EfficientNet-Lite0
      at resolution 256).
    * Fit: mean ``μ`` and principal axes ``V`` (SVD in float64) of the training vectors, keeping
      the fewest leading components whose cumulative explained variance reaches ``pca_level``.
    * Residual ``r = (x − μ) − (x − μ) V Vᵀ``. Image score: ``Σ r²``. Map: ``Σ_c r²`` over channels
      at each pooled position (``h'×w'``), up-sampled bilinearly to ``resolution`` (no blur) and
      resized to the image.

    Departures: anomalib's default backbone is ResNet-50 (here the common backbone parameter);
    the Gaussian negative-log-likelihood score of the paper (anomalib ``score_type="nll"``,
    which gives no map) is not offered.
    """

    Params = DFMParams

    def __init__(self, params=None, **overrides) -> None:
        super().__init__(params, **overrides)
        self.mean: torch.Tensor | None = None
        self.components: torch.Tensor | None = None

    def _pooled(self, images: Sequence[np.ndarray], progress: ProgressCallback | None) -> tuple[torch.Tensor, tuple]:
        """``N×(C·h'·w')`` float64 pooled features and their ``(C, h', w')`` shape."""
        layer = self.backbone.feature_layers[-1]
        pooled = [F.avg_pool2d(f[layer], self.params.pooling_kernel_size)
                  for f in self.iter_features(images, [layer], progress)]
        pooled = torch.cat(pooled)
        return pooled.flatten(1).double(), tuple(pooled.shape[1:])

    def fit(self, train_images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> "DFM":
        if len(train_images) < 2:
            raise ValueError(f"DFM needs at least 2 training images for its PCA, got {len(train_images)}")
        x, _ = self._pooled(train_images, progress)
        mean = x.mean(dim=0)
        _, singular, vh = torch.linalg.svd(x - mean, full_matrices=False)
        variance = singular ** 2
        explained = torch.cumsum(variance, 0) / variance.sum()
        kept = int(torch.searchsorted(explained, torch.tensor([self.params.pca_level], dtype=torch.float64))) + 1
        self.mean, self.components = mean, vh[:min(kept, len(vh))].T.contiguous()
        return self

    def predict(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> Prediction:
        if self.components is None:
            raise self.not_fitted_error()
        x, shape = self._pooled(images, progress)
        if x.shape[1] != len(self.mean):
            raise ValueError(f"DFM was fitted on {len(self.mean)} features but these images give {x.shape[1]}; "
                             "use the resolution it was fitted with")
        centred = x - self.mean
        residual = centred - (centred @ self.components) @ self.components.T
        squared = residual ** 2
        maps = squared.view(len(x), *shape).sum(dim=1)
        image_maps = to_image_maps(maps.float(), images, self.params.resolution)
        return Prediction(image_maps, squared.sum(dim=1).numpy())

    def state_dict(self) -> dict[str, Any]:
        if self.components is None:
            raise self.not_fitted_error()
        return {"mean": self.mean.numpy().copy(), "components": self.components.numpy().copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = torch.from_numpy(np.ascontiguousarray(state["mean"], dtype=np.float64))
        self.components = torch.from_numpy(np.ascontiguousarray(state["components"], dtype=np.float64))
