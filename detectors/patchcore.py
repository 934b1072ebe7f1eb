"""PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.random_projection import SparseRandomProjection, johnson_lindenstrauss_min_dim

from detectors.common import BackboneDetector, BackboneParams, to_image_maps
from detectors.features import resolve_device
from pixeval.registry import Prediction, ProgressCallback, param

#: Most float32 distances held at once by the nearest-neighbour search (64 MiB).
_DISTANCE_BUDGET = 1 << 24


@dataclass
class PatchCoreParams(BackboneParams):
    coreset_ratio: float = param(0.1, "Fraction of the training patch features kept in the memory bank "
                                      "(greedy k-center coreset).", min=1e-6, max=1.0)
    num_neighbors: int = param(9, "Size of the neighbourhood of the nearest memory entry used to "
                                  "re-weight the image score.", min=1)
    projection_eps: float = param(0.9, "Johnson-Lindenstrauss eps of the sparse random projection the "
                                       "coreset is selected on.", min=0.01, max=0.99)
    blur_sigma: float = param(4.0, "Sigma (pixels at the working resolution) of the Gaussian blur of the "
                                   "score map; 0 = none.", min=0.0)


class PatchCore(BackboneDetector):
    """PatchCore: nearest-neighbour distance to a coreset memory bank of locally aggregated patch features.

    Definition (following the paper and anomalib's implementation):

    * Patch features: the second and third of the backbone's ``feature_layers`` (layer2 and
      layer3 of a ResNet; ``blocks.4`` and ``blocks.10`` of EfficientNet-Lite0), each averaged
      over its 3×3 neighbourhood (``avg_pool2d(3, stride 1, padding 1)``), the deeper one
      up-sampled bilinearly to the size of the other and concatenated along channels.
    * Memory bank: the greedy k-center coreset of all training patch features, of size
      ``int(coreset_ratio · number of patches)`` (at least 1). It starts from a random patch and
      repeatedly adds the patch farthest (Euclidean) from the chosen ones; distances are measured
      after a sparse random projection to the Johnson-Lindenstrauss dimension for
      ``projection_eps`` (scikit-learn's ``SparseRandomProjection``), skipped when that
      dimension is not below the feature dimension, since it would not reduce anything then.
    * Patch score: the Euclidean distance to the nearest memory entry (exact search with
      ``torch.cdist`` in chunks of bounded memory). The map is up-sampled bilinearly to
      ``resolution``, blurred with σ = ``blur_sigma`` and resized to the image.
    * Image score (the paper's re-weighting): for the patch ``p*`` with the largest score ``s*``
      and its nearest memory entry ``m*``, ``s = (1 − exp‖p*−m*‖ / Σ_{m∈N(m*)} exp‖p*−m‖) · s*``,
      where ``N(m*)`` are the ``num_neighbors`` memory entries nearest to ``m*`` (``m*`` included).

    Departures from the references: no reduction of the feature dimension (the official code
    pools each layer to 1024 channels; anomalib, like this class, does not); the official code
    selects the coreset approximately (10 starting points, a dense projection to 128 dimensions)
    where this class runs the exact greedy algorithm; the score map is up-sampled bilinearly as in
    the official code (anomalib uses nearest-neighbour up-sampling); features are float32 and the
    input is resized to a square without a centre crop.
    """

    Params = PatchCoreParams

    def __init__(self, params=None, **overrides) -> None:
        super().__init__(params, **overrides)
        self.memory_bank: torch.Tensor | None = None

    # ------------------------------------------------------------------ features

    def _layers(self) -> tuple[str, str]:
        return tuple(self.backbone.feature_layers[1:])

    def _embed(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """``B×D×h×w`` locally aware patch features."""
        first, second = (F.avg_pool2d(features[name], 3, stride=1, padding=1) for name in self._layers())
        second = F.interpolate(second, size=first.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([first, second], dim=1)

    # ------------------------------------------------------------------ fit

    def fit(self, train_images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> "PatchCore":
        patches = []
        for features in self.iter_features(train_images, self._layers(), progress):
            embedding = self._embed(features)
            patches.append(embedding.permute(0, 2, 3, 1).reshape(-1, embedding.shape[1]))
        patches = torch.cat(patches)
        size = max(1, int(len(patches) * self.params.coreset_ratio))
        points = self._project(patches.numpy()).to(resolve_device(self.params.device))
        selected = greedy_coreset(points, size, self.params.seed, progress)
        self.memory_bank = patches[selected].contiguous()
        return self

    def _project(self, patches: np.ndarray) -> torch.Tensor:
        dim = johnson_lindenstrauss_min_dim(len(patches), eps=self.params.projection_eps)
        if dim >= patches.shape[1]:
            return torch.from_numpy(patches)
        projection = SparseRandomProjection(n_components=int(dim), random_state=self.params.seed)
        return torch.from_numpy(np.ascontiguousarray(projection.fit_transform(patches), dtype=np.float32))

    # ------------------------------------------------------------------ predict

    def predict(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> Prediction:
        if self.memory_bank is None:
            raise self.not_fitted_error()
        bank = self.memory_bank.to(resolve_device(self.params.device))
        maps, scores = [], []
        for features in self.iter_features(images, self._layers(), progress):
            embedding = self._embed(features)
            b, d, h, w = embedding.shape
            patches = embedding.permute(0, 2, 3, 1).reshape(b, h * w, d)
            distances, nearest = nearest_neighbors(patches.reshape(-1, d), bank, 1)
            distances, nearest = distances[:, 0].view(b, h * w), nearest[:, 0].view(b, h * w)
            scores.append(self._image_scores(patches, distances, nearest, bank))
            maps.append(distances.view(b, h, w))
        image_maps = to_image_maps(torch.cat(maps), images, self.params.resolution, self.params.blur_sigma)
        return Prediction(image_maps, torch.cat(scores).numpy().astype(np.float64))

    def _image_scores(self, patches: torch.Tensor, distances: torch.Tensor, nearest: torch.Tensor,
                      bank: torch.Tensor) -> torch.Tensor:
        """The paper's re-weighted image score of each image of the batch (CPU tensors in, out;
        ``bank`` is the memory bank on the search device)."""
        rows = torch.arange(len(patches))
        worst = distances.argmax(dim=1)
        worst_patch = patches[rows, worst]                       # p*
        worst_score = distances[rows, worst]                     # s* = ‖p* − m*‖
        anchor = self.memory_bank[nearest[rows, worst]]          # m*
        k = min(self.params.num_neighbors, len(bank))
        _, support = nearest_neighbors(anchor, bank, k)          # N(m*)
        support_distances = torch.linalg.vector_norm(worst_patch[:, None] - self.memory_bank[support], dim=2)
        weight = 1.0 - torch.softmax(support_distances, dim=1)[:, 0]
        return weight * worst_score

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        if self.memory_bank is None:
            raise self.not_fitted_error()
        return {"memory_bank": self.memory_bank.numpy().copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.memory_bank = torch.from_numpy(np.ascontiguousarray(state["memory_bank"], dtype=np.float32))


def greedy_coreset(points: torch.Tensor, size: int, seed: int,
                   progress: ProgressCallback | None = None) -> torch.Tensor:
    """Indices of ``size`` rows of ``points`` (``n×d``) chosen by greedy k-center selection: the
    first at random (``seed``), then each time the row whose squared Euclidean distance to its
    nearest chosen row is largest. Runs on the device of ``points``; costs ``size`` passes over
    ``points`` and ``O(n)`` memory; returns CPU indices."""
    n = len(points)
    if not 1 <= size <= n:
        raise ValueError(f"coreset size must be between 1 and the number of points ({n}), got {size}")
    points = points.float()
    squared_norms = (points * points).sum(dim=1)
    closest = torch.full((n,), math.inf, device=points.device)
    chosen = torch.empty(size, dtype=torch.long)
    current = int(torch.randint(n, (1,), generator=torch.Generator().manual_seed(seed)))
    step = max(1, size // 100)
    for i in range(size):
        chosen[i] = current
        distance = squared_norms - 2.0 * (points @ points[current]) + squared_norms[current]
        torch.minimum(closest, distance, out=closest)
        closest[current] = 0.0
        current = int(torch.argmax(closest))
        if progress is not None and ((i + 1) % step == 0 or i + 1 == size):
            progress("coreset", i + 1, size)
    return chosen


def nearest_neighbors(queries: torch.Tensor, bank: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances (``m×k``, ascending) and indices of the ``k`` rows of ``bank`` nearest to
    each row of ``queries``, computed with ``torch.cdist`` on the device of ``bank``, on chunks of
    queries so that at most about 2^24 distances are held at once; returns CPU tensors."""
    chunk = max(1, _DISTANCE_BUDGET // max(1, len(bank)))
    distances, indices = [], []
    for start in range(0, len(queries), chunk):
        d = torch.cdist(queries[start:start + chunk].to(bank.device), bank)
        values, index = torch.topk(d, k, dim=1, largest=False, sorted=True)
        distances.append(values.cpu())
        indices.append(index.cpu())
    return torch.cat(distances), torch.cat(indices)
