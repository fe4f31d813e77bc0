"""The robot tier reaches nothing above it: no workstation module, no torch/onnx, even lazily.

Every import statement of a robot-tier module is read from its source (inside functions too),
so an import that only runs on some path is caught before it ships to a device.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edgekit"
# What runs on the device: metadata and its limits, registries, runtimes, tasks, the Predictor with its
# frames and stream, frame sources (camera), latency timing.
ROBOT_TIER = ("edgekit", "edgekit.errors", "edgekit.meta", "edgekit.meta_records", "edgekit.conventions",
              "edgekit.limits", "edgekit.registry", "edgekit.paths", "edgekit.system", "edgekit.fileio", "edgekit.deps",
              "edgekit.hashing", "edgekit.parity",
              "edgekit.deployment", "edgekit.predictor", "edgekit.frames", "edgekit.stream", "edgekit.runtimes",
              "edgekit.tasks", "edgekit.bench", "edgekit.camera", "edgekit.gallery")
# Third-party packages the robot tier may import: numpy, one runtime, optional image I/O.
ROBOT_THIRD_PARTY = {"numpy", "onnxruntime", "openvino", "tensorrt", "cv2", "PIL"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def in_robot_tier(name: str) -> bool:
    return any(name == root or (root != "edgekit" and name.startswith(root + ".")) for root in ROBOT_TIER)


def imported_modules(path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports, anywhere in the file."""
    found: set[str] = set()
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
    return found


ROBOT_FILES = [p for p in sorted(PACKAGE.rglob("*.py")) if in_robot_tier(module_name(p))]


def test_robot_tier_is_found():
    names = {module_name(p) for p in ROBOT_FILES}
    assert {"edgekit.predictor", "edgekit.runtimes.base", "edgekit.tasks.detection", "edgekit.meta"} <= names


@pytest.mark.parametrize("path", ROBOT_FILES, ids=lambda p: module_name(p))
def test_robot_module_imports_nothing_above_it(path):
    upward = []
    for name in sorted(imported_modules(path)):
        top = name.split(".")[0]
        if top == "edgekit":
            if not in_robot_tier(name):
                upward.append(name)
        elif top not in sys.stdlib_module_names and top != "__future__" and top not in ROBOT_THIRD_PARTY:
            upward.append(name)
    assert not upward, (f"{module_name(path)} imports {upward} "
                        "(robot tier: stdlib, numpy, a runtime, edgekit's robot tier)")


def _edgekit_graph() -> dict[str, set[str]]:
    """Module → the edgekit modules it imports, function-level imports included (a package import
    counts as its __init__)."""
    modules = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}

    def resolve(name: str) -> str:
        while name and name not in modules:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        return name

    graph = {}
    for name, path in modules.items():
        targets = {resolve(i) for i in imported_modules(path) if i.startswith("edgekit")}
        graph[name] = targets - {"", name}
    return graph


def test_no_import_cycles_not_even_through_function_level_imports():
    """A cycle closed inside a function still ties two modules into one: each layer imports downward
    only (a plug-in further up is reached through a registry's import string, not an import)."""
    graph = _edgekit_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:   # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"
