"""Where each run's figures came from, for every report format: one line per run (CPU and its ISA
flags, cores, load, library versions, edgekit commit), a warning when the runs shown come from
different machines, and the cells this machine could not run collapsed into one line."""

from __future__ import annotations

from typing import Any

# The flags that change which kernels a runtime picks (all of /proc/cpuinfo would be noise).
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_fp16",
             "asimd", "dotprod")
LIBRARIES = ("onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "nncf", "torch", "numpy")


def machine_of(environment: dict[str, Any]) -> tuple:
    """What makes two runs' figures comparable: CPU model, ISA flags, core count, GPUs."""
    flags = tuple(f for f in ISA_FLAGS if f in (environment.get("cpu_flags") or ()))
    return (environment.get("cpu", ""), flags, environment.get("cpus"), tuple(environment.get("gpu") or ()))


def environment_line(run: dict[str, Any]) -> str:
    """'run 3 · 2026-12-07 01:30 · AMD EPYC (avx2 avx512f …) · 2 cores · load 1.20 · onnxruntime 1.23 … ·
    edgekit 0.1.0 @ 1a2b3c4d5e6f'."""
    env = run.get("environment") or {}
    started = run.get("started")
    when = started.strftime("%Y-%m-%d %H:%M") if hasattr(started, "strftime") else str(started or "")
    flags = " ".join(f for f in ISA_FLAGS if f in (env.get("cpu_flags") or ())) or "no AVX2"
    load = env.get("load_average")
    libraries = env.get("libraries") or {}
    versions = ", ".join(f"{name} {libraries[name]}" for name in LIBRARIES if name in libraries)
    commit = str(env.get("git_commit") or "")[:12]
    parts = [f"run {run.get('id')}", when, f"{env.get('cpu', '?')} ({flags})", f"{env.get('cpus', '?')} cores"]
    if load:
        parts.append(f"load {load[0]:.2f}")
    if env.get("gpu"):
        parts.append("GPU " + "; ".join(env["gpu"]))
    if versions:
        parts.append(versions)
    parts.append(f"edgekit {env.get('edgekit', '?')}" + (f" @ {commit}" if commit else ""))
    return " · ".join(parts)


def machines_warning(runs: list[dict[str, Any]]) -> str:
    """'' when every run came from one kind of machine, else a line saying the figures are not comparable."""
    machines = {machine_of(run.get("environment") or {}) for run in runs}
    if len(machines) < 2:
        return ""
    return (f"these {len(runs)} runs come from {len(machines)} different machines (CPU, ISA flags, cores or GPU "
            "differ): compare figures within one machine only")


def split_unavailable(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """(the rows that ran or could run here, one line for cells whose runtime was not on the machine)."""
    shown, missing = [], {}
    for row in rows:
        if (row.get("config") or {}).get("unavailable"):
            missing.setdefault(row["runtime"], []).append(row)
        else:
            shown.append(row)
    if not missing:
        return shown, ""
    counts = ", ".join(f"{runtime} ({len(cells)} cells)" for runtime, cells in missing.items())
    hint = next(iter(missing.values()))[0].get("reason", "")
    return shown, f"not run on that machine: {counts} — {hint}"
