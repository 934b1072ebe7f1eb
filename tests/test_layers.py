"""The layers of pixeval never import upward: checked on the source (every import statement,
including those inside functions) and in fresh interpreters (what an import really loads)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pixeval"

#: Rank of each part of pixeval, bottom up: a module may import only parts of the same or a
#: lower rank (docs/design.md, "Layers").
RANKS = {
    "pixeval.errors": 0, "pixeval.plugins": 0, "pixeval.metrics": 0,
    "pixeval.params": 1, "pixeval.data": 1, "pixeval.tables": 1,
    "pixeval.detector": 2, "pixeval.io": 2,
    "pixeval.registry": 3, "pixeval.scoring": 3,
    "pixeval.bench": 4, "pixeval.testing": 4,
    "pixeval.report": 5,
    "pixeval.commands": 6, "pixeval.cli": 6,
}
#: Third-party packages the metric core must not import (docs/design.md: it stays light and usable alone).
NOT_IN_METRICS = ("torch", "torchvision", "pandas", "click")


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package_root: Path = PACKAGE) -> list[tuple[int, str, list[str]]]:
    """``(line, imported module, names)`` of every import statement in ``path`` (a file of the
    package at ``package_root``), relative imports resolved."""
    name = module_name(path, package_root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, module, [alias.name for alias in node.names]))
    return found


def part_of(module: str) -> str | None:
    """The entry of :data:`RANKS` that ``module`` belongs to (None for third-party modules)."""
    return next((part for part in RANKS if module == part or module.startswith(part + ".")), None)


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_module_is_in_a_layer():
    assert [module_name(p) for p in SOURCES if part_of(module_name(p)) is None] == []


def problems_in(path: Path, package_root: Path = PACKAGE) -> list[str]:
    """Every import of ``path`` that breaks a rule, as a message."""
    importer = part_of(module_name(path, package_root))
    problems = []
    for line, module, names in imports(path, package_root):
        top = module.split(".")[0]
        where = f"{path.relative_to(package_root.parent)}:{line} imports {module}"
        if top == "detectors":
            problems.append(f"{where}: the framework never imports a plugin, not even the built-in detectors")
        if importer == "pixeval.metrics" and top in NOT_IN_METRICS:
            problems.append(f"{where}: the metric core imports no {', '.join(NOT_IN_METRICS)}")
        if top != "pixeval":
            continue
        if module == "pixeval":
            if names != ["__version__"]:
                problems.append(f"{where}: inside pixeval, import from the module that defines a name, not the root")
            continue
        imported = part_of(module)
        if imported is None:
            problems.append(f"{where}: {module} is in no layer of RANKS")
        elif importer == "pixeval.metrics" and imported != "pixeval.metrics":
            problems.append(f"{where}: the metric core imports nothing else of pixeval")
        elif RANKS[imported] > RANKS[importer]:
            problems.append(f"{where}: {imported} (rank {RANKS[imported]}) is above {importer} (rank {RANKS[importer]})")
    return problems


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_go_down_never_up(path):
    assert problems_in(path) == []


def test_the_checker_sees_imports_inside_functions_and_relative_ones(tmp_path):
    root = tmp_path / "pixeval"
    source = root / "metrics" / "fake.py"
    source.parent.mkdir(parents=True)
    source.write_text("from . import _kernels\n\ndef f():\n    import torch\n    from ..bench import jobs\n"
                      "    import detectors.cfa\n")
    assert imports(source, root) == [(1, "pixeval.metrics", ["_kernels"]), (4, "torch", []),
                                     (5, "pixeval.bench", ["jobs"]), (6, "detectors.cfa", [])]
    assert [message.split(": ", 1)[1] for message in problems_in(source, root)] == [
        "the metric core imports no torch, torchvision, pandas, click",
        "the metric core imports nothing else of pixeval",
        "the framework never imports a plugin, not even the built-in detectors"]
    (root / "data").mkdir()
    (root / "data" / "fake.py").write_text("from pixeval.report import render_tables\nfrom pixeval import evaluate\n")
    assert [message.split(": ", 1)[1] for message in problems_in(root / "data" / "fake.py", root)] == [
        "pixeval.report (rank 5) is above pixeval.data (rank 1)",
        "inside pixeval, import from the module that defines a name, not the root"]


def loaded_after(statement: str, candidates: tuple[str, ...]) -> list[str]:
    code = f"import sys\n{statement}\nprint(' '.join(m for m in {candidates!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_the_metric_core_loads_no_torch_pandas_click_or_detectors():
    assert loaded_after("import pixeval.metrics", (*NOT_IN_METRICS, "detectors")) == []


def test_the_front_door_and_the_command_line_load_nothing_heavy():
    assert loaded_after("import pixeval", ("numpy", "numba", "torch", "pandas", "click")) == []
    assert loaded_after("import pixeval.cli", ("numpy", "numba", "torch", "pandas")) == []
