"""Entry points of installed packages, through which detectors and commands plug into pixeval.

Two groups: ``pixeval.detectors`` (:mod:`pixeval.registry`) and ``pixeval.commands``
(:mod:`pixeval.cli`). pixeval's own distribution uses both, exactly as a third-party package does
(PyPA's plugin guide, "Using package metadata"). Loading one never raises: a plugin that fails to
import, or is not what its group expects, comes back with its error, so one broken package cannot
break the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

__all__ = ["LoadedEntryPoint", "load_group"]


@dataclass
class LoadedEntryPoint:
    """One entry point: its name, where it comes from, and the object it names or why it failed."""

    name: str
    origin: str  # "built-in" for pixeval's own distribution, else "package <name> <version>"
    value: Any = None
    error: str | None = None


def load_group(group: str, accepts: Callable[[Any], bool], expected: str) -> list[LoadedEntryPoint]:
    """Load every installed entry point of ``group``; an object for which ``accepts`` is false is
    an error "``module:attr`` is not ``expected``", as is any exception raised while importing it."""
    loaded = []
    for ep in metadata.entry_points(group=group):
        origin = _origin(ep)
        try:
            value = ep.load()
            if not accepts(value):
                raise TypeError(f"{ep.value} is not {expected}")
            loaded.append(LoadedEntryPoint(ep.name, origin, value))
        except Exception as exc:  # a broken plugin must not break the tool
            loaded.append(LoadedEntryPoint(ep.name, origin, error=f"{type(exc).__name__}: {exc}"))
    return loaded


def _origin(ep: metadata.EntryPoint) -> str:
    if ep.dist is None:
        return "package ?"
    name = ep.dist.metadata["Name"]
    return "built-in" if name == "pixeval" else f"package {name} {ep.dist.version}"
