"""CFA's network parts: multi-level feature fusion, the feature cache and the CoordConv descriptor.

Following the original code (sungwool/CFA_for_anomaly_localization, ``utils/cfa.py``
``Descriptor`` and ``utils/coordconv.py``):

* each of the backbone's three feature maps is smoothed by a 3×3 mean (``avg_pool2d(3, 1, 1)``,
  zero padding counted), the second and third are upsampled bilinearly (``align_corners=False``)
  to the first one's size, and the three are concatenated along channels;
* the patch descriptor is a single 1×1 CoordConv: two coordinate channels (row and column
  coordinate, each ``linspace(-1, 1)`` over the map) appended to the fused features, then one
  ``Conv2d(D + 2, D // gamma_d, 1)`` with bias and PyTorch's default initialisation. No
  nonlinearity, no normalisation.

The fusion does not depend on anything trained, so it is computed once per image and cached
(:func:`fused_features`) instead of once per epoch; the descriptor is applied to the cache.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detectors.backbones import Backbone
from detectors.features import iter_features

#: Caches up to this many bytes stay in memory (float16); larger ones go to a temporary file.
DEFAULT_CACHE_BYTES = 2 * 1024 ** 3


def fuse_levels(features: Sequence[torch.Tensor]) -> torch.Tensor:
    """3×3-mean each level, upsample levels 2.. to level 1's size, concatenate: ``N×D×h×w``."""
    pooled = [F.avg_pool2d(f, 3, 1, 1) for f in features]
    size = pooled[0].shape[-2:]
    return torch.cat([pooled[0]] + [F.interpolate(p, size=size, mode="bilinear", align_corners=False)
                                    for p in pooled[1:]], dim=1)


def fused_features(backbone: Backbone, images: Sequence[np.ndarray], resolution: int, *,
                   batch_size: int = 8, device: str = "cpu", max_memory_bytes: int = DEFAULT_CACHE_BYTES,
                   progress: Callable[[str, int, int], None] | None = None) -> torch.Tensor:
    """The fused features of all ``images`` as one ``N×D×h×w`` float16 CPU tensor.

    Computed batch by batch, so only one batch of raw backbone features is alive at a time. When
    the cache would exceed ``max_memory_bytes`` it lives in an anonymous temporary file
    (``numpy.memmap``) instead of memory; the file disappears when the tensor is freed.
    """
    layers = backbone.feature_layers
    out: torch.Tensor | None = None
    start = 0
    for batch in iter_features(backbone, images, resolution, layers, batch_size, device, progress):
        fused = fuse_levels([batch[layer] for layer in layers]).half()
        if out is None:
            shape = (len(images),) + tuple(fused.shape[1:])
            out = _allocate(shape, max_memory_bytes)
        out[start:start + len(fused)] = fused
        start += len(fused)
    return out


def _allocate(shape: tuple[int, ...], max_memory_bytes: int) -> torch.Tensor:
    if int(np.prod(shape)) * 2 <= max_memory_bytes:
        return torch.empty(shape, dtype=torch.float16)
    return torch.from_numpy(np.memmap(tempfile.TemporaryFile(), dtype=np.float16, mode="w+", shape=shape))


class CoordConvDescriptor(nn.Module):
    """CFA's patch descriptor: ``Conv2d(in + 2, out, 1)`` over the input plus two coordinate
    channels (rows, then columns, each spanning [-1, 1]); with ``coords=False`` a plain
    ``Conv2d(in, out, 1)`` (for inputs whose positions mean nothing, such as superpixel mosaics)."""

    def __init__(self, in_channels: int, out_channels: int, coords: bool = True) -> None:
        super().__init__()
        self.coords = coords
        self.conv = nn.Conv2d(in_channels + 2 * coords, out_channels, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.coords:
            return self.conv(x)
        n, _, h, w = x.shape
        rows = torch.linspace(-1.0, 1.0, h, dtype=x.dtype, device=x.device) if h > 1 else x.new_zeros(1)
        cols = torch.linspace(-1.0, 1.0, w, dtype=x.dtype, device=x.device) if w > 1 else x.new_zeros(1)
        coords = torch.stack([rows[:, None].expand(h, w), cols[None, :].expand(h, w)])
        return self.conv(torch.cat([x, coords[None].expand(n, 2, h, w)], dim=1))


def seeded_descriptor(in_channels: int, out_channels: int, seed: int, coords: bool = True) -> CoordConvDescriptor:
    """A :class:`CoordConvDescriptor` whose default initialisation draws from ``seed`` only
    (the global torch random state is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CoordConvDescriptor(in_channels, out_channels, coords)
