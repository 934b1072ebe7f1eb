"""EfficientAD's networks: the patch description networks (PDN-S, PDN-M) and the autoencoder,
as in ``nelson1425/EfficientAD@fcab514:common.py`` (and anomalib's port).

* **PDN-S**: conv 4×4 (3 → 128), ReLU, avg-pool 2×2 s2, conv 4×4 (128 → 256), ReLU, avg-pool
  2×2 s2, conv 3×3 (256 → 256), ReLU, conv 4×4 (256 → out). Receptive field 33×33 px, output
  stride 4. **PDN-M**: 256 and 512 channels, an extra conv 1×1 (512 → 512) + ReLU before the
  3×3 conv, and a ReLU + conv 1×1 (out → out) after the last 4×4 conv.
* Without padding (training and inference), a 256-px input gives a 56×56 output. With padding
  (3, 3, 1 on the first three convs, 1 on both pools, used only to distil the teacher) it gives
  64×64. Both variants have the same parameters under the same keys (``nn.Sequential``
  indices, the key names of the reference's ``teacher_small.pth`` / ``teacher_medium.pth``).
* **Autoencoder**: five conv 4×4 s2 p1 (3 → 32 → 32 → 64 → 64 → 64) with ReLU and a last conv
  down to 1×1 (8×8 at 256 px); decoder: six times [bilinear resize → conv 4×4 p2 (64 → 64) →
  ReLU → Dropout(0.2)] to 3, 8, 15, 32, 63, 127 at 256 px, then a resize to the unpadded PDN's
  output size, conv 3×3 p1 → ReLU → conv 3×3 p1 (64 → out). The sizes follow anomalib's
  formulas of the resolution (identical to the reference's constants at 256 px), floored at 1 so
  small test resolutions work; the last encoder kernel is whatever size the five stride-2 convs
  leave.

All networks take ImageNet-normalised input, as the reference's data transform gives them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Channels of the teacher's output; the student has twice as many.
TEACHER_CHANNELS = 384
MODEL_SIZES = ("small", "medium")
#: Output cells the unpadded PDN loses on each side against the padded one (16 input px / stride 4).
PDN_BORDER = 4


def patch_description_network(model_size: str, out_channels: int, padded: bool = False) -> nn.Sequential:
    """PDN-S (``model_size="small"``) or PDN-M (``"medium"``) with ``out_channels`` outputs, with
    the teacher-distillation padding when ``padded``."""
    pad = 1 if padded else 0
    if model_size == "small":
        return nn.Sequential(
            nn.Conv2d(3, 128, 4, padding=3 * pad), nn.ReLU(),
            nn.AvgPool2d(2, 2, padding=pad),
            nn.Conv2d(128, 256, 4, padding=3 * pad), nn.ReLU(),
            nn.AvgPool2d(2, 2, padding=pad),
            nn.Conv2d(256, 256, 3, padding=pad), nn.ReLU(),
            nn.Conv2d(256, out_channels, 4))
    if model_size == "medium":
        return nn.Sequential(
            nn.Conv2d(3, 256, 4, padding=3 * pad), nn.ReLU(),
            nn.AvgPool2d(2, 2, padding=pad),
            nn.Conv2d(256, 512, 4, padding=3 * pad), nn.ReLU(),
            nn.AvgPool2d(2, 2, padding=pad),
            nn.Conv2d(512, 512, 1), nn.ReLU(),
            nn.Conv2d(512, 512, 3, padding=pad), nn.ReLU(),
            nn.Conv2d(512, out_channels, 4), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 1))
    raise ValueError(f"model_size must be one of {', '.join(MODEL_SIZES)}, got {model_size!r}")


def pdn_output_size(resolution: int, padded: bool = False) -> int:
    """Height (= width) of a PDN's output for a ``resolution × resolution`` input (either size
    variant: both have the same spatial geometry); 0 or less when the input is too small."""
    pad = 1 if padded else 0
    size = resolution + 2 * 3 * pad - 3          # conv 4×4
    size = (size + 2 * pad - 2) // 2 + 1         # avg-pool 2×2 s2
    size = size + 2 * 3 * pad - 3                # conv 4×4
    size = (size + 2 * pad - 2) // 2 + 1         # avg-pool 2×2 s2
    size = size + 2 * pad - 2                    # conv 3×3
    return size - 3                              # conv 4×4


def encoder_output_size(resolution: int) -> int:
    """Size left after the autoencoder's five conv 4×4 s2 p1 layers (8 at 256 px)."""
    size = resolution
    for _ in range(5):
        size = (size + 2 - 4) // 2 + 1
    return size


def decoder_sizes(resolution: int) -> tuple[int, ...]:
    """The decoder's seven resize targets: anomalib's ``R//64 − 1, R//32, R//16 − 1, R//8,
    R//4 − 1, R//2 − 1`` (3, 8, 15, 32, 63, 127 at 256 px, each at least 1), then the unpadded
    PDN's output size (56 at 256 px) so that the output lines up with the student's."""
    r = resolution
    steps = (r // 64 - 1, r // 32, r // 16 - 1, r // 8, r // 4 - 1, r // 2 - 1)
    return tuple(max(size, 1) for size in steps) + (pdn_output_size(r),)


class Autoencoder(nn.Module):
    """EfficientAD's autoencoder for ``resolution × resolution`` inputs, ``out_channels`` outputs
    at the unpadded PDN's output size."""

    def __init__(self, resolution: int, out_channels: int = TEACHER_CHANNELS) -> None:
        super().__init__()
        bottleneck = encoder_output_size(resolution)
        if bottleneck < 1 or pdn_output_size(resolution) < 1:
            raise ValueError(f"resolution {resolution} is too small for EfficientAD's networks")
        self.sizes = decoder_sizes(resolution)
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, bottleneck))
        self.up_convs = nn.ModuleList(nn.Conv2d(64, 64, 4, padding=2) for _ in range(6))
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(64, out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encoder(x)
        for size, conv in zip(self.sizes[:-1], self.up_convs):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            x = self.dropout(F.relu(conv(x)))
        x = F.interpolate(x, size=(self.sizes[-1],) * 2, mode="bilinear", align_corners=False)
        return self.head(x)
