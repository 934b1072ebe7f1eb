"""The installed distribution is complete: every package that the code imports is declared, every
module of its packages imports, every entry point it declares loads, and the ``pixeval`` script runs.

.ci/run runs the suite in a new virtual environment made by README.md's one install command, so a
package that the code needs but pyproject.toml does not declare fails here, by name, instead of
on a user's machine (an import inside a function, which importing the module does not reach, is
caught by the scan of import statements). Modules and source files are found by walking the
folders and entry points are read from the installed metadata, so new ones are covered without
editing this file.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

DISTRIBUTION = "pixeval"
PACKAGES = ("pixeval", "detectors")
#: Folders of Python files run beside the packages, which may import only declared packages too
SCRIPT_FOLDERS = ("tests", "benchmarks")
ROOT = Path(__file__).resolve().parents[1]
REINSTALL = 'reinstall with `pip install -e ".[test]"`'


def package_modules(package: str) -> list[str]:
    """Dotted names of ``package`` and every module and subpackage in its folder, found on disk
    (walking by import would hide whatever sits below a subpackage whose ``__init__`` fails)."""
    folder = Path(next(iter(importlib.util.find_spec(package).submodule_search_locations)))
    names = []
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(folder).with_suffix("").parts
        if parts[-1] == "__main__":  # importing it would run the program
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join((package, *parts)))
    return names


def installed_entry_points() -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.distribution(DISTRIBUTION).entry_points, key=lambda ep: (ep.group, ep.name))


def requirement_name(requirement: str) -> str:
    """The distribution a requirement string names, normalised as PEP 503 compares names."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_extras(requirement: str) -> list[str]:
    """The extras a requirement string asks of its distribution (``dask[distributed]``: distributed)."""
    found = re.match(r"\s*[A-Za-z0-9][A-Za-z0-9._-]*\s*\[([^\]]*)\]", requirement)
    return [extra.strip() for extra in found.group(1).split(",")] if found else []


def requirement_marker_extra(requirement: str) -> str | None:
    """The extra of the distribution's own metadata that a requirement belongs to, if any."""
    found = re.search(r"extra\s*==\s*[\"']([^\"']+)[\"']", requirement)
    return found.group(1) if found else None


def declared_distributions() -> set[str]:
    """Every distribution that installing pixeval, with any of its extras, names: its
    requirements, and those of their requested extras (``dask[distributed]`` names ``distributed``)."""
    declared = set()
    for requirement in importlib.metadata.requires(DISTRIBUTION) or []:
        declared.add(requirement_name(requirement))
        extras = set(requirement_extras(requirement))
        if extras:
            declared |= {requirement_name(inner) for inner in importlib.metadata.requires(requirement_name(requirement))
                         if requirement_marker_extra(inner) in extras}
    return declared


def imported_top_level_names(path: Path) -> set[str]:
    """Top-level names of every absolute import statement in the file ``path``, at any depth."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_every_imported_package_is_declared():
    providers = importlib.metadata.packages_distributions()
    declared = declared_distributions()
    script_files = [path for name in SCRIPT_FOLDERS for path in (ROOT / name).rglob("*.py")]
    # tests and benchmarks import modules of their own folders by name (conftest puts them on the path)
    local = set(PACKAGES) | {path.stem for path in script_files}
    files = sorted([path for name in PACKAGES for path in (ROOT / name).rglob("*.py")] + script_files)
    problems = []
    for path in files:
        for name in sorted(imported_top_level_names(path) - local - set(sys.stdlib_module_names)):
            distributions = {requirement_name(d) for d in providers.get(name, [])}
            if not distributions:
                problems.append(f"{path.relative_to(ROOT)} imports {name}, which no installed distribution provides")
            elif not distributions & declared:
                problems.append(f"{path.relative_to(ROOT)} imports {name} (from {', '.join(sorted(distributions))}), "
                                "which pyproject.toml does not declare")
    assert not problems, ("add each to pyproject.toml's dependencies (or to the test extra, if only tests "
                          f"need it), then {REINSTALL}:\n" + "\n".join(problems))


def test_the_scan_reads_imports_at_any_depth(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("import os.path\nfrom numpy import linalg\nfrom . import sibling\n\n"
                      "def f():\n    import pyarrow.parquet\n")
    assert imported_top_level_names(source) == {"os", "numpy", "pyarrow"}
    assert requirement_name("Dask[distributed]>=2023.1; extra == 'test'") == "dask"
    assert requirement_extras("dask[distributed, array]>=2023.1") == ["distributed", "array"]
    assert requirement_marker_extra('distributed>=2026; extra == "distributed"') == "distributed"
    assert {"numpy", "pyarrow", "pillow", "pytest", "distributed"} <= declared_distributions()


@pytest.mark.parametrize("module", [m for package in PACKAGES for m in package_modules(package)])
def test_every_module_imports(module):
    try:
        importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"{module} does not import ({exc}): a package it needs is missing from pyproject.toml's "
                    f"dependencies, or the installation is stale ({REINSTALL})")


def test_the_walk_finds_the_known_modules():
    modules = {m for package in PACKAGES for m in package_modules(package)}
    assert {"pixeval", "pixeval.cli", "pixeval.metrics.curves", "detectors", "detectors.cfa.model"} <= modules


@pytest.mark.parametrize("entry_point", installed_entry_points(), ids=lambda ep: f"{ep.group}:{ep.name}")
def test_every_entry_point_loads(entry_point):
    try:
        target = entry_point.load()
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"entry point {entry_point.name} = {entry_point.value} (group {entry_point.group}) "
                    f"does not load: {exc}")
    if entry_point.group == "pixeval.detectors":
        from pixeval.registry import Detector

        assert isinstance(target, type) and issubclass(target, Detector), f"{entry_point.value} is no Detector"
    elif entry_point.group == "pixeval.commands":
        assert isinstance(target, click.Command), f"{entry_point.value} is no click command"
    else:
        assert callable(target)


def test_the_installed_metadata_is_that_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {("console_scripts", name, value) for name, value in project.get("scripts", {}).items()}
    declared |= {(group, name, value) for group, entries in project.get("entry-points", {}).items()
                 for name, value in entries.items()}
    installed = {(ep.group, ep.name, ep.value) for ep in installed_entry_points()}
    assert installed == declared, (f"the installed entry points differ from pyproject.toml's: {REINSTALL}\n"
                                   f"declared only: {sorted(declared - installed)}\n"
                                   f"installed only: {sorted(installed - declared)}")
    assert {"pixeval.detectors", "console_scripts"} <= {group for group, _, _ in installed}

    required = {(requirement_name(r), None) for r in project["dependencies"]}
    required |= {(requirement_name(r), extra) for extra, requirements in project.get("optional-dependencies", {}).items()
                 for r in requirements}
    installed_requires = {(requirement_name(r), requirement_marker_extra(r))
                          for r in importlib.metadata.requires(DISTRIBUTION) or []}
    assert installed_requires == required, (f"the installed requirements differ from pyproject.toml's: {REINSTALL}\n"
                                            f"declared only: {sorted(required - installed_requires, key=str)}\n"
                                            f"installed only: {sorted(installed_requires - required, key=str)}")


def test_the_pixeval_script_runs_and_every_command_has_help():
    script = Path(sysconfig.get_path("scripts")) / ("pixeval.exe" if sys.platform == "win32" else "pixeval")
    assert script.is_file(), f"no pixeval script at {script}: {REINSTALL}"
    shown = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr

    from pixeval.cli import main

    commands = main.list_commands(click.Context(main))
    assert {"score", "bench", "report"} <= set(commands)
    for name in commands:
        assert name in shown.stdout
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0, f"pixeval {name} --help failed:\n{result.output}{result.exception!r}"
