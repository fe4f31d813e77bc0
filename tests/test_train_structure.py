"""The training and dataset packages stay easy to change: datasets/base.py is a leaf, no file imports
another's private names, and the modules of edgekit/train and edgekit/datasets import each other
without cycles (function-level imports included); the detector trains through the shared loop."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGES = ("train", "datasets")


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in a file, function-level ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _files():
    return [path for package in PACKAGES for path in sorted((REPO / "edgekit" / package).glob("*.py"))]


def test_datasets_base_is_a_leaf():
    edgekit_imports = {module for module, _ in _imports(REPO / "edgekit/datasets/base.py")
                       if module.startswith("edgekit")}
    assert edgekit_imports == {"edgekit.errors"}


def test_no_private_names_imported_across_files():
    private = [(path.name, module, name) for path in (REPO / "edgekit").rglob("*.py")
               for module, names in _imports(path) if module.startswith("edgekit")
               for name in names if name.startswith("_") and not name.startswith("__")]
    assert private == []


def test_train_and_datasets_have_no_import_cycles():
    modules = {_module(path): path for path in _files()}
    graph = {name: {module for module, _ in _imports(path) if module in modules and module != name}
             for name, path in modules.items()}
    graph = {name: edges - {name.rsplit(".", 1)[0]} for name, edges in graph.items()}  # a module's own package
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            assert state.get(target) != 1, f"import cycle: {' → '.join([*trail, name, target])}"
            if target not in state:
                visit(target, [*trail, name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_every_recipe_trains_through_the_shared_loop():
    for recipe in ("lenet", "transfer", "detector"):
        names = {module for module, _ in _imports(REPO / f"edgekit/train/{recipe}.py")}
        assert names & {"edgekit.train.loop", "edgekit.train.classifier"}, recipe
    detector = (REPO / "edgekit/train/detector.py").read_text()
    assert "optimizer.step()" not in detector and "fit_loop(" in detector
