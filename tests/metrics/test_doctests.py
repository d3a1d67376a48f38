"""The docstring examples of every dmlax.metrics module run and pass (as
`pytest --doctest-modules dmlax/metrics` runs them), so the suite keeps them true."""

import doctest
import importlib
import pkgutil

import pytest

import dmlax.metrics

MODULES = sorted(name for _, name, _ in pkgutil.iter_modules(dmlax.metrics.__path__,
                                                             "dmlax.metrics."))


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
  module = importlib.import_module(name)
  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
  assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"
