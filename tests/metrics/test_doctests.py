"""Every public function of the metric core shows a small example in its docstring, and the
example runs as printed."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest

import pixeval.metrics as metrics

#: Public names that are data or warning classes, not functions to call.
NOT_CALLED = ("AupimoReport", "BoundaryReport", "DegenerateInputWarning", "MetricReport", "NormalThreshold",
              "PairedComparison", "SizeBin", "SizeReport", "ThresholdReport")
FUNCTIONS = [name for name in metrics.__all__ if name not in NOT_CALLED]


def test_every_public_callable_is_covered():
    callables = {name for name in metrics.__all__ if inspect.isfunction(getattr(metrics, name))
                 or inspect.isclass(getattr(metrics, name))}
    assert callables - set(NOT_CALLED) == set(FUNCTIONS)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_docstring_example_runs(name):
    obj = getattr(metrics, name)
    globs = dict(vars(importlib.import_module(obj.__module__)))  # as doctest runs a module's examples
    tests = [t for t in doctest.DocTestFinder(recurse=False).find(obj, name, globs=globs) if t.examples]
    assert tests, f"pixeval.metrics.{name} has no example in its docstring"
    output: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test, out=output.append)
    assert runner.failures == 0, "".join(output)


MODULES = sorted(name for _, name, _ in pkgutil.iter_modules(metrics.__path__, "pixeval.metrics."))


@pytest.mark.parametrize("name", MODULES)
def test_module_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed (output above)"
