"""``pixeval detectors [NAME]``: list the registered detectors, or show one's hyperparameters."""

from __future__ import annotations

import importlib
import textwrap

import click

from pixeval.errors import RegistryError
from pixeval.params import ParamSpec, param_specs
from pixeval.registry import DetectorInfo, available_detectors


@click.command("detectors")
@click.argument("name", required=False)
def command(name: str | None) -> None:
    """List the registered detectors, or show one's hyperparameters.

    Without NAME: every registered detector with a one-line summary and its origin (built-in or
    the installed package that provides it). With NAME: every hyperparameter of detector NAME
    with its type, default, constraints and help.

    Detectors come from the entry-point group `pixeval.detectors` of installed packages (see
    "Add your own detector" in the README). A detector that fails to load is listed with its error;
    the others still work. Exit status 2 for an unknown NAME, 1 when NAME fails to load.
    """
    warning = foreign_detectors_package()
    if warning:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    detectors = available_detectors()
    if name is None:
        click.echo(format_listing(list(detectors.values())))
        return
    if name not in detectors:
        raise RegistryError(f"unknown detector {name!r}; available: {', '.join(detectors) or 'none'}")
    info = detectors[name]
    if info.cls is None:
        raise click.ClickException(f"detector {name!r} ({info.origin}) failed to load: {info.error}")
    click.echo(format_details(info))


def foreign_detectors_package() -> str | None:
    """A warning when the importable top-level ``detectors`` package is not pixeval's own (an
    unrelated package of that name shadows the built-in detectors), else ``None``."""
    try:
        package = importlib.import_module("detectors")
    except ImportError:
        return ("no package named `detectors` can be imported, so pixeval's built-in detectors are "
                "missing; reinstall pixeval (pip install -e . in its source folder)")
    except Exception as exc:  # a foreign package may fail in any way; report it, do not crash
        return f"importing the package `detectors` failed ({type(exc).__name__}: {exc})"
    if getattr(package, "PIXEVAL_BUILTIN", False) is not True:
        where = getattr(package, "__file__", None) or list(getattr(package, "__path__", []))
        return (f"the imported package `detectors` ({where}) is not pixeval's own: another installed "
                "package named `detectors` shadows pixeval's built-in detectors package, so the "
                "built-in detectors may fail to load or misbehave; uninstall it (pip uninstall "
                "detectors) or use a separate environment")
    return None


def format_listing(infos: list[DetectorInfo]) -> str:
    """One row per detector: name, origin, summary (or the load error)."""
    if not infos:
        return "No detectors registered (is pixeval installed? see `pip install -e .`)."
    rows = [(i.name, i.origin, i.summary if i.cls is not None else f"FAILED TO LOAD: {i.error}") for i in infos]
    widths = [max(len(r[k]) for r in rows + [("NAME", "ORIGIN", "")]) for k in range(2)]
    lines = [f"{'NAME':<{widths[0]}}  {'ORIGIN':<{widths[1]}}  SUMMARY"]
    lines += [f"{n:<{widths[0]}}  {o:<{widths[1]}}  {s}" for n, o, s in rows]
    failed = sum(i.cls is None for i in infos)
    if failed:
        lines.append(f"\n{failed} of {len(infos)} detector(s) failed to load; see their errors above.")
    return "\n".join(lines)


def format_details(info: DetectorInfo) -> str:
    """The detector's name, origin, class, description and every hyperparameter."""
    cls = info.cls
    lines = [f"{info.name}: {cls.summary()}",
             f"origin: {info.origin} ({cls.__module__}:{cls.__qualname__})"]
    body = textwrap.dedent("\n".join((cls.__doc__ or "").strip().splitlines()[1:])).strip()
    if body:
        lines += ["", body]
    lines += ["", f"hyperparameters (name: type = default [constraints]; set one with "
                  f"`pixeval bench --param {info.name}.NAME=VALUE`):"]
    for spec in param_specs(cls.Params):
        lines.append(f"  {spec.name}: {spec.type} = {spec.default!r}{_constraints(spec)}")
        lines += textwrap.wrap(spec.help, width=88, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


def _constraints(spec: ParamSpec) -> str:
    parts = []
    if spec.choices is not None:
        parts.append("one of " + ", ".join(map(repr, spec.choices)))
    if spec.min is not None and spec.max is not None:
        parts.append(f"{spec.min} <= value <= {spec.max}")
    elif spec.min is not None:
        parts.append(f">= {spec.min}")
    elif spec.max is not None:
        parts.append(f"<= {spec.max}")
    return f"  [{'; '.join(parts)}]" if parts else ""
