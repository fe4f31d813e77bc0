"""Where a measurement was taken: machine, OS, Python and library versions."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass

from edgekit import __version__
from edgekit.system import cpu_count, cpu_name


@dataclass(frozen=True)
class Environment:
    """The facts needed to tell whether two measurements are comparable."""

    cpu: str
    cpus: int
    machine: str
    os: str
    python: str
    numpy: str
    edgekit: str

    @classmethod
    def capture(cls) -> Environment:
        import numpy

        return cls(
            cpu=cpu_name(), cpus=cpu_count(), machine=platform.machine(),
            os=f"{platform.system()} {platform.release()}", python=platform.python_version(),
            numpy=numpy.__version__, edgekit=__version__,
        )


def manifest() -> dict:
    """Everything known about this machine and install, for the history store (a JSON object).

    Each fact is read where it is readable; a missing one is left out, never guessed.
    """
    import os
    import sys

    data: dict = {**asdict(Environment.capture()), "hostname": platform.node(), "cpu_flags": _cpu_flags(),
                  "threads_available": os.cpu_count(), "executable": sys.executable}
    governor = _read_first("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if governor:
        data["frequency_governor"] = governor
    frequency = _read_first("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    if frequency and frequency.isdigit():
        data["frequency_mhz"] = int(frequency) // 1000
    try:
        data["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    gpu = _nvidia_gpus()
    if gpu:
        data["gpu"] = gpu
    data["libraries"] = library_versions()
    data["git_commit"] = git_commit()
    return data


def git_commit() -> str:
    """The commit of the edgekit checkout in use ('' when it is not a git checkout)."""
    import subprocess
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2]
    try:
        result = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _read_first(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.readline().strip()
    except OSError:
        return ""


def _cpu_flags() -> list[str]:
    """The instruction-set flags that matter for inference speed (all of them would be noise)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            line = next((line for line in info if line.startswith("flags")), "")
    except OSError:
        return []
    wanted = ("avx", "fma", "sse4", "amx", "vnni", "bf16", "fp16", "neon", "asimd", "dotprod")
    return sorted(flag for flag in line.split(":", 1)[-1].split() if any(w in flag for w in wanted))


def _nvidia_gpus() -> list[str]:
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return []
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()] if result.returncode == 0 else []


def library_versions() -> dict[str, str]:
    """Installed versions of the runtimes and libraries a measurement depends on (metadata only: no imports)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "onnx", "torch", "nncf", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found
