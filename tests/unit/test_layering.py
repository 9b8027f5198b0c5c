"""The library below the command line never imports it: uer/tasks, uer/models and uer/training get
built objects (tokenizer, config, EngineFactory) from uer/cli, never the other way round."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2] / "uer"


def imported_modules(path: pathlib.Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_tasks_models_and_training_never_import_the_cli():
    offenders = [f"{path.relative_to(ROOT.parent)} imports {name}"
                 for package in ("tasks", "models", "training")
                 for path in sorted((ROOT / package).rglob("*.py"))
                 for name in imported_modules(path) if name == "uer.cli" or name.startswith("uer.cli.")]
    assert not offenders, offenders
    assert list((ROOT / "tasks").rglob("*.py"))         # the scan looked at real files
