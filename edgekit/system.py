"""Facts about the host: CPU name, memory, process RSS. Standard library only."""

from __future__ import annotations

import os
import platform
import resource
import sys
from functools import lru_cache


@lru_cache(maxsize=1)
def cpu_name() -> str:
    """Human-readable CPU model, e.g. 'AMD EPYC 9454P 48-Core Processor'."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@lru_cache(maxsize=1)
def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (what ONNX Runtime's default thread
    pool sizes itself to); the CPU count where the topology is not readable."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
    cores = set()
    for cpu in allowed:
        try:
            base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
            with open(f"{base}/physical_package_id", encoding="utf-8") as package, \
                    open(f"{base}/core_id", encoding="utf-8") as core:
                cores.add((package.read().strip(), core.read().strip()))
        except OSError:
            return len(allowed)
    return max(1, len(cores))


def current_rss_mb() -> float:
    """Resident set size of this process now, in MiB."""
    try:
        with open("/proc/self/statm", encoding="utf-8") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
