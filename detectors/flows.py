"""Normalizing-flow blocks for CFLOW-AD and FastFlow: FrEIA's AllInOne coupling block, in plain torch.

The reference implementations build their flows from FrEIA's ``AllInOneBlock`` chained by a
``SequenceINN`` (vislearn/FrEIA; CFLOW-AD tested on commit cc5cf5e, FastFlow pins 1779d1f).
FrEIA is not a dependency: the block is short, and the FrEIA released since August 2023 changed
its soft clamp (below), so an installed FrEIA would not give the references' flows. This module
writes the configuration both references use (no Householder reflections, no reverse
pre-permutation, no GIN volume normalisation) from its definition.

**Forward** of an input ``x`` with ``C`` channels (a vector ``N×C`` or a map ``N×C×H×W``) and an
optional condition ``c`` of the same spatial shape:

1. split ``x`` into ``x1`` (the first ``C1 = C - C//2`` channels) and ``x2`` (the last ``C2 = C//2``);
2. ``a = 0.1 · f([x1; c])`` with the subnet ``f`` (``C1 + C_cond → 2·C2`` channels); ``s`` is the
   first ``C2`` channels of ``a``, ``t`` the last ``C2``;
3. soft clamp of the log-scale: ``J = clamp · tanh(s)`` (FrEIA up to commit ae74fd4 and
   anomalib's copy to this day; later FrEIA uses ``clamp · tanh(s / clamp)``);
4. affine coupling: ``y2 = x2 · exp(J) + t``, ``y = [x1; y2]``;
5. global affine, per channel: ``y · g + b`` with ``g = 0.1 · softplus_β(γ)`` (β = 0.5: ``0.2 ·
   log(1 + exp(γ / 2))``), ``γ`` starting at ``2 · log(exp(5 · init) − 1)`` so that ``g = init``
   (1 by default), ``b`` at 0 (FrEIA's ``global_affine_type="SOFTPLUS"``);
6. a fixed channel mixing ``W`` drawn at construction: a random permutation (hard) or a
   random rotation, Haar-distributed on SO(C) (soft); ``out = W · v`` at each position.

``log|det J|`` of the block, per sample: ``Σ J`` over every entry of ``x2`` (channels × positions)
plus ``(number of positions) · Σ_c log g_c``; ``W`` is orthogonal and adds nothing. A sequence of
blocks sums them. The inverse undoes the steps in reverse order (tested, not used by the
detectors).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: FrEIA's scale of the subnet output (both the log-scale and the shift).
SUBNET_SCALE = 0.1
#: β of the SOFTPLUS global affine scale ``g = 0.1 · softplus_β(γ)``.
SOFTPLUS_BETA = 0.5


def random_rotation(channels: int, generator: torch.Generator) -> torch.Tensor:
    """A ``C×C`` rotation drawn from the Haar measure on SO(C): the Q of a QR decomposition of a
    standard Gaussian matrix, its columns' signs fixed by R's diagonal, one column negated when
    the determinant is −1 (float64, then float32)."""
    gaussian = torch.randn(channels, channels, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.float()


def random_permutation(channels: int, generator: torch.Generator) -> torch.Tensor:
    """A ``C×C`` permutation matrix of a uniformly drawn channel order: row j holds its 1 at
    column ``perm[j]``, so ``(W v)_j = v_perm[j]``."""
    order = torch.randperm(channels, generator=generator)
    return torch.eye(channels)[order]


class AllInOneBlock(nn.Module):
    """One affine coupling block as FrEIA's ``AllInOneBlock`` (definition in the module docstring).

    Args:
        channels: ``C``, the channels of the input.
        subnet: ``subnet(c_in, c_out)`` builds ``f`` from ``C1 + cond_channels`` to ``2·C2``
            channels (a linear map for vectors, a convolution stack for maps).
        cond_channels: channels of the condition concatenated to ``x1`` (0: none).
        clamp: α of the soft clamp ``α · tanh(s)``.
        permute_soft: a random rotation instead of a random permutation.
        generator: the source of the permutation or rotation (seed it for a reproducible block).
        affine_init: the initial global scale ``g``.
    """

    def __init__(self, channels: int, subnet: Callable[[int, int], nn.Module], *, cond_channels: int = 0,
                 clamp: float = 2.0, permute_soft: bool = False, generator: torch.Generator | None = None,
                 affine_init: float = 1.0) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f"a coupling block needs at least 2 channels, got {channels}")
        self.channels, self.cond_channels, self.clamp = channels, cond_channels, float(clamp)
        self.split = channels - channels // 2
        self.subnet = subnet(self.split + cond_channels, 2 * (channels // 2))
        gamma0 = 2.0 * math.log(math.exp(5.0 * affine_init) - 1.0)
        self.global_scale = nn.Parameter(torch.full((channels,), gamma0))
        self.global_offset = nn.Parameter(torch.zeros(channels))
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        mixing = random_rotation(channels, generator) if permute_soft else random_permutation(channels, generator)
        self.register_buffer("mixing", mixing)

    def _channels_last(self, v: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        """``matrix · v`` over the channel axis (axis 1) at every position."""
        return torch.einsum("ij,nj...->ni...", matrix.to(v.dtype), v)

    def _broadcast(self, v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """A per-channel vector shaped to multiply ``like`` (``C`` then one axis per position axis)."""
        return v.view(1, -1, *([1] * (like.dim() - 2))).to(like.dtype)

    def _coefficients(self, x1: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Clamped log-scale J and shift t from ``x1`` (and the condition)."""
        inputs = x1 if cond is None else torch.cat([x1, cond.to(x1.dtype)], dim=1)
        a = SUBNET_SCALE * self.subnet(inputs)
        s, t = a[:, :self.channels // 2], a[:, self.channels // 2:]
        return self.clamp * torch.tanh(s), t

    def global_gain(self) -> torch.Tensor:
        """``g = 0.1 · softplus_β(γ)`` per channel."""
        return SUBNET_SCALE * F.softplus(self.global_scale, beta=SOFTPLUS_BETA)

    def _positions(self, x: torch.Tensor) -> int:
        return math.prod(x.shape[2:])

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, log|det J|)``, the log-determinant per sample (shape ``(N,)``)."""
        x1, x2 = x[:, :self.split], x[:, self.split:]
        j, t = self._coefficients(x1, cond)
        y = torch.cat([x1, x2 * torch.exp(j) + t], dim=1)
        gain = self.global_gain()
        y = y * self._broadcast(gain, y) + self._broadcast(self.global_offset, y)
        log_det = j.flatten(1).sum(dim=1) + self._positions(x) * torch.log(gain).sum().to(x.dtype)
        return self._channels_last(y, self.mixing), log_det

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, −log|det J|)``: the forward map undone."""
        v = self._channels_last(y, torch.linalg.inv(self.mixing))  # Wᵀ up to the rounding of W's entries
        gain = self.global_gain()
        v = (v - self._broadcast(self.global_offset, v)) / self._broadcast(gain, v)
        x1, y2 = v[:, :self.split], v[:, self.split:]
        j, t = self._coefficients(x1, cond)
        x = torch.cat([x1, (y2 - t) * torch.exp(-j)], dim=1)
        log_det = j.flatten(1).sum(dim=1) + self._positions(y) * torch.log(gain).sum().to(y.dtype)
        return x, -log_det


class SequenceFlow(nn.Module):
    """Blocks applied in order, the same condition passed to each; the log-determinants add up
    (FrEIA's ``SequenceINN``)."""

    def __init__(self, blocks: Sequence[AllInOneBlock]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, log|det J|)`` per sample."""
        log_det = torch.zeros(len(x), dtype=x.dtype, device=x.device)
        for block in self.blocks:
            x, block_log_det = block(x, cond)
            log_det = log_det + block_log_det
        return x, log_det

    def inverse(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, −log|det J|)``."""
        log_det = torch.zeros(len(z), dtype=z.dtype, device=z.device)
        for block in reversed(self.blocks):
            z, block_log_det = block.inverse(z, cond)
            log_det = log_det + block_log_det
        return z, log_det
