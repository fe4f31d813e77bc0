"""The quantize sweep as a library call: variants x runtimes, measured side by side, and (with a
budget) the fastest variant within it kept. Returns a record; the CLI only renders it.

    configs = make_configs(["int8-static", "fp16"], ["ort"], calib="digits")
    result = sweep(source, Path("out.onnx"), configs, SweepConfig(max_drop=1.0))
    result.report.rows, result.selection.summary, result.written
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import BadInputError
from edgekit.matrix.variants import Variant
from edgekit.quantize.base import QUANTIZERS, QuantizeConfig
from edgekit.quantize.report import PrecisionReport
from edgekit.quantize.select import Selection

#: runtimes measured when none are named (those registered here)
DEFAULT_RUNTIMES = ("ort-cpu", "openvino")


@dataclass(frozen=True)
class SweepConfig:
    """How to measure: ``runtimes`` (empty: ort-cpu and openvino), accuracy on ``eval_data``
    (dataset name; default the calibration data), ``max_drop`` points to select within (None:
    keep every variant), inference ``threads`` and seconds of timing per row."""

    runtimes: tuple[str, ...] = ()
    eval_data: str | None = None
    eval_size: int = 500
    max_drop: float | None = None
    threads: int | None = None
    duration: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_drop is not None and not self.max_drop >= 0:
            raise BadInputError(f"--max-drop must be 0 or more, got {self.max_drop}")
        if self.eval_size < 1:
            raise BadInputError(f"--eval-size must be at least 1, got {self.eval_size}")
        from edgekit.runtimes import RUNTIMES

        for name in self.runtimes:  # a typo is found before any export or quantization, with a suggestion
            RUNTIMES.canonical(name)


@dataclass(frozen=True)
class SweepResult:
    """The precision table, the selection (with a budget) and the files written."""

    report: PrecisionReport
    selection: Selection | None
    written: tuple[Path, ...]

    @property
    def kept(self) -> tuple[str, str] | None:
        """(variant, runtime) of the kept row, if one was kept."""
        row = self.selection.kept if self.selection else None
        return (row.variant, row.runtime) if row else None


def make_configs(modes: Sequence[str] | None, backends: Sequence[str] | None,
                 **common: Any) -> list[QuantizeConfig]:
    """One config per (backend, mode); in a sweep, pairs no backend offers (nncf has int8-static
    only) are skipped. ``common``: the other QuantizeConfig fields."""
    modes = list(dict.fromkeys(modes or ["int8-static"]))
    backends = list(dict.fromkeys(backends or ["ort"]))
    pairs = [(b, m) for b in backends for m in modes]
    if len(pairs) > 1:
        pairs = [(b, m) for b, m in pairs if f"{b}:{m}" in QUANTIZERS] or pairs[:1]
    return [QuantizeConfig(mode=m, backend=b, **common) for b, m in pairs]


def check_calibration_used(configs: Sequence[QuantizeConfig], calib: str | None, calib_size: int | None,
                           method: str | None, measured: bool) -> None:
    """Calibration options with no calibrating mode would be silently ignored: refuse them. (When
    measuring, --calib is still the default evaluation data, so it alone is accepted.)"""
    if any(c.mode == "int8-static" for c in configs):
        return
    given = [name for name, value in (("--calib", None if measured else calib), ("--calib-size", calib_size),
                                      ("--method", method)) if value is not None]
    if given:
        modes = ", ".join(dict.fromkeys(c.mode for c in configs))
        raise BadInputError(f"{', '.join(given)}: only int8-static uses calibration, "
                            f"and no selected mode ({modes}) does")


def sweep(source: Path, output: Path, configs: Sequence[QuantizeConfig], options: SweepConfig) -> SweepResult:
    """Build every variant, measure them with FP32 on every runtime that loads them, and keep the
    fastest one within ``max_drop`` as ``output`` (or, without a budget, write every variant:
    ``output`` itself for one, ``<output stem>.<variant><suffix>`` for several)."""
    from edgekit.meta import read_meta
    from edgekit.quantize.calibration import calibration_batches
    from edgekit.quantize.report import bf16_variant, measure
    from edgekit.quantize.select import build_variants, choose
    from edgekit.runtimes import RUNTIMES

    meta = read_meta(source)
    names = list(options.runtimes) or [name for name in DEFAULT_RUNTIMES if name in RUNTIMES]
    measure_config = _measure_config(names, options)
    eval_data = options.eval_data or configs[0].calib
    split, misfit = eval_split(eval_data, meta, options.eval_size, options.seed)
    if options.max_drop is not None and split is None:
        if misfit:
            raise BadInputError(f"--max-drop cannot score the model on {eval_data}: {misfit}")
        raise BadInputError("--max-drop needs labelled data to measure accuracy: --eval DATASET (or --calib DATASET)")
    parity = calibration_batches(eval_data, source, meta, 64, options.seed, split="test") if eval_data else None
    fp32 = Variant(source)
    wants_openvino = "openvino" in [RUNTIMES.canonical(n) for n in names]
    extra = [v for v in (bf16_variant(fp32),) if v is not None and wants_openvino]

    def run(variants):
        return measure(variants, meta, measure_config, split, parity)

    if options.max_drop is not None:
        report, selection, kept = choose(source, output, configs, options.max_drop,
                                         RUNTIMES.canonical(names[0]), run, extra)
        return SweepResult(report, selection, (kept,))
    variants = build_variants(source, configs)
    report = run([*variants, *extra])
    return SweepResult(report, None, keep_all(variants[1:], output, single=len(configs) == 1))


def _measure_config(names: list[str], options: SweepConfig):
    from edgekit.matrix.cells import Timing
    from edgekit.quantize.report import MeasureConfig

    return MeasureConfig(runtimes=tuple(names), threads=options.threads,
                         timing=Timing(warmup=5, min_runs=20, min_duration_s=options.duration, rounds=1))


def keep_all(variants: Sequence[Variant], output: Path, single: bool) -> tuple[Path, ...]:
    """Copy built variants out of the cache: ``output`` itself, or ``output.<variant><suffix>``."""
    from edgekit.quantize.select import copy_model

    return tuple(copy_model(variant.path, output if single else
                            output.with_name(f"{output.stem}.{variant.name}{variant.path.suffix}"))
                 for variant in variants)


def eval_split(data: str | None, meta, size: int, seed: int):
    """(the test split of a labelled dataset the model fits, '') for accuracy; (None, why not) when
    the model does not fit it (``datasets.fit``); (None, '') for image folders of unlabelled images
    and .npz inputs, which carry no labels."""
    from edgekit.datasets import load_split
    from edgekit.datasets.fit import misfit_reason
    from edgekit.quantize.calibration import recorded_split

    if not data or Path(data).suffix.lower() == ".npz" or meta.task == "unknown":
        return None, ""
    options, split_seed = recorded_split(meta, data, seed)  # the model's own test split, when it is its dataset
    try:
        split = load_split(data, split="test", seed=split_seed, for_task=meta.task, **options)
    except (ModuleNotFoundError, BadInputError):
        return None, ""
    if split.task != meta.task:
        raise BadInputError(f"model task '{meta.task}' does not match dataset task '{split.task}'")
    misfit = misfit_reason(meta, split.task, split.labels, data)
    return (None, misfit) if misfit else (split.take(size), "")
