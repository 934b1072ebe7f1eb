"""PaDiM (Defard et al., "PaDiM: a Patch Distribution Modeling Framework for Anomaly Detection
and Localization", ICPR 2021 workshops)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from detectors.common import BackboneDetector, BackboneParams, max_scored, to_image_maps
from pixeval import Prediction, ProgressCallback, param

#: The paper's number of kept channels for the backbones it used.
_PAPER_N_FEATURES = {"resnet18": 100, "wide_resnet50_2": 550}
_DEFAULT_N_FEATURES = 100
#: Positions whose covariances are computed (in float64) at once, to bound the memory of fit.
_POSITIONS_PER_STEP = 256


@dataclass
class PaDiMParams(BackboneParams):
    n_features: int | None = param(None, "Channels kept by the random channel subset; default: the paper's "
                                         "100 (resnet18) or 550 (wide_resnet50_2), else 100 (or all, if fewer).",
                                   min=1)
    covariance_eps: float = param(0.01, "Regularisation added to the diagonal of each covariance.", min=0.0)
    blur_sigma: float = param(4.0, "Sigma (pixels at the working resolution) of the Gaussian blur of the "
                                   "score map; 0 = none.", min=0.0)


class PaDiM(BackboneDetector):
    """PaDiM: a Gaussian per feature-map position; the score is the Mahalanobis distance to it.

    Definition (following the reference code):

    * Embedding: the backbone's three ``feature_layers`` (layer1-3 of a ResNet), the deeper two
      up-sampled (nearest) to the size of the first and concatenated; then a random subset of
      ``n_features`` channels, drawn once from ``seed``.
    * Fit: at each position ``p``, the mean ``μ_p`` and the unbiased covariance
      ``Σ_p + covariance_eps · I`` of the training embeddings (computed in float64), kept as
      ``μ_p`` and ``Σ_p⁻¹`` (float32).
    * Map: ``sqrt((x_p − μ_p)ᵀ Σ_p⁻¹ (x_p − μ_p))`` at each position, up-sampled bilinearly to
      ``resolution``, blurred with σ = ``blur_sigma``, resized to the image.
      Image score: the maximum of the map.

    Departures: inputs are resized to a square without the centre crop of the reference code;
    the maps are not min-max normalised over the test set (metrics do not need it); the inverse
    covariances are stored in float32 (the reference keeps float64 covariances).
    Memory: ``h·w·n_features²`` floats (164 MB for 100 channels on a 64×64 map).
    """

    Params = PaDiMParams

    def __init__(self, params=None, **overrides) -> None:
        super().__init__(params, **overrides)
        self.channels: torch.Tensor | None = None
        self.mean: torch.Tensor | None = None
        self.inv_covariance: torch.Tensor | None = None

    def _embed(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """``B×h·w×d``: concatenated layers at the first layer's size, channel subset applied."""
        first, *deeper = (features[name] for name in self.backbone.feature_layers)
        size = first.shape[-2:]
        embedding = torch.cat([first] + [F.interpolate(f, size=size, mode="nearest") for f in deeper], dim=1)
        embedding = embedding[:, self.channels]
        return embedding.flatten(2).transpose(1, 2)

    def _choose_channels(self) -> torch.Tensor:
        total = sum(self.backbone.channels[name] for name in self.backbone.feature_layers)
        wanted = self.params.n_features
        if wanted is None:
            wanted = _PAPER_N_FEATURES.get(self.params.backbone, min(_DEFAULT_N_FEATURES, total))
        if wanted > total:
            raise ValueError(f"n_features={wanted} exceeds the {total} channels of backbone "
                             f"{self.params.backbone!r}; choose at most {total}")
        generator = torch.Generator().manual_seed(self.params.seed)
        return torch.randperm(total, generator=generator)[:wanted]

    def fit(self, train_images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> "PaDiM":
        if len(train_images) < 2:
            raise ValueError(f"PaDiM needs at least 2 training images for its covariances, got {len(train_images)}")
        self.channels = self._choose_channels()
        embeddings = torch.cat([self._embed(f) for f in self.iter_features(train_images, None, progress)])
        n, positions, d = embeddings.shape
        regulariser = self.params.covariance_eps * torch.eye(d, dtype=torch.float64)
        self.mean = torch.empty(positions, d)
        self.inv_covariance = torch.empty(positions, d, d)
        for start in range(0, positions, _POSITIONS_PER_STEP):
            x = embeddings[:, start:start + _POSITIONS_PER_STEP].transpose(0, 1).double()   # positions × n × d
            mean = x.mean(dim=1, keepdim=True)
            centred = x - mean
            covariance = centred.transpose(1, 2) @ centred / (n - 1) + regulariser
            self.mean[start:start + len(x)] = mean[:, 0]
            self.inv_covariance[start:start + len(x)] = torch.linalg.inv(covariance)
        return self

    def predict(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> Prediction:
        if self.inv_covariance is None:
            raise self.not_fitted_error()
        maps = []
        for features in self.iter_features(images, None, progress):
            h, w = features[self.backbone.feature_layers[0]].shape[-2:]
            if h * w != len(self.mean):
                raise ValueError(f"PaDiM was fitted on {len(self.mean)} positions but these images give "
                                 f"{h}×{w}; use the resolution it was fitted with")
            delta = self._embed(features).transpose(0, 1) - self.mean[:, None]   # positions × batch × d
            squared = ((delta @ self.inv_covariance) * delta).sum(dim=2)
            maps.append(squared.clamp_min(0).sqrt().transpose(0, 1).reshape(-1, h, w))
        image_maps = to_image_maps(torch.cat(maps), images, self.params.resolution, self.params.blur_sigma)
        return max_scored(image_maps)

    def state_dict(self) -> dict[str, Any]:
        if self.inv_covariance is None:
            raise self.not_fitted_error()
        return {"channels": self.channels.numpy().copy(), "mean": self.mean.numpy().copy(),
                "inv_covariance": self.inv_covariance.numpy().copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.channels = torch.from_numpy(np.asarray(state["channels"], dtype=np.int64))
        self.mean = torch.from_numpy(np.ascontiguousarray(state["mean"], dtype=np.float32))
        self.inv_covariance = torch.from_numpy(np.ascontiguousarray(state["inv_covariance"], dtype=np.float32))
