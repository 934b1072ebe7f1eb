"""The detector contract and the registry that finds detectors by short name.

A detector is a subclass of :class:`Detector` with

* ``Params``: a dataclass of typed hyperparameters, each declared with :func:`param` (default,
  help text, optional choices and bounds). Unknown names, ill-typed values and values out of
  bounds raise :class:`ParamError` with a message that names the parameter and the fix.
* ``fit(train_images)``: learns from normal images only (``uint8`` arrays, ``H×W×3`` RGB).
* ``predict(images)``: a :class:`Prediction` with one ``float32`` score map per input image, at
  that image's own resolution (higher = more anomalous), and one image score per image.
* ``state_dict()`` / ``load_state_dict(state)``: the fitted state, so that :meth:`Detector.save`
  and :func:`load_detector` round-trip a fitted detector that predicts the same maps bit for bit.

Detectors register under a short name with :func:`register_detector`, or, from an installed
package, through the entry-point group ``pixeval.detectors`` (``name = "module:Class"``).
pixeval's own detectors (package ``detectors``) take the entry-point path too, so built-ins and
plugins are found the same way. A plugin that fails to import is reported by
:func:`available_detectors`, never fatal.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import pickle
import typing
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

ENTRY_POINT_GROUP = "pixeval.detectors"

#: ``progress(phase, done, total)``: detectors report long work (features, epochs, predict) here.
ProgressCallback = Callable[[str, int, int], None]


class ParamError(ValueError):
    """A hyperparameter name or value that a detector does not accept."""


class RegistryError(LookupError):
    """An unknown detector name, or a registered detector that cannot be loaded."""


def param(default: Any, help: str, *, choices: Sequence[Any] | None = None,
          min: float | None = None, max: float | None = None) -> Any:
    """Declare one hyperparameter of a detector's ``Params`` dataclass.

    ``help`` is shown by ``pixeval detectors NAME``; ``choices`` restricts the value to a set;
    ``min``/``max`` are inclusive bounds for numbers. Mutable defaults (lists, dicts) are copied
    per instance.
    """
    meta = {"help": help, "choices": tuple(choices) if choices is not None else None,
            "min": min, "max": max}
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class BaseParams:
    """Hyperparameters every detector has."""

    seed: int = param(0, "Seed for every random choice the detector makes.")
    device: str = param("cpu", "Torch device for detectors that use torch: 'cpu', 'cuda' or 'cuda:N'.")


@dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter as shown to users: name, type, default, help and constraints."""

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None
    min: float | None
    max: float | None


def param_specs(params_cls: type) -> list[ParamSpec]:
    """The declared hyperparameters of a ``Params`` dataclass, in declaration order."""
    hints = typing.get_type_hints(params_cls)
    specs = []
    for f in dataclasses.fields(params_cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        specs.append(ParamSpec(f.name, _type_name(hints[f.name]), default, f.metadata.get("help", ""),
                               f.metadata.get("choices"), f.metadata.get("min"), f.metadata.get("max")))
    return specs


def build_params(params_cls: type, values: dict[str, Any] | None = None) -> Any:
    """Instantiate ``params_cls`` from ``values``, converting strings (as given on a command line)
    to the declared types and validating choices and bounds.

    Raises :class:`ParamError` naming the parameter and what it accepts.
    """
    values = dict(values or {})
    hints = typing.get_type_hints(params_cls)
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ParamError(f"unknown hyperparameter(s) {', '.join(unknown)}; "
                         f"accepted: {', '.join(fields)}")
    converted = {}
    for name, raw in values.items():
        value = _convert(name, raw, hints[name])
        meta = fields[name].metadata
        if meta.get("choices") is not None and value not in meta["choices"]:
            raise ParamError(f"hyperparameter {name}={value!r} is not one of "
                             f"{', '.join(map(repr, meta['choices']))}")
        for item in (value if isinstance(value, (tuple, list)) else (value,)):
            _check_bounds(name, item, meta.get("min"), meta.get("max"))
        converted[name] = value
    return params_cls(**converted)


def _check_bounds(name: str, value: Any, low: float | None, high: float | None) -> None:
    """Raise :class:`ParamError` unless ``low <= value <= high`` (NaN is never within bounds)."""
    if value is None:
        return
    if low is not None and not value >= low:
        raise ParamError(f"hyperparameter {name}={value!r} is below its minimum {low}")
    if high is not None and not value <= high:
        raise ParamError(f"hyperparameter {name}={value!r} is above its maximum {high}")


def _type_name(hint: Any) -> str:
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _convert(name: str, raw: Any, hint: Any) -> Any:
    """Convert ``raw`` to the type ``hint`` (``int``, ``float``, ``bool``, ``str``, ``X | None``,
    ``tuple[float, ...]`` / ``list[...]`` given as comma-separated strings)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if args and type(None) in args and origin is not tuple and origin is not list:
        if raw is None or (isinstance(raw, str) and raw.lower() in ("none", "")):
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(name, raw, inner)
    try:
        if origin in (tuple, list):
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            item_type = args[0] if args else str
            return origin(_convert(name, item, item_type) for item in items)
        if hint is bool:
            if isinstance(raw, str):
                lowered = raw.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError(raw)
            if isinstance(raw, (bool, np.bool_)):
                return bool(raw)
            raise TypeError(raw)
        if hint is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            if isinstance(raw, bool):
                raise TypeError(raw)
            return int(raw)
        if hint is float:
            if isinstance(raw, bool):
                raise TypeError(raw)
            return float(raw)
        if hint is str:
            return str(raw)
    except (TypeError, ValueError):
        raise ParamError(f"hyperparameter {name}={raw!r} is not a valid {_type_name(hint)}") from None
    return raw


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

    #: The dataclass of this detector's hyperparameters (a subclass of :class:`BaseParams`).
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


# --------------------------------------------------------------------------- registry

@dataclass
class DetectorInfo:
    """A registered detector: where it comes from and, if it failed to load, why."""

    name: str
    origin: str  # "built-in", "package <dist> <version>" or "registered in <module>"
    cls: type[Detector] | None = None
    error: str | None = None

    @property
    def summary(self) -> str:
        return self.cls.summary() if self.cls is not None else f"(failed to load: {self.error})"


_REGISTERED: dict[str, DetectorInfo] = {}


def register_detector(name: str) -> Callable[[type[Detector]], type[Detector]]:
    """Class decorator registering a :class:`Detector` subclass under ``name`` in this process."""

    def decorate(cls: type[Detector]) -> type[Detector]:
        if not (isinstance(cls, type) and issubclass(cls, Detector)):
            raise TypeError(f"@register_detector({name!r}) needs a Detector subclass, got {cls!r}")
        _REGISTERED[name] = DetectorInfo(name, f"registered in {cls.__module__}", cls)
        return cls

    return decorate


def available_detectors() -> dict[str, DetectorInfo]:
    """Every detector known now: entry points of installed packages (built-ins included) and
    classes registered in this process, sorted by name. Plugins that fail to load appear with
    their error instead of raising."""
    found: dict[str, DetectorInfo] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.metadata["Name"] if ep.dist is not None else "?"
        version = ep.dist.version if ep.dist is not None else ""
        origin = "built-in" if dist == "pixeval" else f"package {dist} {version}".strip()
        if ep.name in found:
            warnings.warn(f"detector name {ep.name!r} is registered by both {found[ep.name].origin} "
                          f"and {origin}; using the latter", stacklevel=2)
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Detector)):
                raise TypeError(f"{ep.value} is not a pixeval.registry.Detector subclass")
            found[ep.name] = DetectorInfo(ep.name, origin, cls)
        except Exception as exc:  # a broken plugin must not break the tool
            found[ep.name] = DetectorInfo(ep.name, origin, None, f"{type(exc).__name__}: {exc}")
    found.update(_REGISTERED)
    return dict(sorted(found.items()))


def get_detector(name: str) -> type[Detector]:
    """The detector class registered as ``name``; :class:`RegistryError` names the known ones."""
    if name in _REGISTERED:
        return _REGISTERED[name].cls
    detectors = available_detectors()
    if name not in detectors:
        raise RegistryError(f"unknown detector {name!r}; available: {', '.join(detectors) or 'none'} "
                            "(run `pixeval detectors` to list them)")
    info = detectors[name]
    if info.cls is None:
        raise RegistryError(f"detector {name!r} ({info.origin}) failed to load: {info.error}")
    return info.cls


def create_detector(name: str, params: dict[str, Any] | None = None) -> Detector:
    """Instantiate the detector ``name`` with hyperparameters ``params`` (strings are converted)."""
    cls = get_detector(name)
    return cls(build_params(cls.Params, params))


def _import_attr(module_name: str, qualname: str) -> Any:
    import importlib

    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
