"""Training EfficientAD's student and autoencoder against a frozen teacher, and their raw maps
(nelson1425/EfficientAD@fcab514 ``efficientad.py``).

One step, batch 1 (the reference's; it also makes the hard-loss quantile per image):

* ``T̂(x) = (teacher(x) − μ) / σ``, per-channel mean and standard deviation of the teacher's
  outputs over the training split;
* ``L_hard``: ``d = (T̂(I) − S(I)[:384])²`` element-wise; the mean of the ``d`` at or above
  their ``hard_quantile`` (0.999) quantile;
* ``L_penalty = mean(S(P)[:384]²)`` on a penalty image ``P`` (when the penalty is on);
* ``L_ae = mean((T̂(A) − AE(A))²)`` and ``L_stae = mean((AE(A) − S(A)[384:])²)`` on the
  colour-augmented view ``A`` of the same training image;
* Adam (lr, weight decay) on student and autoencoder for ``L_hard + L_penalty + L_ae + L_stae``;
  the learning rate is multiplied by 0.1 from step ``max(int(0.95·steps), 1)`` on (the
  reference's StepLR of step size ``int(0.95·steps)``, which never fires twice within the
  schedule).

Training images are visited in a fresh random order each pass through them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from detectors.efficient_ad.augment import colour_jitter, random_crop, random_grayscale
from detectors.efficient_ad.networks import TEACHER_CHANNELS
from detectors.efficient_ad.stats import ChannelMoments, upper_quantile
from detectors.features import imagenet_normalise

#: Fraction of the training images the networks train on; the rest sets the map normalisation.
TRAIN_FRACTION = 0.9
#: The learning rate drops by LR_DROP at this fraction of the steps.
LR_DROP_AT, LR_DROP = 0.95, 0.1
#: Probability that a penalty image is grey (the reference's RandomGrayscale(0.3)).
PENALTY_GRAYSCALE = 0.3
#: Column names of the per-step loss record.
LOSS_TERMS = ("hard", "penalty", "ae", "stae")


def holdout_split(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training split (``int(0.9·n)`` images, as the reference) and of the
    held-out rest, from a random permutation; each sorted. Needs ``n >= 2``."""
    if n < 2:
        raise ValueError(f"EfficientAD needs at least 2 training images (one is held out for the map "
                         f"normalisation), got {n}")
    order = rng.permutation(n)
    n_train = int(TRAIN_FRACTION * n)
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def learning_rate(step: int, steps: int, lr: float) -> float:
    """The learning rate of step ``step`` (0-based) of ``steps``: ``lr``, times :data:`LR_DROP`
    from step ``max(int(LR_DROP_AT · steps), 1)`` on."""
    return lr * (LR_DROP if step >= max(int(LR_DROP_AT * steps), 1) else 1.0)


def hard_loss(distance: torch.Tensor, q: float) -> torch.Tensor:
    """Mean of the elements of ``distance`` at or above its ``q`` quantile (the quantile itself
    carries no gradient)."""
    threshold = upper_quantile(distance, q)
    return distance[distance >= threshold].mean()


class TeacherNormaliser(nn.Module):
    """``(teacher(x) − mean) / std`` with per-channel constants, computed without gradient."""

    def __init__(self, teacher: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False)
        self.register_buffer("mean", mean.float().view(1, -1, 1, 1))
        self.register_buffer("std", std.float().view(1, -1, 1, 1))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.teacher(x) - self.mean) / self.std


@torch.no_grad()
def teacher_moments(teacher: nn.Module, views: Sequence[torch.Tensor], device: torch.device) -> ChannelMoments:
    """Per-channel moments of ``teacher``'s outputs on the ImageNet-normalised ``views``."""
    moments = ChannelMoments()
    teacher.eval()
    for x in views:
        moments.update(teacher(x[None].to(device)))
    return moments


def train_student_autoencoder(teacher: TeacherNormaliser, student: nn.Module, autoencoder: nn.Module,
                              train_units: Sequence[torch.Tensor], penalty_units: Sequence[torch.Tensor], *,
                              steps: int, lr: float, weight_decay: float, hard_quantile: float,
                              rng: np.random.Generator, device: torch.device,
                              progress: Callable[[str, int, int], None] | None = None) -> np.ndarray:
    """Train ``student`` and ``autoencoder`` for ``steps`` steps (module docstring) and return
    the ``steps × 4`` float64 record of the loss terms :data:`LOSS_TERMS`.

    ``train_units``: training images in [0, 1] at the resolution; ``penalty_units``: penalty
    images in [0, 1] at twice the resolution (empty: no penalty). Torch's global generator must
    be seeded by the caller (dropout)."""
    resolution = train_units[0].shape[-1]
    parameters = list(student.parameters()) + list(autoencoder.parameters())
    optimiser = torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    student.train()
    autoencoder.train()
    record = np.zeros((steps, len(LOSS_TERMS)), dtype=np.float64)
    order: list[int] = []
    for step in range(steps):
        if not order:
            order = rng.permutation(len(train_units)).tolist()
        unit = train_units[order.pop(0)]
        plain = imagenet_normalise(unit)[None].to(device)
        augmented = imagenet_normalise(colour_jitter(unit, rng))[None].to(device)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, steps, lr)
        terms = step_losses(teacher, student, autoencoder, plain, augmented,
                             _penalty_view(penalty_units, resolution, rng, device), hard_quantile)
        optimiser.zero_grad()
        sum(terms).backward()
        optimiser.step()
        record[step] = [float(t.detach()) for t in terms]
        if progress is not None:
            progress("train", step + 1, steps)
    student.eval()
    autoencoder.eval()
    return record


def _penalty_view(penalty_units: Sequence[torch.Tensor], resolution: int, rng: np.random.Generator,
                  device: torch.device) -> torch.Tensor | None:
    """A random penalty image: grey with probability 0.3, a random ``resolution``-px crop of its
    twice-resolution version, ImageNet-normalised; ``None`` without a penalty pool."""
    if not penalty_units:
        return None
    unit = penalty_units[int(rng.integers(len(penalty_units)))]
    view = random_crop(random_grayscale(unit, rng, PENALTY_GRAYSCALE), rng, resolution)
    return imagenet_normalise(view)[None].to(device)


def step_losses(teacher: TeacherNormaliser, student: nn.Module, autoencoder: nn.Module, plain: torch.Tensor,
                 augmented: torch.Tensor, penalty: torch.Tensor | None,
                 hard_quantile: float) -> tuple[torch.Tensor, ...]:
    """``(L_hard, L_penalty, L_ae, L_stae)`` of one step (``L_penalty`` is 0 without a penalty image)."""
    c = TEACHER_CHANNELS
    distance = (teacher(plain) - student(plain)[:, :c]) ** 2
    loss_hard = hard_loss(distance, hard_quantile)
    loss_penalty = (student(penalty)[:, :c] ** 2).mean() if penalty is not None else plain.new_zeros(())
    reconstruction = autoencoder(augmented)
    loss_ae = ((teacher(augmented) - reconstruction) ** 2).mean()
    loss_stae = ((reconstruction - student(augmented)[:, c:]) ** 2).mean()
    return loss_hard, loss_penalty, loss_ae, loss_stae


@torch.no_grad()
def raw_maps(teacher: TeacherNormaliser, student: nn.Module, autoencoder: nn.Module,
             views: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(map_st, map_ae)``, each ``N×h×w`` float32: ``mean_c (T̂ − S[:384])²`` and
    ``mean_c (AE − S[384:])²`` on ImageNet-normalised ``views`` (networks in eval mode)."""
    c = TEACHER_CHANNELS
    out = student(views)
    map_st = ((teacher(views) - out[:, :c]) ** 2).mean(dim=1)
    map_ae = ((autoencoder(views) - out[:, c:]) ** 2).mean(dim=1)
    return map_st.cpu().numpy(), map_ae.cpu().numpy()
