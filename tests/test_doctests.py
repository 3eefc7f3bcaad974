"""The docstring examples of the public API run, on the tiny capture and a run trained on it
(``CAPTURE`` and ``RUN`` in the examples)."""

import doctest
import importlib

import pytest

MODULES = ["avatarfit.render.renderer", "avatarfit.data.cache", "avatarfit.data.capture", "avatarfit.synth.hmc",
           "avatarfit.observe", "avatarfit.fit"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name, tiny_capture, dam_run):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"CAPTURE": str(tiny_capture), "RUN": str(dam_run)},
                             optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (see above)"
