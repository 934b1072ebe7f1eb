"""PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.random_projection import SparseRandomProjection, johnson_lindenstrauss_min_dim

from detectors.common import BackboneDetector, BackboneParams, to_image_maps
from detectors.features import resolve_device
from pixeval import Prediction, ProgressCallback, param

#: Most float32 distances held at once by the nearest-neighbour search (64 MiB).
_DISTANCE_BUDGET = 1 << 24
#: Principal coordinates of the lower bound that spares most distances in the greedy coreset.
_BOUND_DIMS = 64
#: Rows per block of the gathered matrix-vector products of the greedy coreset (see _exact_dots).
_ROW_BLOCK = 64
#: Most rows gathered at once by the greedy coreset (a multiple of _ROW_BLOCK; 1.2 MB at d = 152).
_GATHER_ROWS = 2048


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
      On the CPU the selection skips every distance that a lower bound (the distance along the
      64 leading principal axes, with a margin for float32 rounding) shows cannot change it, and
      computes the others as the same float32 numbers, so it selects the same patches as the
      plain loop (see :func:`greedy_coreset`).
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
    nearest chosen row is largest (the first such row on ties), distances being computed in
    float32 as ``‖p‖² − 2 p·c + ‖c‖²``. Returns CPU indices.

    On the CPU, :func:`_farthest_points_pruned` computes only the distances that can change the
    selection and selects exactly the rows that :func:`_farthest_points_dense` (one full pass
    over ``points`` per chosen row) selects; other devices run the dense loop."""
    n = len(points)
    if not 1 <= size <= n:
        raise ValueError(f"coreset size must be between 1 and the number of points ({n}), got {size}")
    points = points.float().contiguous()
    first = int(torch.randint(n, (1,), generator=torch.Generator().manual_seed(seed)))
    farthest_points = _farthest_points_pruned if points.device.type == "cpu" else _farthest_points_dense
    chosen = torch.empty(size, dtype=torch.long)
    step = max(1, size // 100)
    for i, current in enumerate(itertools.islice(farthest_points(points, first), size)):
        chosen[i] = current
        if progress is not None and ((i + 1) % step == 0 or i + 1 == size):
            progress("coreset", i + 1, size)
    return chosen


def _farthest_points_dense(points: torch.Tensor, first: int) -> Iterator[int]:
    """The greedy k-center sequence of rows of ``points`` from ``first``: after each yielded row,
    one pass ``points @ points[current]`` updates every row's squared distance to its nearest
    chosen row, and the next row is the first with the largest."""
    squared_norms = (points * points).sum(dim=1)
    closest = torch.full((len(points),), math.inf, device=points.device)
    current = first
    while True:
        yield current
        distance = squared_norms - 2.0 * (points @ points[current]) + squared_norms[current]
        torch.minimum(closest, distance, out=closest)
        closest[current] = 0.0
        current = int(torch.argmax(closest))


def _farthest_points_pruned(points: torch.Tensor, first: int) -> Iterator[int]:
    """The sequence of :func:`_farthest_points_dense` (CPU tensors), computing the distance to the
    new row ``x`` only for the candidates of :func:`_candidates`: for the other rows the
    principal-coordinate bound proves that the float32 distance is not below the current nearest
    one, so the minimum would not change. The candidates' distances are the same float32 numbers
    as in the dense pass (see :func:`_exact_dots`), hence the same selection."""
    n, d = points.shape
    squared_norms = (points * points).sum(dim=1)
    dims = min(d, _BOUND_DIMS)
    coordinates = _principal_coordinates(points, dims)
    coordinate_norms = (coordinates * coordinates).sum(axis=1)
    slack = np.float32(8 * (d + dims + 8) * 2.0 ** -24 * float(squared_norms.max()))
    closest = torch.full((n,), math.inf)
    body = n - n % _ROW_BLOCK
    candidates = np.empty(body, dtype=np.int64)
    buffer = torch.empty(_GATHER_ROWS + _ROW_BLOCK, d)
    current = first
    while True:
        yield current
        count = _candidates(coordinates, coordinate_norms, current, closest.numpy(), slack, body, candidates)
        examined = torch.from_numpy(candidates[:count])
        rows = torch.cat([examined, torch.arange(body, n)])
        dots = _exact_dots(points, examined, n - body, current, buffer)
        distance = squared_norms[rows] - 2.0 * dots + squared_norms[current]
        closest[rows] = torch.minimum(closest[rows], distance)
        closest[current] = 0.0
        current = int(torch.argmax(closest))


def _principal_coordinates(points: torch.Tensor, dims: int) -> np.ndarray:
    """``n×dims`` float32 coordinates of the rows of ``points`` along the ``dims`` leading
    principal axes (eigenvectors of the float64 scatter matrix of the centred rows), not centred:
    for rows ``p``, ``x`` the squared distance of their coordinates is at most ``‖p − x‖²``."""
    values = points.double()
    centred = values - values.mean(dim=0)
    _, axes = torch.linalg.eigh(centred.T @ centred)
    return np.ascontiguousarray((values @ axes[:, -dims:]).numpy(), dtype=np.float32)


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _candidates(coordinates, coordinate_norms, x, closest, slack, stop, out):
    """Writes to ``out`` the rows ``i < stop`` (ascending) whose lower bound of the squared
    distance to row ``x``, ``‖q_i‖² − 2 q_i·q_x + ‖q_x‖²`` on the principal coordinates ``q``, is
    below ``closest[i] + slack``; returns their number.

    ``slack`` is ``8 (d + dims + 8) 2⁻²⁴ max‖p‖²``: at least twice the worst-case float32 rounding
    error of the exact distance (``(4d + 8) 2⁻²⁴ max‖p‖²``), of this bound
    (``(4 dims + 17) 2⁻²⁴ max‖p‖²``) and of the sum ``closest[i] + slack``, so that a row left out
    has a float32 distance to ``x`` of at least ``closest[i]``."""
    count = 0
    for i in range(stop):
        dot = np.float32(0.0)
        for t in range(coordinates.shape[1]):
            dot += coordinates[i, t] * coordinates[x, t]
        if coordinate_norms[i] - 2 * dot + coordinate_norms[x] < closest[i] + slack:
            out[count] = i
            count += 1
    return count


def _exact_dots(points: torch.Tensor, rows: torch.Tensor, tail: int, current: int,
                buffer: torch.Tensor) -> torch.Tensor:
    """``p·points[current]`` for the rows ``p`` of ``points`` listed in ``rows`` (all before the
    last ``tail = n mod 64`` rows) and then for the last ``tail`` rows, as the same float32 numbers
    that the full product ``points @ points[current]`` gives.

    The BLAS kernel (MKL) computes a row of a matrix-vector product the same way wherever it stands,
    except the last ``r mod 4`` rows of an ``r``-row matrix. So the rows are gathered (into
    ``buffer``, at most 2,048 at a time) in whole blocks of 64 (padded with row 0, whose products
    are dropped), and the last gathered matrix ends with the last ``tail`` rows of ``points``, which
    are thus placed as in the full product."""
    n = len(points)
    parts = torch.split(rows, _GATHER_ROWS) or (rows,)
    dots = []
    for k, part in enumerate(parts):
        gathered = part.new_zeros(_ROW_BLOCK * math.ceil(len(part) / _ROW_BLOCK))
        gathered[:len(part)] = part
        if k == len(parts) - 1:
            gathered = torch.cat([gathered, torch.arange(n - tail, n)])
        product = torch.index_select(points, 0, gathered, out=buffer[:len(gathered)]) @ points[current]
        dots.append(product[:len(part)])
    dots.append(product[len(product) - tail:])
    return torch.cat(dots)


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
