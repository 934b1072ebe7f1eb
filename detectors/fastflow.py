"""FastFlow (Yu et al., "FastFlow: Unsupervised Anomaly Detection and Localization via 2D
Normalizing Flows", 2021): one 2-D normalizing flow per backbone feature level.

The paper released no code; the reference is the implementation that every public number uses,
gathierry/FastFlow@2cf1f2f (``fastflow.py``, ``main.py``, ``configs/``), which anomalib ports.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detectors.common import BackboneDetector, BackboneParams, image_sized, max_scored, resolve_preset
from detectors.features import check_images, resolve_device
from detectors.flows import AllInOneBlock, SequenceFlow
from pixeval import Prediction, ProgressCallback, param

#: Named settings of the costly hyperparameters (fields left at ``None`` take them from here).
#: ``paper``: the reference's 500 epochs. ``quick``: the CPU default, a shortened schedule of 25
#: epochs (the same flows, loss, optimiser and batches; only fewer of them). With 54 training
#: images and batch 32, an epoch is one step of 32 images, about 1 s on 2 cores at resolution
#: 256; benchmarks/README.md measures both presets.
PRESETS: dict[str, dict[str, int]] = {
    "paper": {"epochs": 500},
    "quick": {"epochs": 25},
}


@dataclass
class FastFlowParams(BackboneParams):
    """FastFlow hyperparameters (besides the shared backbone ones). Defaults are the reference's
    ResNet-18 settings, with anomalib's 3-1 subnets."""

    preset: str = param("quick", "Named setting of epochs when left unset: 'paper' (500 epochs, the reference) "
                        "or 'quick' (25 epochs, a shortened CPU schedule).", choices=tuple(PRESETS))
    epochs: int | None = param(None, "Training epochs (unset: from the preset).", min=1)
    flow_steps: int = param(8, "Coupling blocks per level.", min=1)
    hidden_ratio: float = param(1.0, "Hidden channels of a subnet, as a share of its input channels.", min=0.01)
    conv3x3_only: bool = param(False, "3×3 convolutions in every subnet ('3-3'); default: 3×3 in even blocks "
                                      "and 1×1 in odd ones ('3-1').")
    clamp: float = param(2.0, "Soft clamp α of the coupling's log-scale, α·tanh(s).", min=0.0)
    train_batch: int = param(32, "Training mini-batch size (images); the last incomplete batch is dropped.",
                             min=1)
    lr: float = param(1e-3, "Adam learning rate.", min=0.0)
    weight_decay: float = param(1e-5, "Adam weight decay.", min=0.0)


def conv_subnet(kernel: int, hidden_ratio: float):
    """The subnet factory of one block: Conv_k(c_in → h) → ReLU → Conv_k(h → c_out), 'same'
    padding, ``h = int(c_in · hidden_ratio)``."""
    def build(c_in: int, c_out: int) -> nn.Module:
        hidden = max(1, int(c_in * hidden_ratio))
        return nn.Sequential(nn.Conv2d(c_in, hidden, kernel, padding=kernel // 2), nn.ReLU(),
                             nn.Conv2d(hidden, c_out, kernel, padding=kernel // 2))
    return build


class FastFlowModel(nn.Module):
    """Per feature level (``C×H×W``): a trainable ``LayerNorm([C, H, W])``, then a flow of
    ``flow_steps`` AllInOne blocks (hard permutation, clamp ``clamp``) whose subnets are 3×3 or
    1×1 convolutions. ``forward`` returns each level's ``(z, log|det J|)``."""

    def __init__(self, shapes: Sequence[tuple[int, int, int]], flow_steps: int, hidden_ratio: float,
                 conv3x3_only: bool, clamp: float, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.norms = nn.ModuleList(nn.LayerNorm(list(shape), elementwise_affine=True) for shape in shapes)
            self.flows = nn.ModuleList(
                SequenceFlow([AllInOneBlock(shape[0], conv_subnet(3 if conv3x3_only or step % 2 == 0 else 1,
                                                                  hidden_ratio),
                                            clamp=clamp, generator=generator) for step in range(flow_steps)])
                for shape in shapes)

    def forward(self, levels: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [flow(norm(level)) for level, norm, flow in zip(levels, self.norms, self.flows)]


def fastflow_loss(outputs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Σ over levels of the batch mean of ``½ Σ_{c,h,w} z² − log|det J|`` (the reference's loss:
    the negative log-likelihood without its constant)."""
    return sum((0.5 * (z ** 2).flatten(1).sum(dim=1) - log_det).mean() for z, log_det in outputs)


def fastflow_map(outputs: Sequence[tuple[torch.Tensor, torch.Tensor]], resolution: int) -> torch.Tensor:
    """``N×R×R`` float64: per level ``−exp(−½ · mean_c z²)``, up-sampled bilinearly
    (``align_corners=False``) to ``R = resolution``, then the mean over levels (in [−1, 0])."""
    maps = []
    for z, _ in outputs:
        likelihood = torch.exp(-0.5 * (z.double() ** 2).mean(dim=1))
        maps.append(F.interpolate(-likelihood[:, None], size=(resolution, resolution), mode="bilinear",
                                  align_corners=False)[:, 0])
    return torch.stack(maps).mean(dim=0)


class FastFlow(BackboneDetector):
    """FastFlow: a 2-D normalizing flow per feature level; the map is each level's likelihood.

    Definition (gathierry/FastFlow@2cf1f2f, anomalib's port):

    * Features: the frozen backbone's three ``feature_layers`` (EfficientNet-Lite0 blocks 2/4/10
      at strides 4/8/16, the counterparts of the reference's ResNet layer1-3). No augmentation,
      so they are computed once at fit.
    * Per level: a trainable ``LayerNorm([C, H, W])`` (the reference's addition, not in the
      paper; its author found it necessary), then 8 AllInOne coupling blocks (detectors.flows:
      soft clamp 2·tanh, hard permutation, SOFTPLUS global affine) with subnets
      Conv_k → ReLU → Conv_k, hidden channels = input channels, k = 3 and 1 alternating ('3-1').
    * Loss: Σ over levels of the batch mean of ½ Σ z² − log|det J|. Adam (lr 1e-3, weight decay
      1e-5), batches of 32 images reshuffled each epoch, the incomplete last batch dropped (one
      batch of all the images when there are fewer than 32).
    * Map: per level −exp(−½ · mean over channels of z²) (not the flow's log-likelihood: no
      log-determinant, a mean instead of a sum), computed in float64, up-sampled bilinearly to
      ``resolution``, averaged over levels, resized bilinearly to the image. No blur. Image
      score: the maximum of the map (the reference defines none; anomalib's).

    Departures from the reference:

    * Backbone: EfficientNet-Lite0 by default (reference: ResNet-18 or Wide-ResNet-50-2 from timm,
      whose weights are not available offline here).
    * Subnets '3-1' (anomalib's default); the reference's ResNet-18 configuration uses 3×3 only
      (``conv3x3_only=true``).
    * Schedule: preset ``quick`` (the default) trains 25 of the reference's 500 epochs; ``paper``
      all 500. The model after the last epoch is the model: the reference reports its last and
      its best-on-test epoch, anomalib stops early on test pixel AUROC; neither is done here.
    * The map is returned as float32 (pixeval's map contract): where ½ · mean z² exceeds about
      100 at every level, ``exp`` falls below float32's smallest value and such pixels tie at 0.
    * The LayerNorm fixes the input size: predict at the fitted ``resolution`` (any image size
      works, as images are resized to it).
    """

    Params = FastFlowParams
    PRESETS = PRESETS

    def __init__(self, params: Any = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        self.params = resolve_preset(self.params, self.PRESETS)
        self.model: FastFlowModel | None = None
        self.shapes: list[tuple[int, int, int]] | None = None

    def levels(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> list[torch.Tensor]:
        """The three feature levels of all ``images``, ``N×C×H×W`` float32 CPU tensors."""
        layers = self.backbone.feature_layers
        batches = list(self.iter_features(images, layers, progress))
        return [torch.cat([batch[layer] for batch in batches]) for layer in layers]

    def _model(self, shapes: list[tuple[int, int, int]]) -> FastFlowModel:
        p = self.params
        return FastFlowModel(shapes, p.flow_steps, p.hidden_ratio, p.conv3x3_only, p.clamp, p.seed)

    def fit(self, train_images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> FastFlow:
        p = self.params
        check_images(train_images, "train_images")
        levels = self.levels(train_images, progress)
        shapes = [tuple(int(d) for d in level.shape[1:]) for level in levels]
        device = resolve_device(p.device)
        model = self._model(shapes).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        generator = torch.Generator().manual_seed(p.seed)
        n = len(levels[0])
        batch = min(p.train_batch, n)
        model.train()
        for epoch in range(p.epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n - batch + 1, batch):
                index = order[start:start + batch]
                loss = fastflow_loss(model([level[index].to(device) for level in levels]))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            if progress is not None:
                progress("epochs", epoch + 1, p.epochs)
        self.model, self.shapes = model.eval(), shapes
        return self

    def predict(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> Prediction:
        if self.model is None:
            raise self.not_fitted_error()
        images = check_images(images)
        device = resolve_device(self.params.device)
        self.model.to(device)

        def square_maps() -> Iterator[np.ndarray]:
            for features in self.iter_features(images, self.backbone.feature_layers, progress):
                levels = [features[layer].to(device) for layer in self.backbone.feature_layers]
                if [tuple(level.shape[1:]) for level in levels] != self.shapes:
                    raise ValueError(f"FastFlow was fitted on feature levels {self.shapes} but these images give "
                                     f"{[tuple(level.shape[1:]) for level in levels]}; use the resolution it was "
                                     "fitted with")
                with torch.inference_mode():
                    yield from fastflow_map(self.model(levels), self.params.resolution).cpu().numpy()

        return max_scored(image_sized(square_maps(), images))

    def state_dict(self) -> dict[str, Any]:
        if self.model is None:
            raise self.not_fitted_error()
        return {"shapes": [list(shape) for shape in self.shapes],
                "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shapes = [tuple(int(d) for d in shape) for shape in state["shapes"]]
        model = self._model(shapes)
        model.load_state_dict(state["model"])
        self.model, self.shapes = model.to(resolve_device(self.params.device)).eval(), shapes
