"""What a bench run does: its configuration and the grid of jobs it expands to.

A **job** is one detector fitted and scored on one category of one dataset with one seed. A
:class:`BenchConfig` names the grid (datasets × categories × detectors × seeds) and the settings
shared by every job; it comes from command-line options, from a YAML or TOML file
(:func:`load_config_file`), or both (options given on the command line win), and is saved into the
run folder as ``config.yaml`` so that ``pixeval bench --config RUN/config.yaml`` repeats the run.

Hyperparameters reach a detector in this order, later ones winning: the detector's defaults, the
shared settings ``backbone``, ``resolution`` and ``device`` (applied only to detectors that declare
a hyperparameter of that name), the per-detector ``params``, and the job's ``seed``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pixeval.errors import ConfigError
from pixeval.metrics.by_size import DEFAULT_EDGES, check_edges
from pixeval.params import build_params
from pixeval.registry import available_detectors, get_detector

#: Settings that apply to every detector declaring a hyperparameter of the same name.
SHARED_PARAMS = ("backbone", "resolution", "device")


@dataclass
class BenchConfig:
    """Everything a bench run needs. ``None`` for ``detectors`` means every built-in detector,
    ``None`` for ``categories`` every category of each dataset. ``threshold_holdout``: the share
    of each category's training images held out of every detector's fit, whose maps set the
    detector's deployment threshold (pixel FPR ``target_fpr`` on them; 0: no such threshold).
    ``size_edges``: the defect-size bins of the by-size metrics (area fractions)."""

    data: list[str] = field(default_factory=lambda: ["synthetic-textures"])
    categories: list[str] | None = None
    detectors: list[str] | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    backbone: str | None = None
    resolution: int | None = None
    device: str = "cpu"
    out: str = "runs/bench"
    save_maps: bool = False
    examples: int = 3
    bootstrap: int = 1000
    threshold_holdout: float = 0.1
    target_fpr: float = 0.01
    size_edges: list[float] = field(default_factory=lambda: list(DEFAULT_EDGES))
    jobs: int = 1
    scheduler: str | None = None
    imports: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain data, in the form :func:`load_config_file` reads back."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Job:
    """One cell of the grid. ``params`` holds the hyperparameters given for this detector (as the
    user wrote them, seed included); ``resolved`` all of them, defaults included, as JSON."""

    detector: str
    dataset: str
    dataset_name: str
    category: str
    seed: int
    params: tuple[tuple[str, Any], ...]
    resolved: str
    imports: tuple[str, ...] = ()
    save_maps: bool = False
    examples: int = 3
    bootstrap: int = 1000
    threshold_holdout: float = 0.1
    target_fpr: float = 0.01
    size_edges: tuple[float, ...] = DEFAULT_EDGES

    @property
    def key(self) -> str:
        """A file-name-safe identifier, unique within a run: detector, dataset, category, seed."""
        parts = (self.detector, self.dataset_name, self.category, f"seed{self.seed}")
        return "__".join(re.sub(r"[^A-Za-z0-9._-]+", "-", part) for part in parts)

    @property
    def label(self) -> str:
        """A short description for progress bars and messages."""
        return f"{self.detector} on {self.dataset_name}/{self.category} (seed {self.seed})"

    @property
    def params_hash(self) -> str:
        """A digest of the resolved hyperparameters, to tell two settings of one job apart."""
        return hashlib.sha256(self.resolved.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- config files

def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) bench configuration into a dict whose
    keys are :class:`BenchConfig` field names (``save-maps`` and ``save_maps`` both accepted).

    ``params`` may be a mapping ``{detector: {name: value}}`` or a list of ``detector.name=value``
    strings, as on the command line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            raw = yaml.safe_load(text) or {}
        elif suffix == ".toml":
            raw = tomllib.loads(text)
        else:
            raise ConfigError(f"config file {path} must end in .yaml, .yml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {suffix[1:].upper()}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, got {type(raw).__name__}")
    known = {f.name for f in dataclasses.fields(BenchConfig)}
    values = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise ConfigError(f"config file {path}: unknown setting {key!r}; known: {', '.join(sorted(known))}")
        values[name] = value
    if "params" in values:
        values["params"] = parse_params(values["params"], source=f"config file {path}")
    return values


def parse_params(raw: Any, source: str = "--param") -> dict[str, dict[str, Any]]:
    """``detector.name=value`` strings (or a ``{detector: {name: value}}`` mapping) as a mapping."""
    if isinstance(raw, dict):
        if not all(isinstance(v, dict) for v in raw.values()):
            raise ConfigError(f"{source}: params must map each detector to a mapping of hyperparameters")
        return {str(det): {str(k): v for k, v in values.items()} for det, values in raw.items()}
    if isinstance(raw, str):
        raw = [raw]
    parsed: dict[str, dict[str, Any]] = {}
    for item in raw or []:
        target, sep, value = str(item).partition("=")
        detector, dot, name = target.strip().partition(".")
        if not (sep and dot and detector and name):
            raise ConfigError(f"{source}: {item!r} is not DETECTOR.NAME=VALUE (e.g. sp_cfa.rs_s=15)")
        parsed.setdefault(detector, {})[name.strip()] = value.strip()
    return parsed


def parse_list(value: Any, what: str) -> list[str]:
    """A comma-separated string, or a list of strings (each possibly comma-separated), as a list."""
    items = [value] if isinstance(value, str) else list(value)
    out = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    if not out:
        raise ConfigError(f"{what} is empty")
    return out


def parse_seeds(value: Any) -> list[int]:
    """Seeds as ``"0,1,2"``, ``"0-4"`` (inclusive) or a list of integers."""
    seeds: list[int] = []
    for part in parse_list([str(v) for v in value] if not isinstance(value, str) else value, "seeds"):
        lo, dash, hi = part.partition("-")
        try:
            seeds.extend(range(int(lo), int(hi) + 1) if dash and lo else [int(part)])
        except ValueError:
            raise ConfigError(f"seeds: {part!r} is not an integer or a range like 0-4") from None
    return list(dict.fromkeys(seeds))


def make_config(values: dict[str, Any]) -> BenchConfig:
    """A :class:`BenchConfig` from loosely typed values (strings from a command line or a file),
    normalised: lists split on commas, seeds parsed, detectors deduplicated."""
    values = dict(values)
    if "data" in values:
        values["data"] = parse_list(values["data"], "data")
    for name in ("categories", "detectors"):
        if values.get(name) is not None:
            values[name] = list(dict.fromkeys(parse_list(values[name], name)))
    if "imports" in values:
        values["imports"] = parse_list(values["imports"], "imports") if values["imports"] else []
    if "seeds" in values:
        values["seeds"] = parse_seeds(values["seeds"])
    if "params" in values and not isinstance(values["params"], dict):
        values["params"] = parse_params(values["params"])
    for name, low, high in (("threshold_holdout", 0.0, 0.5), ("target_fpr", 0.0, 1.0)):
        if values.get(name) is not None:
            try:
                values[name] = float(values[name])
            except (TypeError, ValueError):
                raise ConfigError(f"{name}: {values[name]!r} is not a number") from None
            if not low <= values[name] <= high:
                raise ConfigError(f"{name} must be in [{low:g}, {high:g}], got {values[name]:g}")
    if values.get("size_edges") is not None:
        try:
            values["size_edges"] = list(check_edges(values["size_edges"]))
        except ValueError as exc:
            raise ConfigError(f"size_edges: {str(exc).removeprefix('edges: ')}") from None
    for name, lo in (("jobs", 1), ("examples", 0), ("bootstrap", 0), ("resolution", 1)):
        if values.get(name) is not None:
            try:
                values[name] = int(values[name])
            except (TypeError, ValueError):
                raise ConfigError(f"{name}: {values[name]!r} is not an integer") from None
            if values[name] < lo:
                raise ConfigError(f"{name} must be at least {lo}, got {values[name]}")
    return BenchConfig(**values)


def save_config(config: BenchConfig, run_dir: Path) -> Path:
    """Write ``config.yaml`` into ``run_dir`` (atomically) and return its path."""
    path = run_dir / "config.yaml"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text("# pixeval bench configuration; rerun with: pixeval bench --config THIS_FILE\n"
                   + yaml.safe_dump(config.to_dict(), sort_keys=False))
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------- the grid

def import_plugins(modules: list[str] | tuple[str, ...]) -> None:
    """Import modules that register detectors (``--import``); a missing one is a :class:`ConfigError`."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"--import {module}: cannot import it ({exc}); it must be importable "
                              "(installed, or on PYTHONPATH) here and on every worker") from None


def builtin_detectors() -> list[str]:
    """Names of the detectors that ship with pixeval and load."""
    return [name for name, info in available_detectors().items()
            if info.origin == "built-in" and info.cls is not None]


def expand_jobs(config: BenchConfig) -> list[Job]:
    """The jobs of ``config`` in run order (dataset, category, detector, seed), each with its
    hyperparameters resolved and validated up front, so a typo fails before any work starts."""
    from pixeval.data import open_dataset

    import_plugins(config.imports)
    detectors = config.detectors if config.detectors is not None else builtin_detectors()
    if not detectors:
        raise ConfigError("no detectors to run: none is built in or registered; name some with --detectors")
    unknown_params = sorted(set(config.params) - set(detectors))
    if unknown_params:
        raise ConfigError(f"--param names detector(s) {', '.join(unknown_params)} that this run does not "
                          f"include (running: {', '.join(detectors)})")
    resolved = {name: _resolve_params(name, config) for name in detectors}

    jobs: list[Job] = []
    seen_categories: set[str] = set()
    for spec in config.data:
        dataset = open_dataset(spec)
        categories = dataset.categories
        if config.categories is not None:
            categories = [c for c in categories if c in config.categories]
        seen_categories.update(categories)
        for category in categories:
            for name in detectors:
                given, full = resolved[name]
                for seed in config.seeds:
                    params = {**given, "seed": seed}
                    jobs.append(Job(name, str(spec), dataset.name, category, seed,
                                    tuple(sorted(params.items())),
                                    json.dumps({**full, "seed": seed}, sort_keys=True, default=str),
                                    tuple(config.imports), config.save_maps, config.examples, config.bootstrap,
                                    config.threshold_holdout, config.target_fpr, tuple(config.size_edges)))
    missing = sorted(set(config.categories or ()) - seen_categories)
    if missing:
        raise ConfigError(f"--categories: {', '.join(missing)} in none of the datasets "
                          f"({', '.join(config.data)})")
    keys = [job.key for job in jobs]
    if len(set(keys)) != len(keys):
        raise ConfigError("two datasets share a name, so their results would collide; "
                          "give each its own folder name")
    return jobs


def _resolve_params(name: str, config: BenchConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The hyperparameters given for detector ``name`` and all of them after validation."""
    cls = get_detector(name)
    declared = {f.name for f in dataclasses.fields(cls.Params)}
    given: dict[str, Any] = {}
    for shared in SHARED_PARAMS:
        value = getattr(config, shared)
        if value is not None and shared in declared:
            given[shared] = value
    given.update(config.params.get(name, {}))
    params = build_params(cls.Params, {**given, "seed": 0})
    return given, dataclasses.asdict(params)
