"""Shared fixtures and hardware skips. Markers: gpu, tensorrt, openvino, slow.

Set EDGEKIT_REQUIRE_GPU=1 on a GPU machine to turn GPU skips into failures: a gpu/tensorrt test
that cannot run then fails in its setup (pytest exits 1), so a GPU job that lost its GPU is red.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # test this checkout's edgekit, whatever is installed

from cli_runner import run_cli, run_cli_subprocess  # noqa: E402,F401  (tests import them from here)
TEST_SIZE = {"lenet5": None, "alexnet": (224, 224), "vgg11": (224, 224), "vgg13": (224, 224),
             "vgg16": (224, 224), "vgg19": (224, 224)}
DEFAULT_TEST_SIZE = (64, 64)


def _gpu_present() -> bool:
    """edgekit's one GPU probe (the CUDA driver's device list), as the runtimes use it."""
    from edgekit.runtimes.cuda import gpu_names

    return bool(gpu_names())


def _module_present(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


REQUIRED_MISSING = pytest.StashKey[str]()


def pytest_collection_modifyitems(config, items):
    require_gpu = os.environ.get("EDGEKIT_REQUIRE_GPU") == "1"
    gpu = _gpu_present()
    missing = {
        "gpu": None if gpu else "no NVIDIA GPU on this machine",
        "tensorrt": None if _module_present("tensorrt") and gpu else "tensorrt or a GPU is missing",
        "openvino": None if _module_present("openvino") else "openvino is not installed",
    }
    for item in items:
        for marker, reason in missing.items():
            if reason and marker in item.keywords:
                if require_gpu and marker in ("gpu", "tensorrt"):
                    item.stash[REQUIRED_MISSING] = f"EDGEKIT_REQUIRE_GPU=1 but {reason}"
                else:
                    item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_setup(item):
    """Fail (not skip, not xfail: both exit 0) a GPU test that EDGEKIT_REQUIRE_GPU=1 requires."""
    reason = item.stash.get(REQUIRED_MISSING, None)
    if reason:
        pytest.fail(reason, pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keep the user's cache untouched: every test session gets its own (shared by its xdist workers:
    the cache's files are written atomically, so two workers at most build one thing twice)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        cache = tmp_path_factory.getbasetemp().parent / "edgekit-cache"
        cache.mkdir(exist_ok=True)
    else:
        cache = tmp_path_factory.mktemp("edgekit-cache")
    previous = os.environ.get("EDGEKIT_CACHE_DIR")
    os.environ["EDGEKIT_CACHE_DIR"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("EDGEKIT_CACHE_DIR", None)
    else:
        os.environ["EDGEKIT_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def zoo_onnx(tmp_path_factory):
    """Export a zoo model once per session at a test-friendly size: zoo_onnx(name, **config)."""
    from edgekit.exporters import ExportConfig
    from edgekit.exporters.torch_onnx import export_zoo_model

    folder = tmp_path_factory.mktemp("zoo")
    made: dict[tuple, object] = {}

    def export(name: str, **config):
        config.setdefault("input_size", TEST_SIZE.get(name, DEFAULT_TEST_SIZE))
        key = (name, tuple(sorted(config.items())))
        if key not in made:
            target = folder / f"{name}-{len(made)}.onnx"
            made[key] = export_zoo_model(name, target, ExportConfig(**config))
        return made[key]

    return export


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """The CLI's contract for bad input: exit 2, one 'error: ' line naming ``fragments``, no traceback."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


BLOCK_IMPORTS = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    blocked = set({names!r})
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named '{{name}}'", name=name)
sys.meta_path.insert(0, _Block())
"""


def block_imports(*names: str) -> str:
    """Python source that makes importing ``names`` fail as if they were not installed."""
    return BLOCK_IMPORTS.format(names=set(names))


# Architectures whose export or compile takes seconds each on 2 cores: the fast lane runs the others.
HEAVY_ZOO = {"alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "resnet34", "resnet50", "resnext50_32x4d", "densenet121"}


def zoo_params(names):
    """Zoo names for a parametrized test, the heavy architectures marked slow."""
    return [pytest.param(name, marks=pytest.mark.slow) if name in HEAVY_ZOO else name for name in names]
