"""EfficientAD (Batzner, Heckler, König, WACV 2024): a student PDN and an autoencoder trained to
imitate a frozen PDN teacher. :mod:`~detectors.efficient_ad.networks` (PDN-S, PDN-M,
autoencoder), :mod:`~detectors.efficient_ad.teacher` (published weights or offline distillation
and its image pool), :mod:`~detectors.efficient_ad.training` (losses and the training loop),
:mod:`~detectors.efficient_ad.stats` (moments, quantiles, map normalisation),
:mod:`~detectors.efficient_ad.detector` (the registered detector)."""

from detectors.efficient_ad.detector import PRESETS, EfficientAD, EfficientADParams

__all__ = ["PRESETS", "EfficientAD", "EfficientADParams"]
