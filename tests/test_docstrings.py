"""Every docstring example in the package runs (diffusers style: docstrings carry a runnable example)."""

import doctest
import importlib
import pkgutil

import pytest

import hf_sprites

MODULES = sorted(m.name for m in pkgutil.walk_packages(hf_sprites.__path__, "hf_sprites."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
