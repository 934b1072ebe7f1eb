"""Every public function of the metric core shows a small example in its docstring, and the
example runs as printed."""

from __future__ import annotations

import doctest
import inspect

import pytest

import pixeval.metrics as metrics

#: Public names that are data or warning classes, not functions to call.
NOT_CALLED = ("DegenerateInputWarning", "MetricReport", "PairedComparison")
FUNCTIONS = [name for name in metrics.__all__ if name not in NOT_CALLED]


def test_every_public_callable_is_covered():
    callables = {name for name in metrics.__all__ if inspect.isfunction(getattr(metrics, name))
                 or inspect.isclass(getattr(metrics, name))}
    assert callables - set(NOT_CALLED) == set(FUNCTIONS)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_docstring_example_runs(name):
    tests = [t for t in doctest.DocTestFinder(recurse=False).find(getattr(metrics, name), name, globs={})
             if t.examples]
    assert tests, f"pixeval.metrics.{name} has no example in its docstring"
    output: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test, out=output.append)
    assert runner.failures == 0, "".join(output)
