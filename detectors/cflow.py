"""CFLOW-AD (Gudovskiy, Ishizaka, Kozuka, "CFLOW-AD: Real-Time Unsupervised Anomaly Detection
with Localization via Conditional Normalizing Flows", WACV 2022), following the official code
gudovskiy/cflow-ad@b2ebf9e (``model.py``, ``train.py``, ``utils.py``, ``custom_models/utils.py``).

Each feature vector (a *fibre*: the ``C`` channels at one position of a backbone level) is
scored by a normalizing flow conditioned on a sinusoidal encoding of its position; the flow is
trained to give normal fibres a high likelihood.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from detectors.common import BackboneDetector, BackboneParams, image_sized, max_scored, resolve_preset
from detectors.features import check_images, imagenet_normalise, resolve_device, unit_tensor
from detectors.flows import AllInOneBlock, SequenceFlow
from pixeval import ParamError, Prediction, ProgressCallback, param

#: Named settings of the costly hyperparameters (fields left at ``None`` take them from here).
#: ``paper``: the reference's 25 meta-epochs of 8 sub-epochs (one pass of the training loader each).
#: ``quick``: the CPU default, a shortened schedule of 8 meta-epochs of 1 sub-epoch (the same
#: flows, loss, optimiser, warm-up and cosine shape over the meta-epochs; 1/25 of the passes).
#: With 54 training images and batch 32 a sub-epoch is one batch, about 4 s on 2 cores at
#: resolution 256; benchmarks/README.md measures both presets.
PRESETS: dict[str, dict[str, int]] = {
    "paper": {"meta_epochs": 25, "sub_epochs": 8},
    "quick": {"meta_epochs": 8, "sub_epochs": 1},
}

#: The reference's levels: the ends of the stride-8, 16 and 32 stages of each backbone.
DEFAULT_LAYERS = {"efficientnet_lite0": ("blocks.4", "blocks.10", "blocks.14"),
                  "wide_resnet50_2": ("layer2", "layer3", "layer4"),
                  "resnet18": ("layer2", "layer3", "layer4")}
#: Channels of the positional condition.
CONDITION_CHANNELS = 128
#: Fibres per optimiser step (the reference's ``N``).
FIBRE_BATCH = 256


@dataclass
class CFlowParams(BackboneParams):
    """CFLOW-AD hyperparameters (besides the shared backbone ones). Defaults are the reference's."""

    preset: str = param("quick", "Named setting of meta_epochs and sub_epochs when left unset: 'paper' (25 × 8, "
                        "the reference) or 'quick' (8 × 1, a shortened CPU schedule).", choices=tuple(PRESETS))
    meta_epochs: int | None = param(None, "Meta-epochs: the learning rate follows a cosine over them (unset: from "
                                    "the preset).", min=1)
    sub_epochs: int | None = param(None, "Passes over the training images per meta-epoch (unset: from the preset).",
                                   min=1)
    layers: str | None = param(None, "Comma-separated backbone layers to score (unset: the ends of the stride 8, 16 "
                               "and 32 stages, e.g. blocks.4,blocks.10,blocks.14 of efficientnet_lite0; the "
                               "backbone's feature layers for the others).")
    coupling_blocks: int = param(8, "Coupling blocks per level.", min=1)
    clamp: float = param(1.9, "Soft clamp α of the coupling's log-scale, α·tanh(s).", min=0.0)
    permute_soft: bool = param(True, "Random rotations between blocks (the reference); false: random permutations "
                                     "(anomalib).")
    train_batch: int = param(32, "Images per training batch; the last incomplete batch is dropped.", min=1)
    lr: float = param(2e-4, "Adam learning rate at the top of the cosine.", min=0.0)
    lr_warm_epochs: int = param(2, "Meta-epochs of linear warm-up from lr/10.", min=0)
    rotation_degrees: float = param(0.0, "Turn each training image of each batch by an angle drawn uniformly from "
                                    "[-r, r] degrees, anew every pass, and extract its features again (the "
                                    "reference's RandomRotation(5): r = 5); 0: no augmentation, features "
                                    "extracted once.", min=0.0, max=180.0)


def positional_encoding(channels: int, height: int, width: int) -> torch.Tensor:
    """``channels×height×width`` 2-D sinusoidal encoding over integer feature-map coordinates:
    the first half of the channels encodes the column x, the second half the row y; within a
    half, channel 2k holds ``sin(x · ω_k)`` and channel 2k+1 ``cos(x · ω_k)`` with
    ``ω_k = exp(−2k · ln(10⁴) / (channels/2))`` (the reference's ``positionalencoding2d``)."""
    if channels % 4:
        raise ValueError(f"the positional encoding needs a multiple of 4 channels, got {channels}")
    half = channels // 2
    omega = torch.exp(torch.arange(0, half, 2, dtype=torch.float32) * -(math.log(10000.0) / half))
    x = torch.arange(width, dtype=torch.float32)[:, None] * omega  # width × half/2
    y = torch.arange(height, dtype=torch.float32)[:, None] * omega
    encoding = torch.zeros(channels, height, width)
    encoding[0:half:2] = torch.sin(x).T[:, None, :].expand(-1, height, -1)
    encoding[1:half:2] = torch.cos(x).T[:, None, :].expand(-1, height, -1)
    encoding[half::2] = torch.sin(y).T[:, :, None].expand(-1, -1, width)
    encoding[half + 1::2] = torch.cos(y).T[:, :, None].expand(-1, -1, width)
    return encoding


def rotated_view(image: np.ndarray, resolution: int, degrees: float) -> torch.Tensor:
    """The ``3×R×R`` network input of ``image`` turned by ``degrees`` (counter-clockwise) about
    its centre after resizing, as the reference's training transform does: nearest-neighbour,
    corners outside the turned image black, then ImageNet-normalised. At 0 degrees it is the
    view :func:`detectors.features.images_to_tensor` gives."""
    unit = unit_tensor(image, resolution)
    if degrees:
        unit = TF.rotate(unit, degrees, interpolation=InterpolationMode.NEAREST, fill=[0.0, 0.0, 0.0])
    return imagenet_normalise(unit)


def fc_subnet(c_in: int, c_out: int) -> nn.Module:
    """The reference's coupling subnet: Linear(c_in → 2·c_in) → ReLU → Linear(2·c_in → c_out)."""
    return nn.Sequential(nn.Linear(c_in, 2 * c_in), nn.ReLU(), nn.Linear(2 * c_in, c_out))


def conditional_flow(channels: int, blocks: int, clamp: float, permute_soft: bool,
                     generator: torch.Generator) -> SequenceFlow:
    """One level's decoder: ``blocks`` AllInOne blocks on ``channels``-vectors conditioned on
    the 128-channel positional encoding."""
    return SequenceFlow([AllInOneBlock(channels, fc_subnet, cond_channels=CONDITION_CHANNELS, clamp=clamp,
                                       permute_soft=permute_soft, generator=generator) for _ in range(blocks)])


def log_likelihood_per_dim(z: torch.Tensor, log_det: torch.Tensor) -> torch.Tensor:
    """``ℓ = log p / C`` per fibre, with ``log p = −(C/2) ln(2π) − ½‖z‖² + log|det J|``."""
    channels = z.shape[1]
    log_p = -0.5 * channels * math.log(2 * math.pi) - 0.5 * (z ** 2).sum(dim=1) + log_det
    return log_p / channels


def learning_rate(lr: float, meta_epochs: int, warm_epochs: int, meta_epoch: int, progress_in_warmup: float) -> float:
    """The reference's schedule: the cosine ``lr·10⁻³ + (lr − lr·10⁻³)(1 + cos(π e / E))/2`` at
    meta-epoch ``e`` of ``E``; during the first ``warm_epochs`` meta-epochs, linear from ``lr/10``
    to the cosine's value at ``warm_epochs``, by ``progress_in_warmup`` (0 to 1 over those)."""
    eta_min = lr * 1e-3

    def cosine(e: float) -> float:
        return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * e / meta_epochs)) / 2

    if meta_epoch < warm_epochs:
        return lr / 10 + progress_in_warmup * (cosine(warm_epochs) - lr / 10)
    return cosine(meta_epoch)


def fibres(level: torch.Tensor) -> torch.Tensor:
    """``N×C×H×W`` → ``(N·H·W)×C``, image-major then row-major."""
    return level.permute(0, 2, 3, 1).reshape(-1, level.shape[1])


class CFlow(BackboneDetector):
    """CFLOW-AD: per-level conditional normalizing flows on feature vectors; the map is their likelihood.

    Definition (gudovskiy/cflow-ad@b2ebf9e):

    * Levels: the frozen backbone's stride-8, 16 and 32 stage ends (EfficientNet-Lite0 blocks
      4/10/14, the counterparts of the reference's Wide-ResNet-50-2 layer2/3/4).
    * Per level a decoder: 8 AllInOne coupling blocks (detectors.flows: soft clamp 1.9·tanh,
      random rotations between blocks, SOFTPLUS global affine) on each fibre, every block
      conditioned on a 128-channel 2-D sinusoidal encoding of the fibre's position; subnets
      Linear(d → 2d) → ReLU → Linear(2d → 2·⌊C/2⌋) with d = ⌈C/2⌉ + 128.
    * Likelihood per dimension ℓ = (−(C/2) ln 2π − ½‖z‖² + log|det J|) / C; loss −log σ(ℓ) over a
      batch of 256 fibres.
    * Training: Adam (lr 2e-4) over all decoders; meta-epochs of ``sub_epochs`` passes over the
      training images in batches of 32 (reshuffled, incomplete last batch dropped; one batch of
      all images when there are fewer); per batch and level, the fibres are shuffled and each run
      of 256 is one step. Learning rate: linear warm-up from lr/10 over 2 meta-epochs, then a
      cosine over the meta-epochs down to lr·10⁻³. One Adam spans the three decoders, and a step
      on one level's fibres zeroes the other decoders' gradients rather than clearing them, so
      Adam still moves those by their momentum, as the reference did on the torch it was written
      for (torch 2's ``zero_grad`` clears by default, and Adam then skips them).
    * Map: per level ``exp(min(ℓ − m_l, 0))``, ``m_l`` the largest ℓ of the level over the
      *training* fibres after training, in float64 (capped at 1, the largest value on the
      training fibres, so that no map overflows); up-sampled bilinearly (``align_corners=True``) to
      ``resolution``; summed over levels; negated; resized bilinearly to the image. No blur.
      Image score: the maximum of the map.

    Departures from the reference:

    * Normalisation constant from the training fibres: the reference subtracts the maximum of
      ℓ over the whole *test* set (and anomalib over each test batch), so a map there depends on
      the other test images. The map is ``−Σ_l exp(ℓ_l − m_l)`` instead of the reference's
      ``max − Σ``: the same order, and float32 keeps small differences of strong anomalies.
    * Model selection: the model after the last meta-epoch (the reference reports each test
      metric's best meta-epoch; anomalib stops early on test pixel AUROC).
    * No RandomRotation(5°) augmentation of the training images by default (``rotation_degrees``
      0): features are computed once and cached. ``rotation_degrees=5`` turns each batch's
      images as the reference does and extracts their features again at every step; on the
      built-in data it lowered P-AUPR (gravel, paper schedule: 0.642 → 0.613) and costs about
      1.6× the fit time (benchmarks/README.md, "CFLOW-AD's rotation augmentation").
    * Backbone: EfficientNet-Lite0 by default (reference: Wide-ResNet-50-2 with reflect padding in
      its convolutions; ImageNet weights of the others are not available offline here); one
      input size, 256, for every category (the reference's README uses 128 to 512 per class).
    * Seeded: the reference seeds from the clock.
    * Schedule: preset ``quick`` (the default) runs 8 meta-epochs of 1 sub-epoch (1/25 of the
      reference's 25 × 8 passes); ``paper`` the reference's.
    """

    Params = CFlowParams
    PRESETS = PRESETS

    def __init__(self, params: Any = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        p = resolve_preset(self.params, self.PRESETS)
        if p.layers is None:
            defaults = DEFAULT_LAYERS.get(p.backbone)
            p = dataclasses.replace(p, layers=",".join(defaults) if defaults else None)
        self.params = p
        self.decoders: nn.ModuleList | None = None
        self.max_likelihood: list[float] | None = None

    @property
    def layer_names(self) -> tuple[str, ...]:
        """The scored layers: ``params.layers``, else the backbone's feature layers."""
        if self.params.layers is None:
            return tuple(self.backbone.feature_layers)
        names = tuple(name.strip() for name in self.params.layers.split(",") if name.strip())
        missing = [name for name in names if name not in self.backbone.channels]
        if missing or not names:
            raise ParamError(f"cflow: layers {self.params.layers!r}: backbone {self.params.backbone!r} has no "
                             f"{', '.join(missing) or 'layer named'}; choose from {', '.join(self.backbone.channels)}")
        return names

    def levels(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> list[torch.Tensor]:
        """The scored levels of all ``images``: ``N×C×H×W`` float32 CPU tensors."""
        names = self.layer_names
        batches = list(self.iter_features(images, names, progress))
        return [torch.cat([batch[name] for batch in batches]) for name in names]

    def rotated_levels(self, images: Sequence[np.ndarray], generator: torch.Generator,
                       device: torch.device) -> list[torch.Tensor]:
        """The scored levels of ``images``, each image turned by its own angle drawn uniformly
        from ``[-rotation_degrees, rotation_degrees]`` with ``generator`` (:func:`rotated_view`)."""
        p = self.params
        angles = (torch.rand(len(images), generator=generator, dtype=torch.float64) * 2 - 1) * p.rotation_degrees
        views = torch.stack([rotated_view(image, p.resolution, float(angle)) for image, angle in zip(images, angles)])
        with torch.no_grad():
            features = self.backbone(views.to(device), self.layer_names)
        return [features[name].float().cpu() for name in self.layer_names]

    def _decoders(self, channels: Sequence[int]) -> nn.ModuleList:
        p = self.params
        generator = torch.Generator().manual_seed(p.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(p.seed)
            return nn.ModuleList(conditional_flow(c, p.coupling_blocks, p.clamp, p.permute_soft, generator)
                                 for c in channels)

    def level_likelihoods(self, decoder: SequenceFlow, level: torch.Tensor, device: torch.device) -> torch.Tensor:
        """ℓ of every fibre of ``level`` (``N×C×H×W``) as ``N×H×W`` float64, in runs of 4096 fibres."""
        n, _, height, width = level.shape
        condition = fibres(positional_encoding(CONDITION_CHANNELS, height, width)[None].expand(n, -1, -1, -1))
        vectors = fibres(level)
        out = []
        with torch.inference_mode():
            for start in range(0, len(vectors), 4096):
                z, log_det = decoder(vectors[start:start + 4096].to(device), condition[start:start + 4096].to(device))
                out.append(log_likelihood_per_dim(z.double(), log_det.double()).cpu())
        return torch.cat(out).view(n, height, width)

    def fit(self, train_images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> CFlow:
        p = self.params
        train_images = check_images(train_images, "train_images")
        levels = self.levels(train_images, progress)
        device = resolve_device(p.device)
        decoders = self._decoders([level.shape[1] for level in levels]).to(device)
        conditions = [positional_encoding(CONDITION_CHANNELS, *level.shape[2:]) for level in levels]
        optimiser = torch.optim.Adam(decoders.parameters(), lr=p.lr)
        generator = torch.Generator().manual_seed(p.seed)
        n = len(levels[0])
        batch = min(p.train_batch, n)
        batches_per_meta = p.sub_epochs * (n // batch)
        decoders.train()
        for meta_epoch in range(p.meta_epochs):
            for step in range(batches_per_meta):
                if step % (n // batch) == 0:
                    order = torch.randperm(n, generator=generator)
                start = (step % (n // batch)) * batch
                index = order[start:start + batch]
                warm = (meta_epoch * batches_per_meta + step) / max(p.lr_warm_epochs * batches_per_meta, 1)
                for group in optimiser.param_groups:
                    group["lr"] = learning_rate(p.lr, p.meta_epochs, p.lr_warm_epochs, meta_epoch, warm)
                batch_levels = ([level[index] for level in levels] if not p.rotation_degrees else
                                self.rotated_levels([train_images[i] for i in index.tolist()], generator, device))
                for decoder, level, condition in zip(decoders, batch_levels, conditions):
                    self._train_level(decoder, level, condition, optimiser, generator, device)
            if progress is not None:
                progress("meta-epochs", meta_epoch + 1, p.meta_epochs)
        decoders.eval()
        self.decoders = decoders
        self.max_likelihood = [float(self.level_likelihoods(d, level, device).max())
                               for d, level in zip(decoders, levels)]
        return self

    @staticmethod
    def _train_level(decoder: SequenceFlow, level: torch.Tensor, condition: torch.Tensor,
                     optimiser: torch.optim.Optimizer, generator: torch.Generator, device: torch.device) -> None:
        """One batch of one level: its fibres shuffled, one Adam step per run of 256 of them."""
        vectors = fibres(level)
        conditions = fibres(condition[None].expand(len(level), -1, -1, -1))
        order = torch.randperm(len(vectors), generator=generator)
        for start in range(0, len(vectors), FIBRE_BATCH):
            index = order[start:start + FIBRE_BATCH]
            z, log_det = decoder(vectors[index].to(device), conditions[index].to(device))
            loss = F.softplus(-log_likelihood_per_dim(z, log_det)).mean()
            optimiser.zero_grad(set_to_none=False)  # as the reference's torch did: see the class docstring
            loss.backward()
            optimiser.step()

    def predict(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> Prediction:
        if self.decoders is None:
            raise self.not_fitted_error()
        p = self.params
        images = check_images(images)
        device = resolve_device(p.device)
        self.decoders.to(device)

        def square_maps() -> Iterator[np.ndarray]:
            for features in self.iter_features(images, self.layer_names, progress):
                total = None
                for decoder, name, top in zip(self.decoders, self.layer_names, self.max_likelihood):
                    # capped at 1: a fibre likelier than every training fibre is as normal as the likeliest
                    likelihood = torch.exp((self.level_likelihoods(decoder, features[name], device) - top)
                                           .clamp(max=0.0))
                    up = F.interpolate(likelihood[:, None], size=(p.resolution, p.resolution), mode="bilinear",
                                       align_corners=True)[:, 0]
                    total = up if total is None else total + up
                yield from (-total).numpy()

        return max_scored(image_sized(square_maps(), images))

    def state_dict(self) -> dict[str, Any]:
        if self.decoders is None:
            raise self.not_fitted_error()
        return {"channels": [decoder.blocks[0].channels for decoder in self.decoders],
                "max_likelihood": list(self.max_likelihood),
                "decoders": {k: v.detach().cpu().clone() for k, v in self.decoders.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        decoders = self._decoders([int(c) for c in state["channels"]])
        decoders.load_state_dict(state["decoders"])
        self.decoders = decoders.to(resolve_device(self.params.device)).eval()
        self.max_likelihood = [float(v) for v in state["max_likelihood"]]
