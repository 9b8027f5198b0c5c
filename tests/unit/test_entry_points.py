"""Every finetune/, inference/ and scripts/ shim has a console script in setup.py that calls the same
function, and every console script names a function that exists."""

import ast
import importlib
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Shims kept for UER-py's own file names whose console script is the general one.
WITHOUT_CONSOLE_SCRIPT = {"scripts/quickstart.py", "scripts/convert_bert_from_huggingface_to_uer.py",
                          "scripts/plot_metrics.py", "scripts/convert.py"}


def console_scripts():
    tree = ast.parse(open(os.path.join(ROOT, "setup.py"), encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "console_scripts"
                                              for k in node.keys):
            entries = node.values[[k.value for k in node.keys].index("console_scripts")]
            return dict(e.value.split("=", 1) for e in entries.elts)
    raise AssertionError("setup.py has no console_scripts")


def shim_target(path):
    """(module, function) a shim imports and calls."""
    text = open(path, encoding="utf-8").read()
    found = re.search(r"^from (uer\.[\w.]+) import (\w+)", text, re.M)
    assert found, f"{path} imports nothing from uer"
    return found.group(1), found.group(2)


def shims():
    for folder in ("finetune", "inference", "scripts"):
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            if name.endswith(".py"):
                yield f"{folder}/{name}"


def test_every_console_script_names_an_existing_function():
    for name, target in console_scripts().items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function, None)), (name, target)


@pytest.mark.parametrize("shim", [s for s in shims() if s not in WITHOUT_CONSOLE_SCRIPT])
def test_every_shim_has_a_console_script(shim):
    module, function = shim_target(os.path.join(ROOT, shim))
    targets = set(console_scripts().values())
    assert f"{module}:{function}" in targets, f"setup.py has no console script for {shim} ({module}:{function})"
