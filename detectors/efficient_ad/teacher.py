"""EfficientAD's teacher: the published weights loaded from a file, or an offline substitute
distilled here from a pretrained backbone on an offline image pool.

**Published teacher** (``load_teacher_weights``): a state dict of the reference's PDN teacher
(``teacher_small.pth`` / ``teacher_medium.pth`` of nelson1425/EfficientAD, keys ``0.weight`` …,
or anomalib's ``pretrained_teacher_*.pth``, keys ``conv1.weight`` …), loaded into the unpadded PDN.

**Distilled substitute** (``distil_teacher``), the reference's ``pretraining.py`` recipe with two
ingredients replaced (seed-rows §5.5, option 1). As the reference's teacher, it never sees the
images of the category it will judge, so one teacher serves every category: ``cached_teacher``
distils it once per recipe and keeps it in the user cache (:func:`teacher_cache_path`).

* Target (:func:`descriptor_targets`): the backbone's two deeper feature layers (WRN101 layer2
  and layer3 in the reference; EfficientNet-Lite0 blocks.4 and blocks.10, the same strides 8
  and 16, by default) on the image at twice the resolution. Each level is unfolded into 3×3
  neighbourhoods (stride 1, zero padding 1; a vector ordered channel-major, then row, then
  column), bilinearly resized (``align_corners=False``) to the PDN's padded output grid, each
  position's vector adaptive-average-pooled to 1024 values (for fewer than 1024 values this
  repeats entries); the two levels are concatenated and pooled again to 384. The target is
  normalised per channel with the mean and standard deviation over ``norm_samples`` pool
  samples (the reference: 10 000 ImageNet images).
* Pool (:func:`offline_photographs`): the natural photographs bundled with scikit-image and
  scikit-learn's two sample images (ImageNet in the reference).
  scikit-image's ``gravel``, ``grass`` and ``brick`` are left out: pixeval's built-in dataset is
  cut from them. Samples are random resized crops (torchvision's default scale 0.08-1 and ratio
  3/4-4/3), flipped left-right with probability 0.5, grey with probability 0.1 (the reference's
  RandomGrayscale, applied identically to both views).
* The student of the distillation is the padded PDN on the image at the resolution, trained
  with the mean squared error, Adam (lr 1e-4, weight decay 1e-5), ``batch`` samples per
  iteration, as the reference.

Cost per iteration: ``batch`` forward and backward passes of the padded PDN at the resolution
(18.8 GMACs forward at 256 px for PDN-S, about 1 s per image on 2 cores) and ``batch`` backbone
passes at twice the resolution (1.27 GMACs for Lite0 at 512 px).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detectors.backbones import Backbone
from detectors.efficient_ad.augment import random_grayscale, random_resized_crop_box
from detectors.efficient_ad.networks import TEACHER_CHANNELS, patch_description_network, pdn_output_size
from detectors.efficient_ad.stats import ChannelMoments
from detectors.features import imagenet_normalise, resize_unit, to_unit
from pixeval import ParamError
from pixeval.data.synthetic import cache_root

#: scikit-image photographs in the pool (``skimage.data.<name>()``); the stereo pair of
#: ``stereo_motorcycle`` is added as ``motorcycle_left`` and ``motorcycle_right``.
SKIMAGE_PHOTOGRAPHS = ("astronaut", "camera", "cell", "chelsea", "clock", "coffee", "coins", "hubble_deep_field",
                       "immunohistochemistry", "moon", "retina", "rocket")
#: scikit-image images never put in the pool: the built-in synthetic-textures dataset is cut from them.
EXCLUDED_PHOTOGRAPHS = ("gravel", "grass", "brick")
#: Per-position length of each level's pooled descriptor (the reference's PatchCore preprocessing).
LEVEL_DIM = 1024
#: Probability that a distillation sample is grey (both views alike), as the reference.
DISTILLATION_GRAYSCALE = 0.1
#: anomalib's names of the PDN convolutions → their index in the reference's ``nn.Sequential``.
_ANOMALIB_CONV_INDEX = {"small": {"conv1": 0, "conv2": 3, "conv3": 6, "conv4": 8},
                        "medium": {"conv1": 0, "conv2": 3, "conv3": 6, "conv4": 8, "conv5": 10, "conv6": 12}}


def _rgb(image: np.ndarray) -> np.ndarray:
    """A grey or RGB(A) ``uint8`` image as a read-only ``H×W×3`` array."""
    image = np.asarray(image)
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    rgb.setflags(write=False)
    return rgb


@functools.lru_cache(maxsize=1)
def offline_photographs() -> tuple[tuple[str, np.ndarray], ...]:
    """``(name, uint8 H×W×3 image)`` of every photograph of the offline pool: the
    :data:`SKIMAGE_PHOTOGRAPHS`, scikit-image's stereo motorcycle pair and scikit-learn's sample
    images (``china``, ``flower``); 16 images, all shipped inside the installed packages."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = [(f"skimage.{name}", _rgb(getattr(skimage.data, name)())) for name in SKIMAGE_PHOTOGRAPHS]
    left, right, _ = skimage.data.stereo_motorcycle()
    photos += [("skimage.motorcycle_left", _rgb(left)), ("skimage.motorcycle_right", _rgb(right))]
    samples = load_sample_images()
    photos += [(f"sklearn.{Path(f).stem}", _rgb(image)) for f, image in zip(samples.filenames, samples.images)]
    return tuple(photos)


# --------------------------------------------------------------------------- target

def adaptive_pool_vectors(vectors: torch.Tensor, length: int) -> torch.Tensor:
    """``M×D`` vectors adaptive-average-pooled to ``M×length`` (bin ``i`` averages entries
    ``floor(i·D/length)`` … ``ceil((i+1)·D/length) − 1``)."""
    return F.adaptive_avg_pool1d(vectors[:, None, :], length)[:, 0, :]


def descriptor_targets(levels: Sequence[torch.Tensor], size: int, out_channels: int = TEACHER_CHANNELS,
                       level_dim: int = LEVEL_DIM) -> torch.Tensor:
    """The reference teacher's regression target, ``N×out_channels×size×size``, from backbone
    feature maps ``levels`` (each ``N×C×h×w``): 3×3 unfold, bilinear resize to ``size``, pooling
    of each position's vector to ``level_dim``, concatenation, pooling to ``out_channels``."""
    n = len(levels[0])
    pooled = []
    for features in levels:
        c, h, w = features.shape[1:]
        patches = F.unfold(features, kernel_size=3, padding=1).view(n, c * 9, h, w)
        if (h, w) != (size, size):
            patches = F.interpolate(patches, size=(size, size), mode="bilinear", align_corners=False)
        pooled.append(adaptive_pool_vectors(patches.permute(0, 2, 3, 1).reshape(-1, c * 9), level_dim))
    descriptor = adaptive_pool_vectors(torch.cat(pooled, dim=1), out_channels)
    return descriptor.view(n, size, size, out_channels).permute(0, 3, 1, 2).contiguous()


class TargetMaker:
    """Distillation targets of a frozen ``backbone``: its two deeper ``feature_layers`` on the
    backbone view, turned into :func:`descriptor_targets` one image at a time (bounded memory)."""

    def __init__(self, backbone: Backbone, size: int) -> None:
        self.backbone = backbone
        self.layers = tuple(backbone.feature_layers[-2:])
        self.size = size

    @torch.no_grad()
    def __call__(self, views: torch.Tensor) -> torch.Tensor:
        features = self.backbone(views, self.layers)
        return torch.cat([descriptor_targets([features[layer][i:i + 1] for layer in self.layers], self.size)
                          for i in range(len(views))])


# --------------------------------------------------------------------------- samples

class DistillationSampler:
    """Random pairs of views of pool images: ``(backbone view at 2·resolution, PDN view at
    resolution)``, both ImageNet-normalised, cut from one random resized crop (flip p 0.5,
    grey p 0.1 on both)."""

    def __init__(self, images: Sequence[np.ndarray], resolution: int, rng: np.random.Generator) -> None:
        self.images = list(images)
        self.resolution = resolution
        self.rng = rng

    def pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[int(self.rng.integers(len(self.images)))]
        top, left, h, w = random_resized_crop_box(image.shape[0], image.shape[1], self.rng)
        crop = image[top:top + h, left:left + w]
        if self.rng.random() < 0.5:
            crop = crop[:, ::-1]
        x = random_grayscale(to_unit(crop), self.rng, DISTILLATION_GRAYSCALE)
        r = self.resolution
        return imagenet_normalise(resize_unit(x, 2 * r)), imagenet_normalise(resize_unit(x, r))

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [self.pair() for _ in range(size)]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


# --------------------------------------------------------------------------- distillation

def distil_teacher(backbone: Backbone, pool: Sequence[np.ndarray], *, model_size: str, resolution: int, steps: int,
                   batch: int, norm_samples: int, lr: float, weight_decay: float, rng: np.random.Generator,
                   device: torch.device, progress: Callable[[str, int, int], None] | None = None
                   ) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """Distil a padded PDN teacher from ``backbone`` on ``pool`` (the module docstring's recipe);
    return its state dict (CPU tensors; load it into the unpadded PDN) and the loss of each
    iteration (float64). Torch's global generator must be seeded by the caller (weight init).
    With ``steps=0`` the PDN keeps its random initialisation (nothing is sampled)."""
    pdn = patch_description_network(model_size, TEACHER_CHANNELS, padded=True).to(device)
    if steps == 0:
        return {k: v.detach().cpu().clone() for k, v in pdn.state_dict().items()}, np.empty(0, dtype=np.float64)
    sampler = DistillationSampler(pool, resolution, rng)
    targets = TargetMaker(backbone.to(device), pdn_output_size(resolution, padded=True))
    moments = ChannelMoments()
    for start in range(0, norm_samples, batch):
        views, _ = sampler.batch(min(batch, norm_samples - start))
        moments.update(targets(views.to(device)))
    mean = moments.mean.float().view(1, -1, 1, 1).to(device)
    std = moments.divisor.float().view(1, -1, 1, 1).to(device)
    optimiser = torch.optim.Adam(pdn.parameters(), lr=lr, weight_decay=weight_decay)
    losses = np.empty(steps, dtype=np.float64)
    for step in range(steps):
        backbone_views, pdn_views = sampler.batch(batch)
        target = (targets(backbone_views.to(device)) - mean) / std
        loss = F.mse_loss(pdn(pdn_views.to(device)), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses[step] = float(loss.detach())
        if progress is not None:
            progress("teacher", step + 1, steps)
    return {k: v.detach().cpu().clone() for k, v in pdn.state_dict().items()}, losses


# --------------------------------------------------------------------------- cache

#: Bump when a distilled teacher's file or recipe changes meaning, so that older files are not reused.
TEACHER_CACHE_FORMAT = 1


def teacher_cache_path(backbone: Backbone, recipe: dict[str, Any]) -> Path:
    """The file that holds the teacher distilled from ``backbone`` with ``recipe`` (a JSON-able
    dict of every setting that changes it): ``<cache>/efficient_ad-teachers/<digest>.pt``, with
    ``<cache>`` from :func:`pixeval.data.synthetic.cache_root` and the digest a SHA-256 of the
    recipe, the pool's names and the backbone's parameters."""
    digest = hashlib.sha256(json.dumps({"format": TEACHER_CACHE_FORMAT, **recipe,
                                        "pool": [name for name, _ in offline_photographs()]},
                                       sort_keys=True).encode())
    for name, tensor in sorted(backbone.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return cache_root() / "efficient_ad-teachers" / f"{digest.hexdigest()[:24]}.pt"


def cached_teacher(backbone: Backbone, *, model_size: str, resolution: int, steps: int, batch: int,
                   norm_samples: int, lr: float, weight_decay: float, seed: int, device: torch.device,
                   use_cache: bool = True, progress: Callable[[str, int, int], None] | None = None
                   ) -> tuple[dict[str, torch.Tensor], np.ndarray, Path | None]:
    """The state dict and distillation losses of the teacher that :func:`distil_teacher` gives
    on the :func:`offline_photographs` with these settings, torch and the sampler seeded with
    ``seed``; and the cache file it was read from or written to (``None`` without the cache).

    With ``use_cache`` a file of an earlier distillation with the same recipe is loaded instead
    of distilling again (bit for bit the same teacher); a new one is written atomically, so
    concurrent fits never read a partial file. An unreadable cache file is distilled anew."""
    recipe = {"model_size": model_size, "resolution": resolution, "steps": steps, "batch": batch,
              "norm_samples": norm_samples, "lr": lr, "weight_decay": weight_decay, "seed": seed,
              "layers": list(backbone.feature_layers[-2:])}
    path = teacher_cache_path(backbone, recipe) if use_cache else None
    if path is not None and path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            return saved["state"], saved["losses"].numpy(), path
        except Exception:  # a damaged or foreign file: distil anew and replace it
            pass
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state, losses = distil_teacher(
            backbone, [image for _, image in offline_photographs()], model_size=model_size, resolution=resolution,
            steps=steps, batch=batch, norm_samples=norm_samples, lr=lr, weight_decay=weight_decay,
            rng=np.random.default_rng(seed), device=device, progress=progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as tmp:
            torch.save({"state": state, "losses": torch.from_numpy(losses), "recipe": recipe}, tmp)
        os.replace(tmp.name, path)
    return state, losses, path


# --------------------------------------------------------------------------- published weights

def load_teacher_weights(path: str | Path, model_size: str) -> nn.Sequential:
    """The unpadded PDN teacher of ``model_size`` with the weights of the state-dict file
    ``path`` (the reference's or anomalib's key names); :class:`~pixeval.ParamError` when the
    file is missing or does not fit."""
    path = Path(path)
    if not path.is_file():
        raise ParamError(f"teacher_weights={str(path)!r}: no such file; give the path of the published teacher's "
                         "state dict (e.g. nelson1425/EfficientAD models/teacher_small.pth), or leave it unset "
                         "to distil a teacher here")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ParamError(f"teacher_weights={str(path)!r}: cannot read it as a torch state dict ({exc})") from None
    if not isinstance(state, dict):
        raise ParamError(f"teacher_weights={str(path)!r} holds a {type(state).__name__}, not a state dict")
    teacher = patch_description_network(model_size, TEACHER_CHANNELS)
    try:
        teacher.load_state_dict(_sequential_keys(state, model_size), strict=True)
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).strip().splitlines()[1:3])
        raise ParamError(f"teacher_weights={str(path)!r} does not fit the {model_size} PDN teacher with "
                         f"{TEACHER_CHANNELS} outputs ({detail}); check model_size") from None
    return teacher


def _sequential_keys(state: dict[str, Any], model_size: str) -> dict[str, Any]:
    """``state`` with anomalib's conv names (``conv1.weight``) renamed to the reference's
    ``nn.Sequential`` indices (``0.weight``); other keys unchanged."""
    names = _ANOMALIB_CONV_INDEX.get(model_size, {})
    renamed = {}
    for key, value in state.items():
        module, _, leaf = key.partition(".")
        renamed[f"{names[module]}.{leaf}" if module in names else key] = value
    return renamed
