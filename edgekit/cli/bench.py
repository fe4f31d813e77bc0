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
    input_spec: Optional[list[str]] = typer.Option(None, "--input", help="User model input name:1x3x224x224[:float32]."),
    data_loader: Optional[str] = typer.Option(None, "--data-loader", help="file.py:function yielding dicts of "
                                              "input name → array (the first batch is timed)."),
    load_inputs: Optional[Path] = typer.Option(None, "--load-inputs", help=".npz of inputs to time (first batch)."),
    images: Optional[list[Path]] = typer.Option(None, "--images", help="Also time the whole Predictor path (pre/inference/post) on these images or folders."),
    video: Optional[Path] = typer.Option(None, "--video", help="Also time the whole Predictor path on this video's frames."),
) -> None:
    """Benchmark MODEL on one runtime; timing wraps only the inference call on prepared inputs.

    Default timing: 10 warm-up calls, then at least 10 timed calls and 2 seconds. With
    --images or --video, the whole pipeline on those frames is timed too, per stage.
    """
    check_numbers(batch=batch, threads=threads, warmup=warmup, runs=runs, duration=duration, seed=seed)
    check_outputs(json_out, inputs=[model, weights, images, video])
    from edgekit.bench.pipeline import frames_for

    frames = frames_for(images, video)  # read (and checked) before any export or timing
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
    from edgekit.inputs.specs import parse_input_specs
    from edgekit.inputs.user_feeds import first_batch

    from edgekit.inputs.specs import sample_feeds

    specs = parse_input_specs(input_spec)
    path = resolve_model(model, batch=batch, input_size=size, weights=weights, inputs=specs)
    feeds = first_batch(path, data_loader, load_inputs) or (sample_feeds(specs, seed) if specs else None)
    record = benchmark(path, config, feeds=feeds)
    print_record(record)
    data = record.to_dict()
    if frames is not None:
        from edgekit.bench.pipeline import pipeline_benchmark
        from edgekit.cli.pipeline_table import print_pipeline

        pipeline = pipeline_benchmark(path, frames, runtime_class.name, plan, options)
        print_pipeline(pipeline, record.latency.p50_ms)
        data["pipeline"] = pipeline.to_dict()
    if json_out:
        write_json(json_out, data)


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
