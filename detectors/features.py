"""From images to backbone feature maps: validation, resizing, normalisation, batched extraction.

Images are ``uint8`` ``H×W×3`` RGB arrays of any size. :func:`images_to_tensor` resizes each to
``resolution × resolution`` (bilinear with antialiasing, like torchvision's ``Resize(antialias=True)``
that anomalib uses; the result stays float, it is not rounded back to ``uint8``), scales to [0, 1]
and normalises with the ImageNet mean and standard deviation. :func:`extract_features` runs a
:class:`~detectors.backbones.Backbone` over the images in batches under
``torch.inference_mode()``, with torch using every core this process may run on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from detectors.backbones import Backbone

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_images(images: Sequence[np.ndarray], what: str = "images") -> list[np.ndarray]:
    """``images`` as a list, after checking each is a ``uint8`` ``H×W×3`` array; raises
    ``ValueError`` naming the first offending image otherwise."""
    images = list(images)
    if not images:
        raise ValueError(f"{what}: no images given")
    for i, image in enumerate(images):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            desc = (f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray)
                    else type(image).__name__)
            raise ValueError(f"{what}[{i}] must be a uint8 H×W×3 RGB array, got a {desc}")
        if image.shape[0] < 1 or image.shape[1] < 1:
            raise ValueError(f"{what}[{i}] is empty (shape {image.shape})")
    return images


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``; ``ValueError`` if it is malformed or not available here."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a torch device; use 'cpu', 'cuda' or 'cuda:N'") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device here; use device='cpu'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} does not exist; this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    elif resolved.type != "cpu":
        raise ValueError(f"device {device!r} is not supported; use 'cpu', 'cuda' or 'cuda:N'")
    return resolved


def use_available_cores() -> int:
    """Let torch use every core this process may run on; return that number."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(cores)
    return cores


def to_unit(image: np.ndarray) -> torch.Tensor:
    """A ``uint8`` ``H×W×3`` image as a ``3×H×W`` float32 tensor in [0, 1] (read-only arrays
    welcome: the image is copied, as torch shares only writable memory)."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)


def resize_unit(x: torch.Tensor, size: int) -> torch.Tensor:
    """``x`` (``3×H×W``) resized to ``size × size``: bilinear, ``align_corners=False``,
    antialiased; returned as it is when it has that size already."""
    if x.shape[1:] == (size, size):
        return x
    return F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]


def unit_tensor(image: np.ndarray, size: int) -> torch.Tensor:
    """:func:`to_unit` then :func:`resize_unit`: the image as a ``3×size×size`` tensor in [0, 1],
    before normalisation (the stage at which training augmentations work)."""
    return resize_unit(to_unit(image), size)


def imagenet_normalise(x: torch.Tensor) -> torch.Tensor:
    """``(x − mean) / std`` with the ImageNet channel statistics, for ``3×H×W`` or ``N×3×H×W``."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def images_to_tensor(images: Sequence[np.ndarray], resolution: int) -> torch.Tensor:
    """``N×3×R×R`` float32 tensor of the images resized to ``R = resolution`` and ImageNet-normalised:
    :func:`unit_tensor` then :func:`imagenet_normalise` of each."""
    images = check_images(images)
    if resolution < 1:
        raise ValueError(f"resolution must be a positive number of pixels, got {resolution}")
    out = torch.empty(len(images), 3, resolution, resolution)
    for i, image in enumerate(images):
        out[i] = imagenet_normalise(unit_tensor(image, resolution))
    return out


def iter_features(backbone: Backbone, images: Sequence[np.ndarray], resolution: int,
                  layers: Sequence[str] | None = None, batch_size: int = 8, device: str | torch.device = "cpu",
                  progress: Callable[[str, int, int], None] | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Yield ``{layer: B×C×h×w}`` float32 CPU tensors, one dict per batch of ``batch_size``
    images in order, so callers can process features without holding all of them."""
    images = check_images(images)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    device = resolve_device(device)
    use_available_cores()
    backbone.to(device)
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = images_to_tensor(images[start:start + batch_size], resolution).to(device)
            features = backbone(batch, layers)
            yield {name: f.float().cpu() for name, f in features.items()}
            if progress is not None:
                progress("features", min(start + batch_size, len(images)), len(images))


def extract_features(backbone: Backbone, images: Sequence[np.ndarray], resolution: int,
                     layers: Sequence[str] | None = None, batch_size: int = 8, device: str | torch.device = "cpu",
                     progress: Callable[[str, int, int], None] | None = None) -> dict[str, torch.Tensor]:
    """``{layer: N×C×h×w}`` float32 CPU tensors of ``backbone`` on all ``images`` (resized to
    ``resolution``), for ``layers`` (default ``backbone.feature_layers``), computed in batches
    under ``torch.inference_mode()`` on ``device``. ``progress("features", done, total)`` is
    called after each batch."""
    batches = list(iter_features(backbone, images, resolution, layers, batch_size, device, progress))
    return {name: torch.cat([batch[name] for batch in batches]) for name in batches[0]}
