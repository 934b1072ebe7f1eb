"""The registered CFA detector (Lee, Lee, Song, "CFA: Coupled-hypersphere-based Feature
Adaptation for Target-Oriented Anomaly Localization", IEEE Access 2022)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from detectors.cfa.loss import CFAHead
from detectors.cfa.model import fused_features
from detectors.cfa.training import patch_scores, train_heads
from detectors.common import BackboneDetector, BackboneParams, max_scored, resolve_preset, to_image_maps
from pixeval import Prediction, ProgressCallback, param

#: Named settings of the costly hyperparameters (fields left at ``None`` take them from here).
#: ``paper``: the CFA code's settings: 30 epochs, one centre per feature position (gamma_c = 1).
#: ``standard``: 8 epochs and a K-means-compressed bank of (h·w)/4 centres (1024 at 256 px); the
#: setting of the CFA / Sp-CFA study in benchmarks/README.md (where it was called ``quick``).
#: ``quick``: the CPU default: 4 epochs and a bank of (h·w)/8 centres (512 at 256 px), about a
#: third of ``standard``'s fitting time. All three are measured in benchmarks/README.md.
PRESETS: dict[str, dict[str, int]] = {
    "paper": {"epochs": 30, "gamma_c": 1},
    "standard": {"epochs": 8, "gamma_c": 4},
    "quick": {"epochs": 4, "gamma_c": 8},
}


@dataclass
class CFAParams(BackboneParams):
    """CFA hyperparameters (besides the shared backbone ones). Defaults are the CFA code's."""

    preset: str = param("quick", "Named setting of epochs and gamma_c when those are left unset: 'paper' "
                        "(30 epochs, full memory bank), 'standard' (8 epochs, bank compressed 4x by K-means) "
                        "or 'quick' (4 epochs, bank compressed 8x).",
                        choices=tuple(PRESETS))
    epochs: int | None = param(None, "Training epochs (unset: from the preset).", min=0)
    gamma_c: int | None = param(None, "Memory-bank compression: K-means to (h*w)//gamma_c centres "
                                "(1 = one centre per position; unset: from the preset).", min=1)
    gamma_d: int = param(1, "Descriptor channel compression: D // gamma_d output channels.", min=1)
    train_batch: int = param(4, "Training mini-batch size (images).", min=1)
    lr: float = param(1e-3, "AdamW learning rate.", min=0.0)
    weight_decay: float = param(5e-4, "AdamW weight decay (applies to the radius too, as in the CFA code).",
                                min=0.0)
    K: int = param(3, "Nearest centres attracted (and softmin-weighted in the score).", min=1)
    J: int = param(3, "Hard-negative centres repelled.", min=1)
    alpha: float = param(0.1, "Repulsion margin.", min=0.0)
    nu: float = param(1e-3, "Loss scale 1/nu.", min=1e-12)
    radius: float = param(1e-5, "Initial soft-boundary radius r (learned).", min=0.0)
    sigma: float = param(4.0, "Gaussian blur of the map at network resolution (0 = none).", min=0.0)


class CFA(BackboneDetector):
    """CFA: a CoordConv patch descriptor trained towards a memory bank of normal features.

    Faithful to the original code (see detectors.cfa.model and detectors.cfa.loss), including the
    learned radius, and without its test-set min-max normalisation and test-set epoch selection:
    the model after the last epoch is the model, and maps are raw distances. Images are resized
    to ``resolution`` (the CFA code's "R" setting: no centre crop; the paper's best backbone is
    wide_resnet50_2). Pipeline: frozen backbone (three levels); 3×3 mean, upsample, concatenate (computed once
    per image and cached in float16); 1×1 CoordConv; softmin distance to the bank; bilinear
    upsampling to ``resolution``; Gaussian blur ``sigma``; bilinear resize to the image's own
    size. Image score = max of the map.
    """

    Params = CFAParams
    PRESETS = PRESETS

    def __init__(self, params: Any = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        self.params = resolve_preset(self.params, self.PRESETS)
        self.head: CFAHead | None = None

    # ------------------------------------------------------------------ shared with Sp-CFA
    def features(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> torch.Tensor:
        """Cached fused features of ``images`` at the detector's resolution."""
        return fused_features(self.backbone, images, self.params.resolution, batch_size=self.params.batch_size,
                              device=self.params.device, progress=progress)

    def new_head(self, in_channels: int, seed: int, coordconv: bool = True) -> CFAHead:
        p = self.params
        return CFAHead(in_channels, p.gamma_d, seed=seed, K=p.K, J=p.J, alpha=p.alpha, nu=p.nu, radius=p.radius,
                       coordconv=coordconv)

    def train_branches(self, heads: Sequence[CFAHead], features: Sequence[torch.Tensor], weights: Sequence[float],
                       progress: ProgressCallback | None = None, banks: Sequence[str] | None = None,
                       bank_sample: int = 20_000) -> list[float]:
        """Initialise each head's bank from its features (``banks[i]``: its construction,
        ``"positions"`` by default), then train them together."""
        p = self.params
        for i, (head, f) in enumerate(zip(heads, features)):
            head.init_bank(f, p.gamma_c, seed=p.seed, bank="positions" if banks is None else banks[i],
                           bank_sample=bank_sample)
        return train_heads(heads, features, weights, epochs=p.epochs, batch_size=p.train_batch, lr=p.lr,
                           weight_decay=p.weight_decay, seed=p.seed, progress=progress)

    # ------------------------------------------------------------------ contract
    def fit(self, train_images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> "CFA":
        features = self.features(train_images, progress)
        self.head = self.new_head(features.shape[1], self.params.seed)
        self.train_branches([self.head], [features], [1.0], progress)
        return self

    def predict(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> Prediction:
        if self.head is None:
            raise self.not_fitted_error()
        images = list(images)
        scores = patch_scores(self.head, self.features(images, progress))
        maps = to_image_maps(scores, images, self.params.resolution, self.params.sigma)
        return max_scored(maps)

    def state_dict(self) -> dict[str, Any]:
        if self.head is None:
            raise self.not_fitted_error()
        return {"in_channels": self.head.in_channels,
                "head": {k: v.clone() for k, v in self.head.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.head = self.new_head(state["in_channels"], self.params.seed)
        self.head.bank = torch.empty_like(state["head"]["bank"])
        self.head.load_state_dict(state["head"])
        self.head.eval()
