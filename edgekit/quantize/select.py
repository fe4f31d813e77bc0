"""Accuracy-aware choice for `quantize --max-drop`, by the one selection rule (``matrix.choice``,
shared with `optimize`): the fastest variant whose accuracy drop fits the budget and that beats FP32
on the same runtime by ``MIN_SPEEDUP``. When no INT8 variant fits the budget, static INT8 is retried
with the first and last weighted layers left in float (the layers most sensitive to quantization),
and if still nothing fits FP32 is kept.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgekit.matrix.choice import MIN_SPEEDUP, fastest, verdict
from edgekit.matrix.variants import Variant
from edgekit.quantize.base import QuantizeConfig, kind_of
from edgekit.quantize.report import PrecisionReport, PrecisionRow

__all__ = ["MIN_SPEEDUP", "Selection", "select", "choose", "build_variants", "keep"]

SENSITIVE = ("@first", "@last")
RERUN = "fp32-rerun"  # the FP32 baseline measured again beside the sensitive-layer retry


@dataclass(frozen=True)
class Selection:
    """The kept row (None: keep FP32) and, for every candidate, why it was kept or not."""

    kept: PrecisionRow | None
    reasons: tuple[tuple[str, str, str], ...]   # (variant, runtime, verdict)
    runtime: str = ""   # the runtime the choice was made for (the first --runtime; the report times others)

    @property
    def summary(self) -> str:
        if self.kept is None:
            on = f" on {self.runtime}" if self.runtime else ""
            return (f"kept FP32: no quantized variant is both faster{on} and within the accuracy budget"
                    + (" (the first --runtime; the other rows are for reference)" if on else ""))
        row = self.kept
        return (f"kept {row.variant} on {row.runtime}: {row.speedup:.2f}x faster than FP32, "
                f"{row.metric} drop {row.accuracy_drop:+.2f} pt")


def select(report: PrecisionReport, max_drop: float, runtime: str) -> Selection:
    """The quantized row on ``runtime`` that ``matrix.choice`` selects: within ``max_drop`` points, faster
    than FP32 by the margin, the fastest relative to its FP32 baseline (ties by file size)."""
    candidates = [row for row in report.rows if row.runtime == runtime and row.variant not in ("fp32", RERUN)]
    verdicts = [verdict(row.accuracy_drop, row.speedup, max_drop) for row in candidates]
    best = fastest([row for row, why in zip(candidates, verdicts) if why == "ok"],
                   lambda row: 1.0 / row.speedup, lambda row: row.size_mb)
    reasons = [(row.variant, row.runtime, "kept" if row is best else
                ("within budget, not the fastest" if why == "ok" else why)) for row, why in zip(candidates, verdicts)]
    return Selection(best, tuple(reasons), runtime)


def build_variants(source: Path, configs: Sequence[QuantizeConfig]) -> list[Variant]:
    """FP32 (the source) plus one quantized file per config, from the engine's one cached builder
    (``matrix.variants.cached_quantize``): a re-run with the same source and settings reuses them."""
    from edgekit.matrix.variants import cached_quantize
    from edgekit.meta import read_meta
    from edgekit.quantize.base import file_sha256

    variants = [Variant(source)]
    source_sha = file_sha256(source)
    for config in configs:
        path = cached_quantize(source, source_sha, config)
        runtimes = kind_of(config.backend).runtimes(config.mode)
        variants.append(Variant(path, name=config.variant, precision=read_meta(path).precision, runtimes=runtimes))
    return variants


def sensitive_retry(configs: Sequence[QuantizeConfig]) -> list[QuantizeConfig]:
    """Static ORT configs again, with the first/last weighted layers kept in float."""
    return [dataclasses.replace(c, exclude=SENSITIVE) for c in configs
            if c.mode == "int8-static" and c.backend == "ort" and not c.exclude]


def keep(row: PrecisionRow | None, source: Path, output: Path) -> Path:
    """Copy the kept artifact (or the FP32 source) to ``output`` with the kept file's suffix (e.g. .xml
    for an OpenVINO IR); returns where it went."""
    chosen = Path(row.path) if row else source
    return copy_model(chosen, output.with_suffix(chosen.suffix))


def copy_model(path: Path, target: Path) -> Path:
    """Copy a model file (an IR with its .bin) to ``target`` atomically."""
    from edgekit.fileio import atomic_path

    if path.suffix.lower() == ".xml":
        with atomic_path(target.with_suffix(".bin")) as temporary:
            shutil.copyfile(path.with_suffix(".bin"), temporary)
    with atomic_path(target) as temporary:
        shutil.copyfile(path, temporary)
    return target


def choose(
    source: Path, output: Path, configs: Sequence[QuantizeConfig], max_drop: float, runtime: str,
    measure_one, extra_variants: Sequence[Variant] = (),
) -> tuple[PrecisionReport, Selection, Path]:
    """Build the variants, measure them (``measure_one(variants) -> PrecisionReport``), select within
    ``max_drop`` on ``runtime``, retry static INT8 without sensitive layers if nothing fits, keep the winner."""
    variants = build_variants(source, configs)
    report = measure_one([*variants, *extra_variants])
    selection = select(report, max_drop, runtime)
    retry = sensitive_retry(configs) if selection.kept is None else []
    if retry:
        more = build_variants(source, retry)
        extra = measure_one(more)  # FP32 is measured again first: each speedup has a side-by-side baseline,
        # and that baseline is shown (as fp32-rerun) so the retry's speedups can be read from the table
        added = tuple(dataclasses.replace(r, variant=RERUN) if r.variant == "fp32" else r for r in extra.rows)
        report = dataclasses.replace(report, rows=report.rows + added)
        selection = select(report, max_drop, runtime)
    return report, selection, keep(selection.kept, source, output)

