"""The shipped file: the winning variant (or the FP32 model) copied atomically with the decision in
its metadata, ``extra["deployment"]`` — runtime, precision, options, the accuracy and latency
measured, the budget, the FP32 baseline, date and machine — which `Predictor(path)` reads."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgekit.optimize.search import SearchResult
from edgekit.optimize.select import Entry, best_fp32, speedup


def deployment_record(result: SearchResult, chosen: Entry, variant_options: dict[str, Any]) -> dict[str, Any]:
    from edgekit import __version__
    from edgekit.bench.environment import Environment

    candidate, baseline = chosen.candidate, result.baseline
    basis = best_fp32(result.entries, baseline)
    options = {**candidate.runtime_options(), **variant_options}
    quality = chosen.quality
    base_quality = baseline.quality
    environment = Environment.capture()
    from edgekit.optimize.report import timing_drift

    drift = timing_drift(result)   # a speed-up across a change of the machine's speed is not recorded
    return {
        "runtime": candidate.runtime, "precision": candidate.precision, "variant": candidate.variant,
        "options": {k: v for k, v in options.items() if v is not None}, "batch": candidate.batch,
        "scenario": candidate.scenario,
        "excluded_layers": list(candidate.exclude),
        "accuracy": {"metric": quality.metric if quality else "", "value": quality.accuracy if quality else None,
                     "top1_agreement_pct": quality.agreement_top1_pct if quality else None,
                     "drop_pt": chosen.drop, "data": result.data_name},
        "latency": {"ms_per_item": chosen.ms, "p50_ms": (chosen.full or chosen.quick).p50_ms,
                    "speedup_vs_fp32": None if drift else speedup(basis.ms, chosen.ms),
                    "speedup_basis": drift or f"best FP32 measured: {basis.candidate.label}",
                    "speedup_vs_default_fp32": None if drift else speedup(baseline.ms, chosen.ms),
                    "timing": "confirmed" if chosen.full else "latency pass"},
        "budget": {"max_drop_pt": result.config.max_drop},
        "fp32_baseline": {"runtime": baseline.candidate.runtime, "ms_per_item": baseline.ms,
                          "accuracy": base_quality.accuracy if base_quality else None},
        "fp32_best": {"candidate": basis.candidate.label, "ms_per_item": basis.ms},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": environment.cpu, "cpus": environment.cpus, "host": platform.node()},
        "edgekit_version": __version__, "history_run": result.run_id,
    }


def write_winner(result: SearchResult, variant_path: Path, variant_options: dict[str, Any], output: Path) -> Path:
    """Write the chosen file to ``output`` (suffix .xml for an OpenVINO IR, .bin beside it); returns the path."""
    from edgekit.meta import read_meta

    chosen = result.winner or result.baseline
    deployment = deployment_record(result, chosen, variant_options)
    meta = read_meta(variant_path)
    extra = {**meta.extra, "deployment": deployment}
    if variant_path.suffix.lower() == ".xml":
        from edgekit.exporters.metadata import copy_ir_with_metadata

        return copy_ir_with_metadata(variant_path, output.with_suffix(".xml"), meta.with_(extra=extra))
    return _write_onnx(variant_path, output.with_suffix(".onnx"), meta.with_(extra=extra))


def _write_onnx(source: Path, output: Path, meta) -> Path:
    import onnx

    from edgekit.exporters.metadata import set_metadata
    from edgekit.fileio import atomic_path

    model = onnx.load(str(source))
    set_metadata(model, meta)
    with atomic_path(output) as temporary:
        onnx.save(model, str(temporary))
    return output
