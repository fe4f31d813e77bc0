"""The search space of `edgekit optimize`: runtime × precision × quantizer × settings × batch.

A ``Candidate`` is one deployable configuration. ``cell(model)`` turns it into the matrix ``Cell``
that is measured and stored, with the candidate's variant recorded in the cell's options (so two
INT8 files of one runtime, ORT QDQ and NNCF, stay two cells).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from edgekit.matrix.cells import Cell

FIRST_LAST = ("@first", "@last")


@dataclass(frozen=True)
class Candidate:
    """One configuration to try. ``quantizer`` names who made an int8 file: ``ort`` (QDQ, runs on
    ORT and OpenVINO) or ``nncf`` (OpenVINO IR); ``exclude`` lists layers kept in float."""

    runtime: str
    precision: str = "fp32"
    quantizer: str = ""
    exclude: tuple[str, ...] = ()
    threads: int | None = None
    batch: int = 1
    options: tuple[tuple[str, Any], ...] = ()
    scenario: str = "single-stream"    # or offline: every request kept busy, ms per item from throughput

    @property
    def variant(self) -> str:
        """Short name of the model file and precision mode, e.g. ``int8-ort``, ``int8-nncf-excl2``."""
        name = self.precision + (f"-{self.quantizer}" if self.quantizer else "")
        if self.exclude:
            name += "-" + ("first-last" if self.exclude == FIRST_LAST else f"excl{len(self.exclude)}")
        return name

    @property
    def label(self) -> str:
        settings = f" t{self.threads}" if self.threads else ""
        settings += "".join(f" {k}={v}" for k, v in self.options)
        settings += "" if self.scenario == "single-stream" else f" {self.scenario}"
        return f"{self.runtime} {self.variant} b{self.batch}{settings}"

    def cell(self, model: str) -> Cell:
        options = tuple(sorted((*self.options, ("variant", self.variant),
                                *((("exclude", ",".join(self.exclude)),) if self.exclude else ()))))
        return Cell(model, self.runtime, self.precision, self.batch, self.threads, self.scenario, options)

    def runtime_options(self) -> dict[str, Any]:
        """What the runtime is opened with (the variant's own precision hint is added when built); on
        OpenVINO the performance hint of the scenario, as the matrix does, unless one is given."""
        options: dict[str, Any] = {"threads": self.threads, **dict(self.options)}
        if self.runtime == "openvino" and "hint" not in options:
            options["hint"] = "latency" if self.scenario == "single-stream" else "throughput"
        return options

    def with_exclude(self, exclude: tuple[str, ...]) -> Candidate:
        from dataclasses import replace

        return replace(self, exclude=exclude)


@dataclass(frozen=True)
class Capabilities:
    """What this machine offers: precisions the CPU runs and how many threads to try."""

    bf16: bool = False
    fp16: bool = False
    nncf: bool = False
    threads: tuple[int | None, ...] = (None,)
    cores: int = 1


def capabilities() -> Capabilities:
    import importlib.util

    from edgekit.quantize.openvino import bf16_available

    fp16 = False
    try:
        import openvino as ov

        fp16 = "FP16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # openvino missing: no OpenVINO candidates anyway
        pass
    return Capabilities(bf16_available(), fp16, importlib.util.find_spec("nncf") is not None, thread_choices(),
                        os.cpu_count() or 1)


def thread_choices(cores: int | None = None) -> tuple[int | None, ...]:
    """The runtime's default (every core) and, on a multi-core CPU, one and half the cores."""
    cores = cores or os.cpu_count() or 1
    choices: list[int | None] = [None]
    for count in (1, cores // 2):
        if 1 <= count < cores and count not in choices:
            choices.append(count)
    return tuple(choices)


def precision_candidates(runtime: str, caps: Capabilities) -> list[Candidate]:
    """The precision modes one runtime can run here (before threads and batch are applied)."""
    if runtime == "ort-cpu":
        return [Candidate(runtime), Candidate(runtime, "fp16"), Candidate(runtime, "int8", "ort")]
    if runtime == "openvino":
        found = [Candidate(runtime)]
        found += [Candidate(runtime, "bf16")] if caps.bf16 else []
        found += [Candidate(runtime, "fp16")] if caps.fp16 else []
        found += [Candidate(runtime, "int8", "ort")]
        found += [Candidate(runtime, "int8", "nncf")] if caps.nncf else []
        return found
    return [Candidate(runtime), Candidate(runtime, "fp16"), Candidate(runtime, "int8", "ort")]


def search_space(runtimes: tuple[str, ...], caps: Capabilities, batches: tuple[int, ...] = (1,),
                 scenario: str = "single-stream") -> list[Candidate]:
    """Every candidate of the first pass; fallbacks (layers kept in float) are added while searching.
    Offline, OpenVINO's streams are searched too (AUTO from the THROUGHPUT hint, one, one per core)."""
    from dataclasses import replace

    found = []
    for runtime in runtimes:
        settings: list[tuple[int | None, tuple[tuple[str, Any], ...]]] = [(t, ()) for t in caps.threads]
        if runtime == "openvino" and scenario == "offline":
            settings += [(None, (("streams", count),)) for count in dict.fromkeys((1, caps.cores))]
        for base in precision_candidates(runtime, caps):
            for batch in batches:
                for threads, options in settings:
                    found.append(replace(base, threads=threads, batch=batch, options=options, scenario=scenario))
    return found
