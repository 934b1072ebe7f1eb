"""The detector contract: what a detector is, what it returns, and how a fitted one is saved.

A detector is a subclass of :class:`Detector` with

* ``Params``: a dataclass of typed hyperparameters deriving from
  :class:`~pixeval.params.BaseParams`, each declared with :func:`~pixeval.params.param`
  (default, help text, optional choices and bounds). Unknown names, ill-typed values and values
  out of bounds raise :class:`~pixeval.errors.ParamError` when the detector is made.
* ``fit(train_images)``: learns from normal images only (``uint8`` arrays, ``H×W×3`` RGB);
  returns the detector.
* ``predict(images)``: a :class:`Prediction` with one finite ``float32`` score map per input
  image, at that image's own height and width (higher = more anomalous), and one finite image
  score per image. Fitting twice with the same hyperparameters (seed included) gives the same
  maps.
* ``state_dict()`` / ``load_state_dict(state)``: the fitted state, so that :meth:`Detector.save`
  and :func:`load_detector` round-trip a fitted detector that predicts the same maps bit for bit.

:func:`pixeval.testing.check_detector` runs every clause of this contract on a detector class.
How detectors are found by name is :mod:`pixeval.registry`'s job.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import json
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pixeval.errors import ParamError, RegistryError
from pixeval.params import BaseParams, build_params

__all__ = ["Detector", "Prediction", "ProgressCallback", "load_detector"]

#: ``progress(phase, done, total)``: detectors report long work (features, epochs, predict) here.
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class Prediction:
    """What :meth:`Detector.predict` returns: one score map and one image score per image.

    ``maps[i]`` is ``float32`` with the height and width of input image ``i``; higher means more
    anomalous. ``image_scores`` is ``float64`` with one entry per image.
    """

    maps: list[np.ndarray]
    image_scores: np.ndarray


class Detector(abc.ABC):
    """Base class of every detector; see the module docstring for the contract."""

    #: The dataclass of this detector's hyperparameters (a subclass of
    #: :class:`~pixeval.params.BaseParams`).
    Params: ClassVar[type] = BaseParams

    def __init__(self, params: Any = None, **overrides: Any) -> None:
        if params is None:
            params = build_params(self.Params, overrides)
        elif not isinstance(params, self.Params):
            raise ParamError(f"{type(self).__name__} expects {self.Params.__name__}, got {type(params).__name__}")
        elif overrides:
            params = build_params(self.Params, {**dataclasses.asdict(params), **overrides})
        self.params = params

    @abc.abstractmethod
    def fit(self, train_images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> "Detector":
        """Learn normality from ``train_images`` (normal ``uint8`` RGB images); return ``self``."""

    @abc.abstractmethod
    def predict(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> Prediction:
        """Score ``images``: a map per image at the image's own resolution and an image score."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """The fitted state (arrays, tensors, numbers) that :meth:`load_state_dict` restores."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the fitted state returned by :meth:`state_dict`."""

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    def save(self, path: str | Path) -> Path:
        """Write the hyperparameters (``params.json``) and fitted state (``state.pkl``) to the
        folder ``path``; :func:`load_detector` reads them back."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"class": f"{type(self).__module__}:{type(self).__qualname__}",
                "params": dataclasses.asdict(self.params)}
        (path / "params.json").write_text(json.dumps(meta, indent=2, default=str))
        with open(path / "state.pkl", "wb") as fh:
            pickle.dump(self.state_dict(), fh, protocol=pickle.HIGHEST_PROTOCOL)
        return path


def load_detector(path: str | Path) -> Detector:
    """Load a detector written by :meth:`Detector.save`. The state file is a pickle: load only
    folders you trust."""
    path = Path(path)
    try:
        meta = json.loads((path / "params.json").read_text())
    except FileNotFoundError:
        raise RegistryError(f"{path} holds no saved detector (params.json is missing)") from None
    module_name, _, qualname = meta["class"].partition(":")
    cls = _import_attr(module_name, qualname)
    detector = cls(build_params(cls.Params, meta["params"]))
    try:
        with open(path / "state.pkl", "rb") as fh:
            state = pickle.load(fh)
    except FileNotFoundError:
        raise RegistryError(f"{path} holds no fitted state (state.pkl is missing); "
                            "save the detector again with Detector.save") from None
    detector.load_state_dict(state)
    return detector


def _import_attr(module_name: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
