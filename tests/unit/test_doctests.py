"""The examples in the modules' docstrings hold."""

import doctest
import importlib
import pkgutil

import pytest

import hubdash


def _modules():
    for info in pkgutil.walk_packages(hubdash.__path__, "hubdash."):
        yield info.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0
