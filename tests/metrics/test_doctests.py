"""The docstring examples of the metric core (``>>>`` lines) run as part of the suite."""

import doctest
import importlib
import pkgutil

import pytest

import pixeval.metrics

MODULES = sorted(name for _, name, _ in pkgutil.iter_modules(pixeval.metrics.__path__,
                                                              "pixeval.metrics."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed (output above)"


def test_the_new_metrics_have_examples():
    finder = doctest.DocTestFinder()
    examples = {name: sum(len(test.examples) for test in finder.find(importlib.import_module(name)))
                for name in MODULES}
    for name in ("aupimo", "boundary", "by_size", "thresholds"):
        assert examples[f"pixeval.metrics.{name}"] > 0, name
