"""Jetson (aarch64, JetPack 6's TensorRT 10.3 as system packages) without a Jetson: the pure-Python
paths with platform.machine() patched and a Jetson's folders under tmp_path — library search paths,
the L4T release, where TensorRT came from, what `edgekit runtimes` names ([docs/jetson.md])."""

from __future__ import annotations

import sys

import pytest
from conftest import run_cli

from edgekit.runtimes import get_runtime


def _jetson_root(tmp_path):
    """A Jetson's folders under tmp_path: multiarch + tegra, CUDA's aarch64 target, the L4T release file."""
    for folder, names in (("usr/lib/aarch64-linux-gnu", ["libnvinfer.so.10", "libnvonnxparser.so.10"]),
                          ("usr/lib/aarch64-linux-gnu/tegra", ["libcuda.so.1"]),
                          ("usr/local/cuda/targets/aarch64-linux/lib", ["libcudart.so.12"])):
        (tmp_path / folder).mkdir(parents=True)
        for name in names:
            (tmp_path / folder / name).write_bytes(b"")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nv_tegra_release").write_text(
        "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8\n")
    return tmp_path


@pytest.fixture
def on_jetson(tmp_path, monkeypatch):
    """platform.machine() says aarch64 and the system folders are a Jetson's (under tmp_path)."""
    import platform

    from edgekit.runtimes import gpu_libraries

    root = _jetson_root(tmp_path)
    folders, release = gpu_libraries.system_library_dirs, gpu_libraries.l4t_release
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(gpu_libraries, "system_library_dirs", lambda machine=None: folders(machine, root=str(root)))
    monkeypatch.setattr(gpu_libraries, "l4t_release", lambda: release(str(root)))
    monkeypatch.setenv("LD_LIBRARY_PATH", "")
    return root


def test_library_folders_follow_the_machine_s_architecture(tmp_path):
    from edgekit.runtimes.gpu_libraries import system_library_dirs

    root = _jetson_root(tmp_path)
    assert system_library_dirs("aarch64", str(root)) == [
        str(root / "usr/lib/aarch64-linux-gnu"), str(root / "usr/lib/aarch64-linux-gnu/tegra"),
        str(root / "usr/local/cuda/targets/aarch64-linux/lib")]
    assert system_library_dirs("x86_64", str(root)) == []  # no x86_64 folders there: nothing assumed
    (root / "usr/lib/x86_64-linux-gnu").mkdir()
    assert system_library_dirs("x86_64", str(root)) == [str(root / "usr/lib/x86_64-linux-gnu")]


def test_jetpack_libraries_are_found_in_the_aarch64_system_folders(on_jetson):
    from edgekit.runtimes import cuda
    from edgekit.runtimes.gpu_libraries import find_library_file, l4t_release

    assert find_library_file("libnvinfer.so.10", []) == str(on_jetson / "usr/lib/aarch64-linux-gnu/libnvinfer.so.10")
    assert find_library_file("libnvinfer.so.11", []) is None
    assert str(on_jetson / "usr/local/cuda/targets/aarch64-linux/lib/libcudart.so.12") in cuda._candidate_paths()
    assert l4t_release() == "R36.4.3"


def test_trt_on_a_jetson_without_tensorrt_points_at_jetpack(on_jetson, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as if not installed
    availability = get_runtime("trt").probe()
    assert not availability.available and availability.reason == "tensorrt is not installed"
    assert "python3-libnvinfer" in availability.install and "--system-site-packages" in availability.install
    assert "edgekit[tensorrt]" not in availability.install  # PyPI's wheels are not for JetPack


def test_package_origin_tells_a_venv_from_system_site_packages(monkeypatch):
    from edgekit.runtimes.gpu_libraries import package_origin

    monkeypatch.setattr(sys, "prefix", "/home/me/venv")
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    assert package_origin("/usr/lib/python3/dist-packages/tensorrt/__init__.py") == "system site-packages"
    assert package_origin("/home/me/venv/lib/python3.10/site-packages/tensorrt/__init__.py") == \
        "this virtual environment"


def test_runtimes_names_the_gpu_stack_it_found_and_what_is_missing(on_jetson, monkeypatch):
    """On a Jetson: TensorRT's version and where it came from (JetPack's system site-packages), libnvinfer
    in /usr/lib/aarch64-linux-gnu, libcudart found or missing, the L4T release."""
    import importlib.machinery

    from fake_tensorrt import fake_trt

    from edgekit.runtimes import cuda
    from edgekit.runtimes.gpu_libraries import gpu_stack

    trt = fake_trt("10.3.0.30")
    trt.__spec__ = importlib.machinery.ModuleSpec(
        "tensorrt", None, origin="/usr/lib/python3.10/dist-packages/tensorrt/__init__.py")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)

    def no_cudart():
        raise cuda.CudaError("the CUDA runtime library (libcudart) was not found")

    monkeypatch.setattr(cuda, "runtime_library", no_cudart)
    parts = {part.name: part for part in gpu_stack()}
    assert parts["machine"].detail == "aarch64, Jetson (L4T R36.4.3)"
    assert parts["tensorrt"].found and parts["tensorrt"].detail == (
        "10.3.0.30 from system site-packages (/usr/lib/python3.10/dist-packages/tensorrt)")
    assert parts["libnvinfer"].found and parts["libnvinfer"].detail.endswith("aarch64-linux-gnu/libnvinfer.so.10")
    assert not parts["libcudart"].found and "libcudart" in parts["libcudart"].detail
    result = run_cli("runtimes")
    assert result.returncode == 0 and "GPU stack" in result.stdout and "libcudart" in result.stdout
