"""Reverse Distillation (Deng & Li, "Anomaly Detection via Reverse Distillation from One-Class
Embedding", CVPR 2022), following the official code ``hq-deng/RD4AD@6554076`` (``main.py``,
``test.py``, ``resnet.py: BN_layer``, ``de_resnet.py``).

A frozen teacher (the backbone's three ``feature_layers``) encodes the image; a trainable
one-class bottleneck (OCBE) squeezes its three levels into one low-resolution embedding; a student
decoder, a mirrored ResNet, restores the three levels from it. Trained on normal images only, the
student reproduces the teacher there and fails where the image is anomalous; the anomaly map is
the per-pixel cosine distance between teacher and student features.

Cost: the teacher's features are computed once at fit and kept in memory (float32: 0.67 MB per
image for EfficientNet-Lite0 at resolution 256, 7.3 MB for wide_resnet50_2); each epoch is one
forward and backward pass of OCBE and decoder per training image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detectors.common import (BackboneDetector, BackboneParams, gaussian_blur, image_sized, max_scored,
                              resolve_preset)
from detectors.features import check_images, resolve_device
from pixeval import ParamError, Prediction, ProgressCallback, param

#: Named settings of the costly hyperparameters (fields left at ``None`` take them from here).
#: ``paper``: the RD4AD code's 200 epochs.
#: ``quick``: the CPU default, a shortened schedule of 15 epochs (same architecture, loss,
#: optimiser and constant learning rate; only fewer passes). Chosen from the cost measured in
#: shared/research/seed-rows.md §4.4 and §6: 0.02-0.04 s per image-pass with cached features on
#: 2 cores at resolution 256 (EfficientNet-Lite0), so 60 training images × 15 epochs ≈ 18-36 s of
#: training, plus about 5 s of backbone features and prediction for 40 test images.
PRESETS: dict[str, dict[str, int]] = {
    "paper": {"epochs": 200},
    "quick": {"epochs": 15},
}

#: Backbones whose ``feature_layers`` lie at strides 4, 8 and 16, the ResNet layer1-3 that the
#: bottleneck and the decoder mirror.
SUPPORTED_BACKBONES = ("wide_resnet50_2", "resnet18", "efficientnet_lite0", "tiny")
#: Backbones whose feature layers end in a ReLU, so the teacher's features are never negative.
NON_NEGATIVE_BACKBONES = ("wide_resnet50_2", "resnet18", "tiny")
#: Backbones whose reference student is built from bottleneck blocks.
BOTTLENECK_BACKBONES = ("wide_resnet50_2",)
#: Stride of the bottleneck embedding; the resolution must be a multiple of it.
BOTTLENECK_STRIDE = 32


@dataclass
class ReverseDistillationParams(BackboneParams):
    """Reverse Distillation hyperparameters (besides the shared backbone ones). Defaults are the
    RD4AD code's."""

    preset: str = param("quick", "Named setting of epochs when left unset: 'paper' (200 epochs, the reference) "
                        "or 'quick' (15 epochs, a shortened CPU schedule).", choices=tuple(PRESETS))
    epochs: int | None = param(None, "Training epochs (unset: from the preset).", min=1)
    train_batch: int = param(16, "Training mini-batch size (images).", min=1)
    lr: float = param(0.005, "Adam learning rate (constant).", min=0.0)
    beta1: float = param(0.5, "Adam beta1.", min=0.0, max=0.9999)
    beta2: float = param(0.999, "Adam beta2 (anomalib uses 0.99).", min=0.0, max=0.9999)
    student: str | None = param(None, "Block form of OCBE and decoder: 'basic' (RD4AD's ResNet-18 student: 2 OCBE "
                                "blocks, decoder stages [2, 2, 2]) or 'bottleneck' (its Wide-ResNet-50-2 student: 3, "
                                "[3, 4, 6]). Unset: 'bottleneck' for wide_resnet50_2, else 'basic'.",
                                choices=("basic", "bottleneck"))
    decoder_relu: bool | None = param(None, "Whether the last block of each decoder stage ends in a ReLU, as in "
                                      "the reference. Unset: yes when the teacher's features are post-ReLU "
                                      "(ResNets, tiny), no for efficientnet_lite0, whose features are half negative.")
    sigma: float = param(4.0, "Gaussian blur of the map at resolution, in pixels (0 = none).", min=0.0)


# --------------------------------------------------------------------------- networks

def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    """3×3 convolution, padding 1, no bias."""
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


def deconv2x2(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    """2×2 transposed convolution with stride 2 (doubles height and width), no bias."""
    return nn.ConvTranspose2d(c_in, c_out, 2, stride=2, bias=False)


def resampling_conv(resample: str | None, c_in: int, c_out: int) -> nn.Module:
    """The conv that sets a block's output size: 3×3 with stride 2 (``"down"``), 2×2 transposed
    with stride 2 (``"up"``) or 3×3 with stride 1 (``None``)."""
    if resample == "down":
        return conv3x3(c_in, c_out, 2)
    if resample == "up":
        return deconv2x2(c_in, c_out)
    return conv3x3(c_in, c_out)


class ResidualBlock(nn.Module):
    """``relu(body(x) + shortcut(x))``, the shortcut being the identity when ``shortcut`` is
    ``None``; without the ReLU when ``final_relu`` is false."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None, final_relu: bool = True) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.final_relu = final_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x) + (x if self.shortcut is None else self.shortcut(x))
        return F.relu(out) if self.final_relu else out


def residual_block(form: str, c_in: int, c_out: int, resample: str | None = None,
                   final_relu: bool = True) -> ResidualBlock:
    """One block of the student, ``c_in`` → ``c_out`` channels (they differ only when resampling).

    * ``form="basic"``: resampling conv → BN → ReLU → conv3×3 → BN (ResNet-18's block).
    * ``form="bottleneck"``: conv1×1 to ``c_out/2`` channels → BN → ReLU → resampling conv → BN →
      ReLU → conv1×1 to ``c_out`` → BN (Wide-ResNet-50-2's block: inner width half the output).

    The resampling conv is a 3×3 conv with stride 2 for ``resample="down"``, a 2×2 stride-2
    transposed conv for ``"up"`` and a plain 3×3 conv for ``None``. A resampling block's
    shortcut is a 1×1 stride-2 conv (down) or a 2×2 stride-2 transposed conv (up), then BN.
    """
    if form == "basic":
        body = [resampling_conv(resample, c_in, c_out), nn.BatchNorm2d(c_out), nn.ReLU(),
                conv3x3(c_out, c_out), nn.BatchNorm2d(c_out)]
    else:
        width = c_out // 2
        body = [nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                resampling_conv(resample, width, width), nn.BatchNorm2d(width), nn.ReLU(),
                nn.Conv2d(width, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
    shortcut = None
    if resample == "down":
        shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=2, bias=False), nn.BatchNorm2d(c_out))
    elif resample == "up":
        shortcut = nn.Sequential(deconv2x2(c_in, c_out), nn.BatchNorm2d(c_out))
    return ResidualBlock(nn.Sequential(*body), shortcut, final_relu)


def init_like_reference(module: nn.Module) -> None:
    """RD4AD's initialisation: Kaiming-normal (``fan_out``, ReLU gain) on every ``Conv2d``, BN
    weight 1 and bias 0; transposed convolutions keep PyTorch's default."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1.0)
            nn.init.constant_(m.bias, 0.0)


class OneClassBottleneck(nn.Module):
    """OCBE: teacher levels ``(C1, C2, C3)`` at strides 4/8/16 → one ``2·C3`` embedding at stride 32.

    RD4AD's ``BN_layer`` with its channel numbers written in terms of the teacher's: level 1 by
    conv3×3 s2 (C1 → C2) + BN + ReLU, then conv3×3 s2 (C2 → C3) + BN + ReLU; level 2 by conv3×3
    s2 (C2 → C3) + BN + ReLU; both concatenated with level 3 (3·C3 channels at stride 16); then
    ``blocks`` residual blocks of ``form`` to 2·C3 channels, the first with stride 2 and a 1×1
    conv shortcut (ResNet-18: 2 basic blocks; Wide-ResNet-50-2: 3 bottleneck blocks). The
    reference's unused ``conv4``/``bn4`` are not built.
    """

    def __init__(self, channels: Sequence[int], form: str = "basic", blocks: int = 2) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.level1 = nn.Sequential(conv3x3(c1, c2, 2), nn.BatchNorm2d(c2), nn.ReLU(),
                                    conv3x3(c2, c3, 2), nn.BatchNorm2d(c3), nn.ReLU())
        self.level2 = nn.Sequential(conv3x3(c2, c3, 2), nn.BatchNorm2d(c3), nn.ReLU())
        fuse = [residual_block(form, 3 * c3, 2 * c3, "down")]
        fuse += [residual_block(form, 2 * c3, 2 * c3) for _ in range(blocks - 1)]
        self.fuse = nn.Sequential(*fuse)
        init_like_reference(self)

    def forward(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        f1, f2, f3 = levels
        return self.fuse(torch.cat([self.level1(f1), self.level2(f2), f3], dim=1))


class StudentDecoder(nn.Module):
    """The student: a mirrored ResNet from the ``2·C3`` embedding back to the teacher's levels.

    Three stages of residual blocks of ``form`` (``stage_blocks`` each: [2, 2, 2] basic blocks
    for ResNet-18, [3, 4, 6] bottleneck blocks for Wide-ResNet-50-2) with ``C3``, ``C2`` and
    ``C1`` output channels; the first block of each stage doubles the size with a 2×2 stride-2
    transposed conv (shortcut: transposed conv + BN). ``forward`` returns the stage outputs in
    the teacher's order (C1 at stride 4, C2 at 8, C3 at 16). With ``final_relu`` false, the last
    block of each stage ends without its ReLU, so the outputs can be negative.
    """

    def __init__(self, channels: Sequence[int], form: str = "basic", stage_blocks: Sequence[int] = (2, 2, 2),
                 final_relu: bool = True) -> None:
        super().__init__()
        c1, c2, c3 = channels
        stages, c_in = [], 2 * c3
        for c_out, blocks in zip((c3, c2, c1), stage_blocks):
            stage = [residual_block(form, c_in, c_out, "up")] + [residual_block(form, c_out, c_out)
                                                                  for _ in range(blocks - 1)]
            stage[-1].final_relu = final_relu
            stages.append(nn.Sequential(*stage))
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        init_like_reference(self)

    def forward(self, embedding: torch.Tensor) -> list[torch.Tensor]:
        outputs, x = [], embedding
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs[::-1]


#: RD4AD's two student forms: block type, OCBE blocks and decoder blocks per stage.
STUDENT_FORMS = {"basic": (2, (2, 2, 2)),        # resnet18 (BN_layer(AttnBasicBlock, 2), de_resnet18)
                 "bottleneck": (3, (3, 4, 6))}   # wide_resnet50_2 (width 128), de_wide_resnet50_2


def build_student(channels: Sequence[int], form: str, final_relu: bool, seed: int
                  ) -> tuple[OneClassBottleneck, StudentDecoder]:
    """OCBE and decoder of ``form`` (see :data:`STUDENT_FORMS`) for teacher channels
    ``(C1, C2, C3)``, initialised from ``seed`` (the global torch RNG is left as it was)."""
    ocbe_blocks, stage_blocks = STUDENT_FORMS[form]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return (OneClassBottleneck(channels, form, ocbe_blocks),
                StudentDecoder(channels, form, stage_blocks, final_relu))


# --------------------------------------------------------------------------- loss and map

def distillation_loss(teacher: Sequence[torch.Tensor], student: Sequence[torch.Tensor]) -> torch.Tensor:
    """RD4AD's training loss (``main.py: loss_fucntion``, not the paper's per-pixel form):
    ``Σ_levels mean_images (1 − cos(vec(F_teacher), vec(F_student)))``, where ``vec`` flattens an
    image's whole ``C×h×w`` map into one vector."""
    return sum((1 - F.cosine_similarity(t.flatten(1), s.flatten(1), dim=1)).mean() for t, s in zip(teacher, student))


def level_distance_sum(teacher: Sequence[torch.Tensor], student: Sequence[torch.Tensor],
                       resolution: int) -> torch.Tensor:
    """``N×R×R`` float64: per level, ``1 − cos`` along channels at each position, up-sampled
    bilinearly with ``align_corners=True`` to ``R = resolution``, summed over levels
    (RD4AD ``test.py: cal_anomaly_map``, mode ``'a'``)."""
    total = torch.zeros(len(teacher[0]), resolution, resolution, dtype=torch.float64)
    for t, s in zip(teacher, student):
        distance = 1 - F.cosine_similarity(t, s, dim=1)
        up = F.interpolate(distance[:, None], size=(resolution, resolution), mode="bilinear", align_corners=True)
        total += up[:, 0].double().cpu()
    return total


# --------------------------------------------------------------------------- training

def train_student(ocbe: OneClassBottleneck, decoder: StudentDecoder, teacher: Sequence[torch.Tensor], *,
                  epochs: int, batch_size: int, lr: float, betas: tuple[float, float], seed: int,
                  device: torch.device, progress: ProgressCallback | None = None) -> list[float]:
    """Train OCBE and decoder on cached teacher levels (``N×C×h×w`` each) with
    :func:`distillation_loss`, as RD4AD's ``main.py``: Adam over both (``lr``, ``betas``),
    mini-batches of ``batch_size`` images in an order reshuffled each epoch (``torch.randperm``
    from a generator seeded with ``seed``), the last batch kept even when smaller, BatchNorm in
    training mode. Leaves both modules in eval mode; returns the mean batch loss of each epoch."""
    n = len(teacher[0])
    optimiser = torch.optim.Adam(list(decoder.parameters()) + list(ocbe.parameters()), lr=lr, betas=betas)
    generator = torch.Generator().manual_seed(seed)
    history = []
    ocbe.train()
    decoder.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator)
        losses = []
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size]
            levels = [level[index].to(device) for level in teacher]
            loss = distillation_loss(levels, decoder(ocbe(levels)))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        history.append(float(np.mean(losses)))
        if progress is not None:
            progress("epochs", epoch + 1, epochs)
    ocbe.eval()
    decoder.eval()
    return history


# --------------------------------------------------------------------------- detector

class ReverseDistillation(BackboneDetector):
    """Reverse Distillation (RD4AD): a decoder restores the teacher's features from a one-class bottleneck.

    Definition (following hq-deng/RD4AD@6554076):

    * Teacher: the frozen backbone's three ``feature_layers`` F1, F2, F3 (strides 4/8/16; blocks
      2/4/10 of EfficientNet-Lite0, layer1-3 of a ResNet). No augmentation, so they are computed
      once at fit.
    * Student: the OCBE (two stride-2 convs from F1, one from F2, concatenated with F3, residual
      blocks to 2·C3 channels at stride 32), then a decoder of three stages of residual blocks
      that up-sample with 2×2 transposed convs back to C3, C2, C1 channels; Kaiming-normal init.
      ``student="basic"``: RD4AD's ResNet-18 student (2 OCBE blocks, stages [2, 2, 2]);
      ``"bottleneck"``: its Wide-ResNet-50-2 student (3 bottleneck blocks of inner width half
      their output, stages [3, 4, 6]). With the same weights, both give the reference code's
      outputs exactly for resnet18 and wide_resnet50_2 channels (checked against
      hq-deng/RD4AD's modules). EfficientNet-Lite0: 2.20 M + 0.64 M parameters.
    * Loss: Σ over levels of the batch mean of 1 − cos(vec(F_teacher), vec(F_student)), vec
      flattening an image's whole C×h×w map (the code's form, not the paper's per-pixel one).
      Adam (lr 0.005, betas 0.5/0.999) over OCBE + decoder, batch 16, shuffled, last batch kept.
    * Map: per level, 1 − cosine similarity along channels at each position, up-sampled bilinearly
      (align_corners=True) to ``resolution``, summed over levels, Gaussian-blurred with σ =
      ``sigma`` (scipy, reflect borders), resized bilinearly to the image. BatchNorm in eval mode.
      Image score: the maximum of the map.

    Departures from the reference:

    * Backbone: EfficientNet-Lite0 blocks 2/4/10 by default (reference: wide_resnet50_2 layer1-3,
      whose weights are not available offline here). vgg19_bn is refused: its last level is at
      stride 32, not 16.
    * Student of the other backbones (efficientnet_lite0, tiny): the reference's ResNet-18 form
      with its channel numbers replaced by the teacher's (C1 → C2 → C3, 3·C3 → 2·C3; Lite0: 24 →
      40 → 112, 336 → 224). The reference's unused conv4/bn4 (never in the forward, so no
      gradient and no Adam step) are not built.
    * ``decoder_relu`` (unset: off for efficientnet_lite0): the last block of each decoder stage
      ends without its ReLU when the teacher's features can be negative. Lite0's block outputs
      are a linear projection plus a residual, about half of them negative; a decoder ending in
      ReLU cannot reproduce them, so the cosine could never reach 1 on normal images. This is a
      necessary adaptation to the backbone; ``decoder_relu=true`` is the ablation.
    * Schedule: preset ``quick`` (the default) trains 15 of the reference's 200 epochs, a
      shortened CPU schedule; ``preset=paper`` runs all 200. The model after the last epoch is
      the model (as the reference's reported figures); nothing is chosen on test data.
    * The shuffle order comes from a generator seeded with ``seed`` (reference: seed 111 through
      its DataLoader), so runs repeat exactly but do not reproduce the reference's order.
    * ``resolution`` must be a multiple of 32, so that the decoder's doubled sizes meet the
      teacher's (the reference runs at 256 only).
    * The map at ``resolution`` is resized to each image's own size (the reference scores the
      256-px image), and the image score is the maximum of that map; they are the reference's
      when the image is ``resolution`` pixels square.
    """

    Params = ReverseDistillationParams
    PRESETS = PRESETS

    def __init__(self, params: Any = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        p = resolve_preset(self.params, self.PRESETS)
        if p.backbone not in SUPPORTED_BACKBONES:
            raise ParamError(f"reverse_distillation needs teacher levels at strides 4, 8 and 16, which backbone "
                             f"{p.backbone!r} does not have; use one of {', '.join(SUPPORTED_BACKBONES)}")
        if p.resolution % BOTTLENECK_STRIDE:
            raise ParamError(f"reverse_distillation needs a resolution divisible by {BOTTLENECK_STRIDE} (its "
                             f"bottleneck is at stride {BOTTLENECK_STRIDE}), got {p.resolution}; e.g. "
                             f"{max(BOTTLENECK_STRIDE, round(p.resolution / BOTTLENECK_STRIDE) * BOTTLENECK_STRIDE)}")
        if p.student is None:
            p = dataclasses.replace(p, student="bottleneck" if p.backbone in BOTTLENECK_BACKBONES else "basic")
        if p.decoder_relu is None:
            p = dataclasses.replace(p, decoder_relu=p.backbone in NON_NEGATIVE_BACKBONES)
        self.params = p
        self.channels: tuple[int, int, int] | None = None
        self.ocbe: OneClassBottleneck | None = None
        self.decoder: StudentDecoder | None = None

    def teacher_levels(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None
                       ) -> list[torch.Tensor]:
        """The teacher's three levels of all ``images``, ``N×C×h×w`` float32 CPU tensors each."""
        layers = self.backbone.feature_layers
        batches = list(self.iter_features(images, layers, progress))
        return [torch.cat([batch[layer] for batch in batches]) for layer in layers]

    def fit(self, train_images: Sequence[np.ndarray], progress: ProgressCallback | None = None
            ) -> "ReverseDistillation":
        p = self.params
        n = len(check_images(train_images, "train_images"))
        if p.resolution == BOTTLENECK_STRIDE and (p.train_batch == 1 or n % p.train_batch == 1):
            raise ValueError(f"at resolution {p.resolution} the bottleneck is 1×1, so a training batch of one image "
                             "leaves BatchNorm a single value per channel; use resolution >= 64 or a train_batch "
                             f"that does not leave one of the {n} images alone")
        teacher = self.teacher_levels(train_images, progress)
        channels = tuple(int(level.shape[1]) for level in teacher)
        device = resolve_device(p.device)
        ocbe, decoder = build_student(channels, p.student, p.decoder_relu, p.seed)
        ocbe, decoder = ocbe.to(device), decoder.to(device)
        train_student(ocbe, decoder, teacher, epochs=p.epochs, batch_size=p.train_batch, lr=p.lr,
                      betas=(p.beta1, p.beta2), seed=p.seed, device=device, progress=progress)
        self.channels, self.ocbe, self.decoder = channels, ocbe, decoder
        return self

    def predict(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> Prediction:
        if self.decoder is None:
            raise self.not_fitted_error()
        p = self.params
        images = check_images(images)
        device = resolve_device(p.device)
        self.ocbe.to(device).eval()
        self.decoder.to(device).eval()

        def square_maps() -> Iterator[np.ndarray]:
            for features in self.iter_features(images, self.backbone.feature_layers, progress):
                teacher = [features[layer].to(device) for layer in self.backbone.feature_layers]
                with torch.inference_mode():
                    square = level_distance_sum(teacher, self.decoder(self.ocbe(teacher)), p.resolution)
                yield from gaussian_blur(square.numpy(), p.sigma)

        return max_scored(image_sized(square_maps(), images))

    def state_dict(self) -> dict[str, Any]:
        if self.decoder is None:
            raise self.not_fitted_error()
        return {"channels": self.channels,
                "ocbe": {k: v.detach().cpu().clone() for k, v in self.ocbe.state_dict().items()},
                "decoder": {k: v.detach().cpu().clone() for k, v in self.decoder.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        channels = tuple(int(c) for c in state["channels"])
        ocbe, decoder = build_student(channels, self.params.student, self.params.decoder_relu, self.params.seed)
        ocbe.load_state_dict(state["ocbe"])
        decoder.load_state_dict(state["decoder"])
        device = resolve_device(self.params.device)
        self.channels, self.ocbe, self.decoder = channels, ocbe.to(device).eval(), decoder.to(device).eval()
