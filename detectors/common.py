"""What the backbone-based detectors share: their common hyperparameters, lazy backbone loading,
and the way a feature-level score map becomes a map at each input image's own size.

A detector built on :class:`BackboneDetector` scores an image at ``resolution × resolution``
(the image is resized to it before the backbone, see :mod:`detectors.features`). Its
feature-level map (``h×w``, the stride of a backbone layer) goes back to the image by
:func:`to_image_maps`: bilinear up-sampling to ``resolution × resolution`` (``align_corners=False``),
an optional Gaussian blur there (:func:`gaussian_blur`, the reference implementations' σ = 4),
then bilinear resizing to each image's own height and width. All maps are ``float32``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F

from detectors.backbones import BACKBONES, Backbone, load_backbone
from detectors.features import check_images, iter_features, resolve_device
from pixeval import BaseParams, Detector, Prediction, ProgressCallback, param


@dataclass
class BackboneParams(BaseParams):
    """Hyperparameters of every detector that stands on a pretrained backbone."""

    backbone: str = param("efficientnet_lite0", "Pretrained feature extractor (see detectors.backbones).",
                          choices=BACKBONES)
    weights: str | None = param(None, "Local state-dict file to load into the backbone instead of its "
                                      "default ImageNet weights.")
    resolution: int = param(256, "Images are resized to resolution × resolution pixels before the backbone.",
                            min=32, max=4096)
    batch_size: int = param(8, "Images per backbone forward pass: memory and speed (results differ only by "
                               "float rounding).", min=1)


def resolve_preset(params: Any, presets: Mapping[str, Mapping[str, Any]]) -> Any:
    """``params`` with every field left ``None`` filled from ``presets[params.preset]``.

    A preset names a setting of a detector's costly hyperparameters (epochs, bank size, ...); a
    value given explicitly always wins over the preset's."""
    unset = {k: v for k, v in presets[params.preset].items() if getattr(params, k) is None}
    return dataclasses.replace(params, **unset)


class BackboneDetector(Detector):
    """Base class of the detectors in this package that read backbone features.

    Subclasses set ``Params`` (a subclass of :class:`BackboneParams`), keep their fitted state in
    attributes, and use :meth:`features` / :meth:`iter_features` and :func:`to_image_maps`.
    """

    Params = BackboneParams

    def __init__(self, params=None, **overrides) -> None:
        super().__init__(params, **overrides)
        self._backbone: Backbone | None = None

    @property
    def backbone(self) -> Backbone:
        """The backbone, loaded on first use (on ``params.device``)."""
        if self._backbone is None:
            device = resolve_device(self.params.device)
            self._backbone = load_backbone(self.params.backbone, self.params.weights, device)
        return self._backbone

    def iter_features(self, images: Sequence[np.ndarray], layers: Sequence[str],
                      progress: ProgressCallback | None = None) -> Iterator[dict[str, torch.Tensor]]:
        """Per batch of ``params.batch_size`` images: ``{layer: B×C×h×w}`` float32 CPU tensors."""
        p = self.params
        return iter_features(self.backbone, images, p.resolution, layers, p.batch_size, p.device, progress)

    def not_fitted_error(self) -> RuntimeError:
        return RuntimeError(f"{type(self).__name__} is not fitted: call fit(train_images) "
                            "or load a saved detector first")


def gaussian_blur(maps: np.ndarray, sigma: float | tuple[float, float]) -> np.ndarray:
    """Each ``H×W`` map of the ``N×H×W`` stack smoothed by ``scipy.ndimage.gaussian_filter``
    (σ = ``sigma`` pixels, or ``(σ_rows, σ_cols)``, truncated at 4σ, mirror-reflected borders),
    exactly as the PaDiM, PatchCore and CFA reference code do; σ = 0 returns the maps unchanged."""
    if np.all(np.asarray(sigma) <= 0):
        return maps
    return scipy.ndimage.gaussian_filter(maps, sigma=sigma, axes=(1, 2), mode="reflect")


def resize_map(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An ``H×W`` map resized bilinearly (``align_corners=False``) to ``size``, float32."""
    if m.shape == tuple(size):
        return np.ascontiguousarray(m, dtype=np.float32)
    t = torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))[None, None]
    return F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)[0, 0].numpy()


def to_image_maps(maps: torch.Tensor, images: Sequence[np.ndarray], resolution: int,
                  sigma: float = 0.0) -> list[np.ndarray]:
    """Feature-level maps (``N×h×w``) → one ``float32`` map per image at that image's own size:
    bilinear up-sampling to ``resolution × resolution``, Gaussian blur with ``sigma`` (0: none),
    bilinear resizing to each image's height and width."""
    images = check_images(images)
    square = F.interpolate(maps[:, None].float(), size=(resolution, resolution), mode="bilinear",
                           align_corners=False)[:, 0]
    square = gaussian_blur(square.numpy().astype(np.float32), sigma)
    return image_sized(square, images)


def image_sized(square_maps: Iterable[np.ndarray], images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each map of ``square_maps`` (in the images' order, e.g. batch after batch) resized
    bilinearly to its image's height and width (:func:`resize_map`), ``float32``."""
    return [resize_map(m, image.shape[:2]) for m, image in zip(square_maps, images)]


def max_scored(maps: list[np.ndarray]) -> Prediction:
    """The :class:`~pixeval.Prediction` of ``maps`` whose image scores are the maps' maxima."""
    return Prediction(maps, np.array([m.max() for m in maps], dtype=np.float64))
