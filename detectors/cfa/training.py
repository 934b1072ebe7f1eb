"""Training CFA heads on cached features, and turning their scores into anomaly maps."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from detectors.cfa.loss import CFAHead


def train_heads(heads: Sequence[CFAHead], features: Sequence[torch.Tensor], weights: Sequence[float], *,
                epochs: int, batch_size: int = 4, lr: float = 1e-3, weight_decay: float = 5e-4, seed: int = 0,
                progress: Callable[[str, int, int], None] | None = None) -> list[float]:
    """Train ``heads`` jointly on ``Σ weights[i] · heads[i].loss(features[i][batch])``.

    As in the CFA code: AdamW (``lr``, ``weight_decay``, ``amsgrad=True``) over every trainable
    parameter (the descriptors and the radii; the banks are fixed), mini-batches of
    ``batch_size`` images in an order reshuffled each epoch (``torch.randperm`` from a generator
    seeded with ``seed``), an incomplete last batch dropped (when there are fewer images than
    ``batch_size``, the one batch holds them all). All heads see the same images in the same
    order, and AdamW updates each parameter from its own gradient only, so training heads
    together gives each the same result as training it alone with the same seed (up to Adam's
    ``eps`` when a weight is not 1). Returns the mean loss of each epoch.
    """
    n = len(features[0])
    if any(len(f) != n for f in features):
        raise ValueError("every head needs features for the same number of images")
    parameters = [p for head in heads for p in head.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, amsgrad=True)
    generator = torch.Generator().manual_seed(seed)
    n_batches = max(n // batch_size, 1)
    history = []
    for head in heads:
        head.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for b in range(n_batches):
            index = order[b * batch_size:(b + 1) * batch_size]
            loss = sum(w * head.loss(f[index].float()) for head, f, w in zip(heads, features, weights))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
        history.append(total / n_batches)
        if progress is not None:
            progress("epochs", epoch + 1, epochs)
    for head in heads:
        head.eval()
    return history


def score_maps(head: CFAHead, features: torch.Tensor, resolution: int, *, batch_size: int = 16) -> np.ndarray:
    """``N×R×R`` float32 raw score maps: the head's patch scores upsampled bilinearly
    (``align_corners=False``) to the network resolution ``R`` (not yet smoothed)."""
    out = np.empty((len(features), resolution, resolution), np.float32)
    for start in range(0, len(features), batch_size):
        s = head.score(features[start:start + batch_size].float())
        up = F.interpolate(s[:, None], size=(resolution, resolution), mode="bilinear", align_corners=False)
        out[start:start + len(s)] = up[:, 0].numpy()
    return out


def smooth(score_map: np.ndarray, sigma: float) -> np.ndarray:
    """The map blurred by ``scipy.ndimage.gaussian_filter(sigma)`` (mode 'reflect', truncate 4),
    as the CFA code does; ``sigma = 0`` returns it unchanged."""
    return gaussian_filter(score_map, sigma=sigma).astype(np.float32) if sigma > 0 else score_map


def to_image_size(score_map: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A square network-resolution map resized bilinearly to an image's ``(height, width)``."""
    import cv2

    h, w = shape[:2]
    if score_map.shape == (h, w):
        return score_map.astype(np.float32)
    return cv2.resize(score_map, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
