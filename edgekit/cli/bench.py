"""`edgekit bench`: latency, throughput, cold start and memory of a model on one runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_numbers, check_outputs, console, handle_errors, parse_options, write_json


def register(app: typer.Typer) -> None:
    app.command("bench")(handle_errors(bench))


def bench(
    model: str = typer.Argument(..., help="An .onnx file, or a zoo name (exported to the cache first)."),
    runtime: str = typer.Option("ort-cpu", "--runtime", "-r", help="Runtime name (see `edgekit runtimes`)."),
    batch: int = typer.Option(1, help="Batch size."),
    threads: Optional[int] = typer.Option(None, help="Inference threads [default: the runtime's]."),
    device: Optional[str] = typer.Option(None, help="Device for runtimes that have several."),
    warmup: int = typer.Option(10, help="Untimed calls before timing."),
    runs: Optional[int] = typer.Option(None, help="Timed calls (alone: exactly this many)."),
    duration: Optional[float] = typer.Option(None, help="Seconds to keep timing (with --runs: both must be met)."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-O", help="Runtime option KEY=VALUE (repeatable)."),
    input_size: Optional[str] = typer.Option(None, help="Input size when exporting a zoo model."),
    weights: Optional[Path] = typer.Option(None, help="state_dict for a zoo model."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the record as JSON."),
    seed: int = typer.Option(0, help="Seed of the random input."),
) -> None:
    """Benchmark MODEL on one runtime; timing wraps only the inference call on prepared inputs.

    Default timing: 10 warm-up calls, then at least 10 timed calls and 2 seconds.
    """
    check_numbers(batch=batch, threads=threads, warmup=warmup, runs=runs, duration=duration, seed=seed)
    check_outputs(json_out, inputs=[model, weights])
    from edgekit.bench import BenchConfig, LoopPlan, benchmark
    from edgekit.exporters.config import parse_input_size
    from edgekit.runtimes import get_runtime
    from edgekit.sources import resolve_model

    # Check everything cheap before a possibly slow export.
    runtime_class = get_runtime(runtime)
    options = {"threads": threads, "device": device, **parse_options(option)}
    runtime_class.make_options(**options)
    runtime_class.ensure_available()
    plan = LoopPlan.from_options(warmup, runs, duration)
    config = BenchConfig(runtime=runtime_class.name, batch=batch, plan=plan, seed=seed, runtime_options=options)
    size = parse_input_size(input_size) if input_size else None
    path = resolve_model(model, batch=batch, input_size=size, weights=weights)
    record = benchmark(path, config)
    print_record(record)
    if json_out:
        write_json(json_out, record.to_dict())


def print_record(record) -> None:
    """A rich table of one BenchRecord."""
    from rich.table import Table

    lat = record.latency
    table = Table(title=f"{record.model} on {record.runtime} {record.runtime_version} — {record.device}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("precision / batch", f"{record.precision} / {record.batch}"),
        ("inputs", ", ".join(f"{k} {tuple(v)}" for k, v in record.inputs.items())),
        ("latency p50 / p90 / p99", f"{lat.p50_ms:.3f} / {lat.p90_ms:.3f} / {lat.p99_ms:.3f} ms"),
        ("latency min / mean ± std / max", f"{lat.min_ms:.3f} / {lat.mean_ms:.3f} ± {lat.std_ms:.3f} / {lat.max_ms:.3f} ms"),
        ("timed calls", str(lat.count)),
        ("throughput", f"{record.throughput_items_s:.1f} items/s"),
        ("cold start (load + first run)", f"{record.cold_start.load_ms:.1f} + {record.cold_start.first_inference_ms:.1f} ms"),
        ("peak RSS / increase", f"{record.peak_rss_mb:.0f} / {record.rss_increase_mb:.0f} MB"),
        ("model file", f"{record.model_size_mb:.2f} MB"),
    ]
    rows += [(f"{name} (per call)", f"{value:.3f} ms") for name, value in record.breakdown_ms.items()]
    for name, value in rows:
        table.add_row(name, value)
    console().print(table)
