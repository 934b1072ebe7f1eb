"""Training CFA heads on cached features, and scoring with them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

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


def patch_scores(head: CFAHead, features: torch.Tensor, *, batch_size: int = 16) -> torch.Tensor:
    """``N×h×w`` patch scores of a head on cached features, computed in batches."""
    return torch.cat([head.score(features[i:i + batch_size].float()) for i in range(0, len(features), batch_size)])


def upsample(scores: torch.Tensor, resolution: int) -> np.ndarray:
    """``N×h×w`` patch scores upsampled bilinearly (``align_corners=False``) to ``N×R×R`` float32."""
    up = F.interpolate(scores[:, None].float(), size=(resolution, resolution), mode="bilinear", align_corners=False)
    return up[:, 0].numpy()
