"""The docstring examples of every sinks module run as tests."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import touchstone.sinks

pytestmark = pytest.mark.timeout(30)


def _sink_modules():
    for info in pkgutil.iter_modules(touchstone.sinks.__path__):
        yield importlib.import_module(f"touchstone.sinks.{info.name}")


@pytest.mark.parametrize("module", list(_sink_modules()), ids=lambda m: m.__name__)
def test_doctests(module):
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0
