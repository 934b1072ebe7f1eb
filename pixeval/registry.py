"""Finding detectors by short name: the registry.

Detectors register under a short name with the class decorator :func:`register_detector` (for
the running process), or, from an installed package, through the entry-point group
``pixeval.detectors`` (``name = "module:Class"``, :data:`DETECTOR_GROUP`). pixeval's own
detectors (package ``detectors``) take the entry-point path too, so built-ins and plugins are
found the same way. :func:`available_detectors` lists them all; a plugin that fails to import is
listed with its error, never fatal. :func:`get_detector` and :func:`create_detector` look one up
by name. What a detector must do is :mod:`pixeval.detector`'s contract.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pixeval.detector import Detector
from pixeval.errors import RegistryError
from pixeval.params import build_params
from pixeval.plugins import load_group

__all__ = ["DETECTOR_GROUP", "DetectorInfo", "RegistryError", "available_detectors", "create_detector",
           "get_detector", "register_detector"]

#: The entry-point group through which installed packages contribute detectors.
DETECTOR_GROUP = "pixeval.detectors"


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
    for plugin in load_group(DETECTOR_GROUP, _is_detector_class, "a pixeval.Detector subclass"):
        if plugin.name in found:
            warnings.warn(f"detector name {plugin.name!r} is registered by both {found[plugin.name].origin} "
                          f"and {plugin.origin}; using the latter", stacklevel=2)
        found[plugin.name] = DetectorInfo(plugin.name, plugin.origin, plugin.value, plugin.error)
    found.update(_REGISTERED)
    return dict(sorted(found.items()))


def _is_detector_class(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, Detector)


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
