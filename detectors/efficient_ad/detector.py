"""The registered EfficientAD detector (Batzner, Heckler, König, "EfficientAD: Accurate Visual
Anomaly Detection at Millisecond-Level Latencies", WACV 2024), EfficientAD-S by default."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from detectors.common import BackboneDetector, BackboneParams, image_sized, max_scored, resolve_preset
from detectors.efficient_ad.networks import (
    MODEL_SIZES,
    PDN_BORDER,
    TEACHER_CHANNELS,
    Autoencoder,
    patch_description_network,
    pdn_output_size,
)
from detectors.efficient_ad.stats import QuantileNormalisation
from detectors.efficient_ad.teacher import cached_teacher, load_teacher_weights, offline_photographs
from detectors.efficient_ad.training import (
    LOSS_TERMS,
    TeacherNormaliser,
    holdout_split,
    raw_maps,
    teacher_moments,
    train_student_autoencoder,
)
from detectors.features import (
    check_images,
    imagenet_normalise,
    images_to_tensor,
    resolve_device,
    unit_tensor,
    use_available_cores,
)
from pixeval import ParamError, Prediction, ProgressCallback, param

#: Named settings of the costly hyperparameters (fields left at ``None`` take them from here).
#: ``paper``: the reference's schedules: 70 000 training steps (batch 1) and, for the teacher,
#: 60 000 distillation iterations of 16 images with target statistics over 10 000 images:
#: about 50 h of training per category plus days of distillation on 2 CPU cores (a GPU job).
#: ``quick``: the CPU default, a shortened schedule that is NOT converged: 3 of 60 000 teacher
#: iterations (about 50 s, paid once per machine: the teacher is cached), target statistics over
#: 16 samples, and 4 of 70 000 training steps. Same networks, losses, optimiser and learning
#: rates; only fewer passes. Measured (benchmarks/README.md, "EfficientAD: what a CPU can train"): at 4-300
#: steps the student's outputs stay near 0, so ``map_st`` is practically the energy of the
#: standardised teacher outputs (correlation 0.9999 after 4 steps, 0.98 after 30), and 15-300
#: steps change P-AUPR by at most 0.015; the teacher's distillation matters more. The quick row
#: therefore measures a per-channel standardised teacher-feature score plus the autoencoder
#: term, not EfficientAD's trained student; ``paper`` (a GPU job) is the method.
PRESETS: dict[str, dict[str, int]] = {
    "paper": {"train_steps": 70_000, "teacher_steps": 60_000, "teacher_norm_images": 10_000},
    "quick": {"train_steps": 4, "teacher_steps": 3, "teacher_norm_images": 16},
}


@dataclass
class EfficientADParams(BackboneParams):
    """EfficientAD hyperparameters (besides the shared backbone ones). Defaults are the reference's."""

    preset: str = param("quick", "Named setting of train_steps, teacher_steps and teacher_norm_images when those "
                        "are left unset: 'paper' (70 000 steps; teacher distilled for 60 000 iterations) or "
                        "'quick' (a shortened, unconverged CPU schedule: 4 steps, 3 teacher iterations).",
                        choices=tuple(PRESETS))
    model_size: str = param("small", "PDN size of teacher and student: 'small' (EfficientAD-S) or 'medium' "
                            "(EfficientAD-M).", choices=MODEL_SIZES)
    train_steps: int | None = param(None, "Training steps of student and autoencoder, one image each "
                                    "(unset: from the preset).", min=1)
    teacher_weights: str | None = param(None, "Local state-dict file of the published PDN teacher (e.g. "
                                        "nelson1425/EfficientAD models/teacher_small.pth) to load instead of "
                                        "distilling one; the backbone is then unused.")
    teacher_steps: int | None = param(None, "Distillation iterations of the substitute teacher (unset: from the "
                                      "preset; ignored with teacher_weights; 0: the PDN's random "
                                      "initialisation, undistilled, an ablation).", min=0)
    teacher_cache: bool = param(True, "Keep the distilled teacher in the user cache ($PIXEVAL_DATA or "
                                "~/.cache/pixeval, folder efficient_ad-teachers) and reuse it in every later fit "
                                "with the same backbone and teacher settings: it never sees the category's images, "
                                "so one teacher serves all categories.")
    teacher_batch: int = param(16, "Pool samples per distillation iteration.", min=1)
    teacher_norm_images: int | None = param(None, "Pool samples over which the distillation target's channel "
                                            "mean and std are estimated (unset: from the preset).", min=1)
    penalty: bool = param(True, "Penalise the student's outputs on offline pool photographs (the reference's "
                          "ImageNet penalty); off is the reference code's default without ImageNet.")
    hard_quantile: float = param(0.999, "Quantile of the student-teacher distances above which the hard loss "
                                 "averages.", min=0.0, max=1.0)
    lr: float = param(1e-4, "Adam learning rate of the training and of the teacher distillation.", min=0.0)
    weight_decay: float = param(1e-5, "Adam weight decay of the training and of the teacher distillation.",
                                min=0.0)


class EfficientAD(BackboneDetector):
    """EfficientAD: a student PDN and an autoencoder trained to imitate a frozen PDN teacher.

    Definition (nelson1425/EfficientAD@fcab514, which reproduces the paper; anomalib's port):

    * Networks: teacher PDN (384 outputs), student PDN (768 outputs), autoencoder; PDN-S, or
      PDN-M with ``model_size='medium'``. Images are resized to ``resolution`` (256 in the
      reference) and ImageNet-normalised.
    * Teacher: the published weights (``teacher_weights``), or a substitute distilled once per
      recipe and cached (see departures).
    * Training: the training images split 90/10 (seeded); on the 90 %, ``train_steps`` steps of
      batch 1 of ``L_hard`` (mean of the student-teacher squared distances at or above their
      0.999 quantile) + ``L_penalty`` + ``L_ae`` + ``L_stae`` (autoencoder and its student head
      on a colour-jittered view), Adam 1e-4, weight decay 1e-5, lr × 0.1 at 95 % of the steps;
      teacher outputs normalised per channel by their mean and std over the 90 %.
    * Maps: ``map_st = mean_c (T̂ − S[:384])²`` and ``map_ae = mean_c (AE − S[384:])²`` at the
      PDN's output size (56×56 at 256 px); each normalised as ``0.1·(map − q_a)/(q_b − q_a)``
      with q_a, q_b the 0.9 and 0.995 quantiles (exact, numpy) of that map over the held-out
      10 % of the training images; combined ``0.5·st + 0.5·ae``; padded by 4 cells; resized
      bilinearly (``align_corners=False``) straight to each image's own size. No blur. Image
      score = max of the map.

    Departures from the reference:

    * Teacher (unless ``teacher_weights`` is given): the published teacher (distilled from
      WRN101 on ImageNet) cannot be downloaded here. A padded PDN is distilled with the
      reference's recipe, but from the backbone's two deeper feature layers (EfficientNet-Lite0
      blocks.4 and blocks.10 at twice the resolution by default, WRN101 layer2/layer3 in the
      reference) on an offline pool of 16 photographs bundled with scikit-image and
      scikit-learn (never scikit-image's gravel, grass and brick, from which the built-in
      dataset is cut), as random resized crops and flips (ImageNet, no crops, in the
      reference), for ``teacher_steps`` iterations of ``teacher_batch`` samples, with target
      statistics over ``teacher_norm_images`` samples (60 000 × 16 and 10 000 in the
      reference). Like the reference's, it never sees the category's images, so it is
      distilled once per recipe and seed and kept in the user cache (``teacher_cache``).
    * Penalty images: the same 16 photographs (not the training images), resized to twice the
      resolution, grey with p 0.3, then a random crop (ImageNet and a centre crop in the
      reference).
    * Pad order: the raw maps are padded with 0 and then normalised (equivalently, the
      normalised maps are padded with their value at raw 0), so the border lies below every
      normal level. The reference pads the normalised maps with 0, the level of q_a, which puts
      a band of mid-high scores around every image; anomalib pads the raw maps with 0 too but
      takes its quantiles from padded and resized maps. Quantiles here come from the unpadded
      maps at the PDN's output size, as the reference.
    * Normalisation guard: when q_b − q_a is below 1e-6·max(|q_b|, 1e-6) that floor is the
      spread (the reference divides by zero); ``state_dict()['normalisation']`` records whether
      it fired.
    * Teacher channel statistics are accumulated in float64 (the reference: float32). A channel
      of zero spread (a dead ReLU channel of the ``tiny`` test backbone, say) is divided by 1,
      in the teacher's and in the distillation target's normalisation, instead of by 0.
    * The 90/10 split is drawn from ``seed`` (the reference: torch's ``random_split``, seed 42).
      Images are resized as everywhere in ``detectors`` (torch's antialiased bilinear, see
      ``detectors.features``; the reference: PIL).
    * The colour jitter and the penalty's grey/crop act on float images already resized to the
      resolution (or twice it), not on the full-size uint8 image.
    * The autoencoder's sizes follow anomalib's formulas of the resolution (equal to the
      reference's at 256 px), floored at 1 so small test resolutions work.
    * Schedule: the ``quick`` preset (the default) is a shortened, unconverged CPU schedule whose
      student stays practically untrained, so its maps score the standardised teacher features
      (see ``PRESETS``); ``paper`` is the reference's.

    Cost per fit: once per teacher recipe (then cached), ``teacher_steps × teacher_batch``
    padded-PDN forward and backward passes at the resolution and backbone passes at twice it
    (about 0.9 s each for PDN-S at 256 px on 2 cores) and ``teacher_norm_images`` more backbone
    passes; at every fit, ``train_steps`` steps (about 2.6 s each
    with the penalty, 1.9 s without), one teacher pass per training image and one full pass per
    held-out image. Predict: about 0.46 s per image at 256 px on 2 cores. Fitted state: the
    three networks, about 8 M float32 parameters (32 MB) for EfficientAD-S.
    """

    Params = EfficientADParams
    PRESETS = PRESETS

    def __init__(self, params: Any = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        self.params = resolve_preset(self.params, self.PRESETS)
        if pdn_output_size(self.params.resolution) < 1:
            raise ParamError(f"resolution={self.params.resolution} is too small for EfficientAD's PDN "
                             "(33×33-px receptive field); use resolution >= 33 (the reference uses 256)")
        self.teacher: TeacherNormaliser | None = None
        self.student: torch.nn.Module | None = None
        self.autoencoder: Autoencoder | None = None
        self.teacher_stats: tuple[np.ndarray, np.ndarray] | None = None
        self.normalisation: dict[str, QuantileNormalisation] = {}
        self.record: dict[str, Any] = {}

    # ------------------------------------------------------------------ fit
    def fit(self, train_images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> "EfficientAD":
        images = check_images(train_images, "train_images")
        p = self.params
        device = resolve_device(p.device)
        use_available_cores()
        split_rng, train_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(p.seed).spawn(2))
        train_index, holdout_index = holdout_split(len(images), split_rng)
        train = [images[i] for i in train_index]
        with _seeded_torch(p.seed, device):
            teacher, teacher_record = self._teacher(device, progress)
            student = patch_description_network(p.model_size, 2 * TEACHER_CHANNELS).to(device)
            autoencoder = Autoencoder(p.resolution).to(device)
            train_units = [unit_tensor(image, p.resolution) for image in train]
            moments = teacher_moments(teacher, [imagenet_normalise(u) for u in train_units], device)
            normaliser = TeacherNormaliser(teacher, moments.mean, moments.divisor).to(device)
            losses = train_student_autoencoder(
                normaliser, student, autoencoder, train_units, self._penalty_units(), steps=p.train_steps, lr=p.lr,
                weight_decay=p.weight_decay, hard_quantile=p.hard_quantile, rng=train_rng, device=device,
                progress=progress)
        self.teacher, self.student, self.autoencoder = normaliser, student, autoencoder
        self.teacher_stats = (moments.mean.numpy(), moments.divisor.numpy())
        maps_st, maps_ae = self._raw_maps([images[i] for i in holdout_index])
        self.normalisation = {"st": QuantileNormalisation.from_maps(maps_st),
                              "ae": QuantileNormalisation.from_maps(maps_ae)}
        self.record = {"teacher": teacher_record, "train_losses": losses, "loss_terms": LOSS_TERMS,
                       "train_index": train_index.tolist(), "holdout_index": holdout_index.tolist()}
        return self

    def _penalty_units(self) -> list[torch.Tensor]:
        """The penalty pool, each photograph in [0, 1] at twice the resolution; empty when the
        penalty is off."""
        size = 2 * self.params.resolution
        return [unit_tensor(photo, size) for _, photo in offline_photographs()] if self.params.penalty else []

    def _teacher(self, device: torch.device,
                 progress: ProgressCallback | None) -> tuple[torch.nn.Module, dict[str, Any]]:
        """The unpadded teacher PDN (on ``device``) and a record of where it came from."""
        p = self.params
        if p.teacher_weights is not None:
            return load_teacher_weights(p.teacher_weights, p.model_size).to(device), \
                {"source": "file", "path": str(p.teacher_weights)}
        state, losses, path = cached_teacher(
            self.backbone, model_size=p.model_size, resolution=p.resolution, steps=p.teacher_steps,
            batch=p.teacher_batch, norm_samples=p.teacher_norm_images, lr=p.lr, weight_decay=p.weight_decay,
            seed=p.seed, device=device, use_cache=p.teacher_cache, progress=progress)
        teacher = patch_description_network(p.model_size, TEACHER_CHANNELS)
        teacher.load_state_dict(state)
        return teacher.to(device), {
            "source": "distilled", "backbone": p.backbone, "layers": list(self.backbone.feature_layers[-2:]),
            "iterations": p.teacher_steps, "batch": p.teacher_batch, "norm_samples": p.teacher_norm_images,
            "pool": [name for name, _ in offline_photographs()], "losses": losses,
            "cache_file": None if path is None else str(path)}

    # ------------------------------------------------------------------ predict
    def _raw_maps(self, images: Sequence[np.ndarray],
                  progress: ProgressCallback | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw ``map_st`` and ``map_ae`` (``N×h×w`` float32) of ``images``, in batches."""
        p = self.params
        device = resolve_device(p.device)
        maps_st, maps_ae = [], []
        for start in range(0, len(images), p.batch_size):
            views = images_to_tensor(images[start:start + p.batch_size], p.resolution).to(device)
            st, ae = raw_maps(self.teacher, self.student, self.autoencoder, views)
            maps_st.append(st)
            maps_ae.append(ae)
            if progress is not None:
                progress("predict", min(start + p.batch_size, len(images)), len(images))
        return np.concatenate(maps_st), np.concatenate(maps_ae)

    def combined_map(self, map_st: np.ndarray, map_ae: np.ndarray) -> np.ndarray:
        """``0.5·norm_st(pad(map_st)) + 0.5·norm_ae(pad(map_ae))`` (float64), ``pad`` adding
        :data:`PDN_BORDER` cells of raw 0 on every side."""
        border = ((PDN_BORDER, PDN_BORDER), (PDN_BORDER, PDN_BORDER))
        st = self.normalisation["st"](np.pad(map_st.astype(np.float64), border))
        ae = self.normalisation["ae"](np.pad(map_ae.astype(np.float64), border))
        return 0.5 * st + 0.5 * ae

    def predict(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> Prediction:
        if self.student is None:
            raise self.not_fitted_error()
        images = check_images(images)
        use_available_cores()
        maps_st, maps_ae = self._raw_maps(images, progress)
        return max_scored(image_sized((self.combined_map(st, ae) for st, ae in zip(maps_st, maps_ae)), images))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        if self.student is None:
            raise self.not_fitted_error()

        def tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
            return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}

        return {"teacher": tensors(self.teacher.teacher), "teacher_mean": self.teacher_stats[0].copy(),
                "teacher_std": self.teacher_stats[1].copy(), "student": tensors(self.student),
                "autoencoder": tensors(self.autoencoder),
                "normalisation": {k: v.as_dict() for k, v in self.normalisation.items()},
                "record": copy.deepcopy(self.record)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        p = self.params
        device = resolve_device(p.device)
        teacher = patch_description_network(p.model_size, TEACHER_CHANNELS)
        teacher.load_state_dict(state["teacher"])
        self.teacher_stats = (np.asarray(state["teacher_mean"], dtype=np.float64).reshape(-1),
                              np.asarray(state["teacher_std"], dtype=np.float64).reshape(-1))
        mean, std = (torch.from_numpy(s.copy()) for s in self.teacher_stats)
        student = patch_description_network(p.model_size, 2 * TEACHER_CHANNELS)
        student.load_state_dict(state["student"])
        autoencoder = Autoencoder(p.resolution)
        autoencoder.load_state_dict(state["autoencoder"])
        self.teacher = TeacherNormaliser(teacher, mean, std).to(device)
        self.student, self.autoencoder = student.to(device).eval(), autoencoder.to(device).eval()
        self.normalisation = {k: QuantileNormalisation(**v) for k, v in state["normalisation"].items()}
        self.record = copy.deepcopy(state["record"])


@contextlib.contextmanager
def _seeded_torch(seed: int, device: torch.device) -> Iterator[None]:
    """Torch's global generators (CPU, and ``device`` when it is CUDA) seeded with ``seed`` inside
    the block and restored after it, so that weight initialisation and dropout are reproducible
    without touching the caller's random state."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" \
        else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
