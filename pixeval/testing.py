"""The detector contract, runnable: :func:`check_detector` tests a detector class against every
clause of :mod:`pixeval.detector`, as scikit-learn's ``check_estimator`` does for estimators.

Every built-in detector's tests call it, and a plugin's tests should too::

    from pixeval.testing import check_detector

    def test_my_detector_keeps_the_contract():
        check_detector(MyDetector, backbone="tiny", resolution=64)   # hyperparameters that make it fast

It fits the detector twice on a few small synthetic images (seconds with fast hyperparameters)
and raises ``AssertionError`` naming the first clause broken.
"""

from __future__ import annotations

import dataclasses
import tempfile
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixeval.detector import Detector, Prediction, load_detector
from pixeval.errors import ParamError
from pixeval.params import BaseParams, param_specs

__all__ = ["bad_hyperparameters", "check_detector", "contract_images"]

#: Size of the training images and the (different, one not square) sizes of the test images.
TRAIN_SHAPE = (64, 64)
TEST_SHAPES = ((64, 64), (48, 80), (72, 40))
N_TRAIN = 5


def check_detector(cls: type[Detector], **fast_params: Any) -> None:
    """Check that detector class ``cls`` keeps the detector contract; ``fast_params`` are the
    hyperparameters every check uses (e.g. a tiny backbone, a low resolution, few epochs).

    The clauses, in order:

    1. **Declaration**: ``cls`` subclasses :class:`~pixeval.Detector`, has a docstring (its first
       line is the summary ``pixeval detectors`` lists), and its ``Params`` is a dataclass deriving
       from :class:`~pixeval.BaseParams` whose every field is declared with :func:`~pixeval.param`
       (a help text); ``cls(**fast_params)`` builds.
    2. **Bad hyperparameters** raise :class:`~pixeval.ParamError` when the detector is made: an
       unknown name, a Params object of another class, and for each declared hyperparameter a
       value of the wrong type, one outside its choices, one below its minimum and one above its
       maximum (:func:`bad_hyperparameters`).
    3. **Fit and predict**: ``fit`` on normal ``uint8`` RGB images returns the detector;
       ``predict`` returns a :class:`~pixeval.Prediction` with one finite ``float32`` map per image
       at that image's own height and width (test images of three sizes) and one finite image
       score per image. Neither changes its input images; progress reports are
       ``(phase: str, done: int, total: int)`` with ``0 <= done <= total``.
    4. **Determinism**: a second detector made with the same hyperparameters (seed included) and
       fitted on the same images predicts the same maps and image scores, bit for bit.
    5. **Save and load**: :func:`~pixeval.load_detector` reads back what ``save`` wrote as a
       detector of the same class with the same hyperparameters that predicts the same maps and
       image scores, bit for bit.
    """
    name = getattr(cls, "__name__", repr(cls))
    _check_declaration(cls, name, fast_params)
    _check_bad_hyperparameters(cls, name, fast_params)
    train, test = contract_images()
    first = _fit_predict(cls, name, fast_params, train, test)
    second = _fit_predict(cls, name, fast_params, train, test)
    _require(_same(first[1], second[1]), name, "determinism",
             "two detectors with the same hyperparameters, fitted on the same images, predict different maps or "
             "image scores; seed every random choice from params.seed")
    with tempfile.TemporaryDirectory() as folder:
        first[0].save(Path(folder) / "detector")
        loaded = load_detector(Path(folder) / "detector")
        _require(type(loaded) is cls and loaded.params == first[0].params, name, "save and load",
                 f"load_detector gave a {type(loaded).__name__} with params {loaded.params}, not the saved "
                 f"{name} with {first[0].params}")
        _require(_same(first[1], loaded.predict(test)), name, "save and load",
                 "the loaded detector predicts other maps or image scores than the one saved; state_dict must "
                 "hold the whole fitted state and load_state_dict restore it")


def contract_images(seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """:data:`N_TRAIN` normal training images of :data:`TRAIN_SHAPE` and test images of
    :data:`TEST_SHAPES`, the last with a red square: ``uint8`` RGB textures (a smooth stripe
    pattern plus noise), the same for every ``seed``."""
    rng = np.random.default_rng(seed)

    def texture(height: int, width: int) -> np.ndarray:
        y, x = np.mgrid[0:height, 0:width]
        base = 120 + 50 * np.sin(x / 3 + rng.uniform(0, 6)) * np.cos(y / 4 + rng.uniform(0, 6))
        return np.clip(base[..., None] + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)

    train = [texture(*TRAIN_SHAPE) for _ in range(N_TRAIN)]
    test = [texture(*shape) for shape in TEST_SHAPES]
    test[-1][10:26, 8:24] = (250, 20, 20)
    return train, test


def bad_hyperparameters(params_cls: type) -> list[tuple[str, Any, str]]:
    """``(name, value, why)`` for values that ``params_cls`` must refuse: for each declared
    hyperparameter, a value of the wrong type (numbers and booleans), one outside its choices,
    one below its minimum and one above its maximum."""
    hints = typing.get_type_hints(params_cls)
    bad = []
    for spec in param_specs(params_cls):
        kind = _scalar_type(hints[spec.name])
        many = typing.get_origin(_without_none(hints[spec.name])) in (tuple, list)
        if kind in (int, float):
            bad.append((spec.name, "not-a-number", "is not a number"))
        elif kind is bool:
            bad.append((spec.name, "maybe", "is not a boolean"))
        if spec.choices is not None:
            bad.append((spec.name, "no-such-choice", f"is not one of {spec.choices}"))
        for bound, step, why in ((spec.min, -1, "is below the minimum"), (spec.max, 1, "is above the maximum")):
            if bound is not None:
                value = bound + step
                bad.append((spec.name, [value] if many else value, why))
    return bad


def _check_declaration(cls: type, name: str, fast_params: dict[str, Any]) -> None:
    _require(isinstance(cls, type) and issubclass(cls, Detector), name, "declaration",
             "it is not a pixeval.Detector subclass")
    _require(bool(cls.summary()), name, "declaration",
             "it has no docstring; its first line is the summary that `pixeval detectors` lists")
    params_cls = cls.Params
    _require(dataclasses.is_dataclass(params_cls) and issubclass(params_cls, BaseParams), name, "declaration",
             f"its Params ({params_cls!r}) is not a dataclass deriving from pixeval.BaseParams")
    undocumented = [spec.name for spec in param_specs(params_cls) if not spec.help]
    _require(not undocumented, name, "declaration",
             f"hyperparameter(s) {', '.join(undocumented)} are not declared with pixeval.param(default, help)")
    try:
        cls(**fast_params)
    except ParamError as exc:
        raise AssertionError(f"{name}: declaration: {name}(**{fast_params}) raised ParamError: {exc}") from None


def _check_bad_hyperparameters(cls: type, name: str, fast_params: dict[str, Any]) -> None:
    cases = [("no_such_hyperparameter", 1, "is not a declared hyperparameter")]
    cases += bad_hyperparameters(cls.Params)
    for param_name, value, why in cases:
        try:
            cls(**{**fast_params, param_name: value})
        except ParamError:
            continue
        raise AssertionError(f"{name}: bad hyperparameters: {param_name}={value!r} {why} but raised no ParamError")
    if cls.Params is not BaseParams:
        try:
            cls(BaseParams())
        except ParamError:
            return
        raise AssertionError(f"{name}: bad hyperparameters: a BaseParams object instead of {cls.Params.__name__} "
                             "raised no ParamError")


def _fit_predict(cls: type, name: str, fast_params: dict[str, Any], train: list[np.ndarray],
                 test: list[np.ndarray]) -> tuple[Detector, Prediction]:
    """A new detector fitted on ``train`` and its prediction of ``test``, each checked."""
    before = [image.copy() for image in train + test]
    reports: list[tuple] = []
    detector = cls(**fast_params)
    fitted = detector.fit(train, progress=lambda *report: reports.append(report))
    _require(fitted is detector, name, "fit", f"fit returned {fitted!r}, not the detector itself")
    prediction = detector.predict(test, progress=lambda *report: reports.append(report))
    _require(all(np.array_equal(a, b) for a, b in zip(before, train + test)), name, "fit and predict",
             "fit or predict changed its input images")
    bad_reports = [r for r in reports if not _good_report(r)]
    _require(not bad_reports, name, "progress",
             f"progress reports must be (phase: str, done: int, total: int) with 0 <= done <= total, got "
             f"{bad_reports[:3]}")
    _check_prediction(prediction, test, name)
    return detector, prediction


def _check_prediction(prediction: Any, images: Sequence[np.ndarray], name: str) -> None:
    _require(isinstance(prediction, Prediction), name, "predict",
             f"predict returned {type(prediction).__name__}, not a pixeval.Prediction")
    maps = list(prediction.maps)
    _require(len(maps) == len(images), name, "predict", f"{len(maps)} maps for {len(images)} images")
    for i, (score_map, image) in enumerate(zip(maps, images)):
        where = f"map {i} (image of {image.shape[0]}×{image.shape[1]})"
        _require(isinstance(score_map, np.ndarray) and score_map.dtype == np.float32, name, "predict",
                 f"{where} is {getattr(score_map, 'dtype', type(score_map).__name__)}, not a float32 array")
        _require(score_map.shape == image.shape[:2], name, "predict",
                 f"{where} has shape {score_map.shape}; a map has its own image's height and width")
        _require(bool(np.isfinite(score_map).all()), name, "predict", f"{where} holds NaN or infinite scores")
    scores = np.asarray(prediction.image_scores)
    _require(scores.shape == (len(images),), name, "predict",
             f"image_scores has shape {scores.shape}, not one score per image ({len(images)},)")
    _require(bool(np.isfinite(scores).all()), name, "predict", f"image_scores holds NaN or infinite values: {scores}")


def _good_report(report: tuple) -> bool:
    if len(report) != 3:
        return False
    phase, done, total = report
    integers = all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in (done, total))
    return isinstance(phase, str) and integers and 0 <= done <= total


def _same(a: Prediction, b: Prediction) -> bool:
    """Whether two predictions hold the same maps and image scores, bit for bit."""
    maps_equal = len(a.maps) == len(b.maps) and all(
        x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes() for x, y in zip(a.maps, b.maps))
    scores_a, scores_b = np.asarray(a.image_scores), np.asarray(b.image_scores)
    return maps_equal and scores_a.dtype == scores_b.dtype and scores_a.tobytes() == scores_b.tobytes()


def _scalar_type(hint: Any) -> Any:
    """``int`` for ``int``, ``int | None`` or ``tuple[int, ...]``; likewise for other types."""
    hint = _without_none(hint)
    if typing.get_origin(hint) in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return args[0] if args else str
    return hint


def _without_none(hint: Any) -> Any:
    args = typing.get_args(hint)
    if args and type(None) in args and typing.get_origin(hint) not in (tuple, list):
        (inner,) = [a for a in args if a is not type(None)]
        return inner
    return hint


def _require(condition: bool, name: str, clause: str, message: str) -> None:
    if not condition:
        raise AssertionError(f"{name}: {clause}: {message}")
