"""Typed hyperparameters: how a detector declares them and how values given as text become them.

A detector's ``Params`` is a dataclass deriving from :class:`BaseParams`, each field declared with
:func:`param` (default, help text, optional choices and inclusive bounds).
:func:`build_params` makes one from a dict of values, converting strings as a command line or a
config file gives them (``"16"``, ``"1,0.5,2"``, ``"none"``, ``"yes"``) to the declared types and
checking choices and bounds; :func:`param_specs` lists the fields as ``pixeval detectors NAME``
shows them. Any name or value that does not fit raises :class:`~pixeval.errors.ParamError`
naming the parameter and what it accepts.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixeval.errors import ParamError

__all__ = ["BaseParams", "ParamError", "ParamSpec", "build_params", "param", "param_specs"]


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
