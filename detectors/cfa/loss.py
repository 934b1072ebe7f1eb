"""CFA's memory bank, its soft-boundary loss with a learned radius, and its softmin score.

Following the original code (``utils/cfa.py``, class ``DSVDD``), with ``phi`` the descriptor
output at ``P = h·w`` positions and ``C`` the memory bank of ``M`` centres:

* **Memory bank** (``bank="positions"``, the original): the per-position mean of the
  *untrained* descriptor's output over the training images, one centre per position
  (``M = h·w``); with ``gamma_c > 1`` compressed by K-means (scikit-learn, ``(h·w) // gamma_c``
  clusters, ``max_iter=3000``) run on those ``h·w`` mean vectors. Fixed afterwards (a buffer,
  never trained). ``bank="patches"`` is this package's addition for inputs whose positions mean
  nothing from one image to the next (superpixel mosaics, :mod:`detectors.sp_cfa`): K-means to
  the same ``(h·w) // gamma_c`` centres over the untrained descriptor's outputs at
  ``bank_sample`` positions drawn at random (with the seed) from all training images, so each
  centre is a typical patch wherever it occurs.
* **Distances**: ``d² = ‖phi‖² + ‖c‖² − 2 phi·c`` (squared L2), keep the ``K + J`` smallest.
* **Loss**: ``L_att = (1/nu) mean(relu(d²[:K] − r²))``, ``L_rep = (1/nu) mean(relu(r² − d²[J:] −
  alpha))``, means over batch × positions × neighbours, ``L = L_att + L_rep``. The repulsion
  slice starts at index ``J`` as in the original (it is "neighbours K+1..K+J" because K = J).
  ``r`` is an ``nn.Parameter`` (initial ``1e-5``) trained by the same optimiser, unlike
  anomalib, where it is a constant and ``L_rep`` is identically zero.
* **Score**: ``d = sqrt(d²)`` of the ``K`` nearest centres, ``s = softmin(d)[0] · d[0]``. The only
  departure from the original: ``d²`` is clamped at 0 before the square root, so rounding can
  never produce NaN (where the original would give NaN, this gives 0).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detectors.cfa.model import CoordConvDescriptor, seeded_descriptor

#: Memory-bank constructions (see the module docstring).
BANKS = ("positions", "patches")


def _kmeans_centres(vectors: torch.Tensor, n_clusters: int, seed: int) -> torch.Tensor:
    """K-means centres (scikit-learn, one initialisation, ``max_iter=3000``) of the rows of ``vectors``."""
    from sklearn.cluster import KMeans

    kmeans = KMeans(n_clusters=n_clusters, max_iter=3000, n_init=1, random_state=seed)
    return torch.from_numpy(kmeans.fit(vectors.double().numpy()).cluster_centers_.astype(np.float32))


def squared_distances(phi: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """``B×P×M`` squared L2 distances between the ``B×D×h×w`` descriptor map and the ``M×D`` bank."""
    flat = phi.flatten(2).transpose(1, 2)  # B × P × D
    return (flat.pow(2).sum(-1, keepdim=True) + bank.pow(2).sum(-1)[None, None, :]
            - 2.0 * flat @ bank.T)


class CFAHead(nn.Module):
    """One CFA branch on top of cached fused features: descriptor, memory bank and radius."""

    def __init__(self, in_channels: int, gamma_d: int = 1, *, seed: int = 0, K: int = 3, J: int = 3,
                 alpha: float = 0.1, nu: float = 1e-3, radius: float = 1e-5, coordconv: bool = True) -> None:
        super().__init__()
        if in_channels // gamma_d < 1:
            raise ValueError(f"gamma_d={gamma_d} leaves no descriptor channels out of {in_channels}")
        self.in_channels = in_channels
        self.descriptor: CoordConvDescriptor = seeded_descriptor(in_channels, in_channels // gamma_d, seed,
                                                                 coords=coordconv)
        self.r = nn.Parameter(torch.full((1,), float(radius)))
        self.register_buffer("bank", torch.zeros(0, in_channels // gamma_d))
        self.K, self.J, self.alpha, self.nu = K, J, alpha, nu

    @torch.no_grad()
    def init_bank(self, features: torch.Tensor, gamma_c: int = 1, *, batch_size: int = 16, seed: int = 0,
                  bank: str = "positions", bank_sample: int = 20_000) -> None:
        """Memory bank from the cached features of the training images (see the module docstring)."""
        if bank not in BANKS:
            raise ValueError(f"bank={bank!r}; choose one of {', '.join(BANKS)}")
        phis = (self.descriptor(features[start:start + batch_size].float())
                for start in range(0, len(features), batch_size))
        if bank == "positions":
            total = None
            for phi in phis:
                total = phi.sum(0) if total is None else total + phi.sum(0)
            vectors = (total / len(features)).flatten(1).T.contiguous()  # (h·w) × D
            n_centres = len(vectors) // gamma_c
        else:
            n, _, h, w = features.shape
            rng = np.random.default_rng(seed)
            picked = np.sort(rng.choice(n * h * w, size=min(bank_sample, n * h * w), replace=False))
            rows = []
            for start, phi in zip(range(0, n, batch_size), phis):
                flat = phi.permute(0, 2, 3, 1).reshape(-1, phi.shape[1])
                inside = picked[(picked >= start * h * w) & (picked < (start + len(phi)) * h * w)]
                rows.append(flat[torch.from_numpy(inside - start * h * w)])
            vectors = torch.cat(rows)
            n_centres = (h * w) // gamma_c
        if bank == "patches" or gamma_c > 1:
            vectors = _kmeans_centres(vectors, max(min(n_centres, len(vectors)), 1), seed)
        self.bank = vectors
        if len(self.bank) < self.K + self.J:
            raise ValueError(f"the memory bank has {len(self.bank)} centres, fewer than K + J = "
                             f"{self.K + self.J}; lower gamma_c or raise the resolution")

    def loss(self, features: torch.Tensor) -> torch.Tensor:
        """CFA's soft-boundary loss on a batch of cached features."""
        d2 = squared_distances(self.descriptor(features), self.bank)
        d2 = d2.topk(self.K + self.J, dim=-1, largest=False).values
        r2 = self.r.pow(2)
        attraction = F.relu(d2[..., :self.K] - r2).mean()
        repulsion = F.relu(r2 - d2[..., self.J:] - self.alpha).mean()
        return (attraction + repulsion) / self.nu

    @torch.no_grad()
    def score(self, features: torch.Tensor) -> torch.Tensor:
        """``B×h×w`` softmin-weighted distance to the nearest centre."""
        phi = self.descriptor(features)
        d = squared_distances(phi, self.bank).clamp_min(0).sqrt()
        d = d.topk(self.K, dim=-1, largest=False).values
        s = F.softmin(d, dim=-1)[..., 0] * d[..., 0]
        return s.reshape(phi.shape[0], *phi.shape[2:])
