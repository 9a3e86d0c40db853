"""The examples in the modules' docstrings hold."""

import doctest
import importlib
import pkgutil

import pytest

import spawner


def _modules():
    for info in pkgutil.walk_packages(spawner.__path__, "spawner."):
        yield info.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0
