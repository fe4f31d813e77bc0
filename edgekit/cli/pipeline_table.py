"""Rendering of the pipeline benchmark (`edgekit bench --images/--video`) for the terminal."""

from __future__ import annotations

from edgekit.bench.pipeline import PipelineRecord
from edgekit.cli.common import console


def print_pipeline(record: PipelineRecord, inference_only_p50_ms: float) -> None:
    """A rich table: p50/p90/p99 of each stage beside the inference-only p50 (names shown as typed)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"{record.model} on {record.runtime}: the whole pipeline, {record.frames} calls on "
                               f"{'x'.join(str(d) for d in record.frame_shape)} frames from {record.source}"))
    for column in ("stage", "p50 ms", "p90 ms", "p99 ms", "mean ms"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for name, stats in (("preprocess", record.preprocess), ("inference", record.inference),
                        ("postprocess", record.postprocess), ("end to end", record.end_to_end)):
        table.add_row(name, f"{stats.p50_ms:.3f}", f"{stats.p90_ms:.3f}", f"{stats.p99_ms:.3f}", f"{stats.mean_ms:.3f}")
    table.add_row("inference only (prepared tensor)", f"{inference_only_p50_ms:.3f}", "", "", "")
    table.add_row("end to end ÷ inference only", f"{record.end_to_end.p50_ms / inference_only_p50_ms:.2f}×", "", "", "")
    table.add_row("throughput: one call after another", f"{record.sequential_fps:.1f} FPS", "", "", "")
    table.add_row("throughput: pipelined (stream)", f"{record.pipelined_fps:.1f} FPS", "", "", "")
    console().print(table)
