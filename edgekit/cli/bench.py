"""`edgekit bench`: latency, throughput, cold start and memory of a model on one runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_numbers, check_outputs, console, handle_errors, parse_options, write_json
from edgekit.cli.source_options import INPUTS, META, META_FILE, WEIGHTS, source_options
from edgekit.errors import BadInputError


def register(app: typer.Typer) -> None:
    app.command("bench")(handle_errors(bench))


def bench(
    model: Optional[list[str]] = typer.Argument(None, help=".onnx files, zoo names or torch sources (file.py:factory, "
                                                "TorchScript, .pt2; exported to the cache first); several make a "
                                                "matrix."),
    runtime: Optional[str] = typer.Option(None, "--runtime", "-r", help="Runtime name, a comma list, or 'all' (a "
                                          "matrix) \\[default: ort-cpu]."),
    batch: str = typer.Option("1", help="Batch size (a comma list makes a matrix: 1,8)."),
    threads: Optional[str] = typer.Option(None, help="Inference threads \\[default: the runtime's]; a list: 1,2."),
    device: Optional[str] = typer.Option(None, help="Device for runtimes that have several."),
    warmup: int = typer.Option(10, help="Untimed calls before timing."),
    runs: Optional[int] = typer.Option(None, help="Timed calls (alone: exactly this many)."),
    duration: Optional[float] = typer.Option(None, help="Seconds to keep timing (with --runs: both must be met)."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-O", help="Runtime option KEY=VALUE (repeatable)."),
    input_size: Optional[str] = typer.Option(None, help="Input size when exporting a zoo model."),
    weights: Optional[Path] = WEIGHTS,
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the record as JSON."),
    seed: int = typer.Option(0, help="Seed of the random input."),
    input_spec: Optional[list[str]] = INPUTS,
    meta_pair: Optional[list[str]] = META,
    meta_file: Optional[Path] = META_FILE,
    data_loader: Optional[str] = typer.Option(None, "--data-loader", help="file.py:function yielding dicts of "
                                              "input name → array (the first batch is timed)."),
    load_inputs: Optional[Path] = typer.Option(None, "--load-inputs", help=".npz of inputs to time (first batch)."),
    images: Optional[list[Path]] = typer.Option(None, "--images", help="Also time the whole Predictor path "
                                                "(pre/inference/post) on these images or folders."),
    video: Optional[Path] = typer.Option(None, "--video", help="Also time the whole Predictor path "
                                         "on this video's frames."),
    precision: Optional[str] = typer.Option(None, help="Matrix: fp32,fp16,bf16,int8 (variants built or taken "
                                            "from the cache) \\[default: fp32]."),
    scenario: Optional[str] = typer.Option(None, help="Matrix: single-stream,multi-stream,offline "
                                           "\\[default: single-stream]."),
    suite: Optional[Path] = typer.Option(None, help="Matrix: a suite YAML (benchmarks/suites/ci.yaml)."),
    rounds: int = typer.Option(3, help="Matrix: timing rounds per cell (the regression gate's noise)."),
    db: Optional[str] = typer.Option(None, help="Matrix: history store URL \\[default: SQLite in the user data dir]."),
    force: bool = typer.Option(False, "--force", help="Matrix: measure every cell again (else resume the last run)."),
    cluster: Optional[str] = typer.Option(None, help="Matrix on the device lab: the Ray head's HOST:PORT; --device "
                                          "then names the lab device (nodes advertise edgekit-device:NAME)."),
) -> None:
    """Benchmark MODEL on one runtime; timing wraps only the inference call on prepared inputs.

    Default timing: 10 warm-up calls, then at least 10 timed calls and 2 seconds. Several models,
    runtimes ('all', 'a,b'), precisions, batches, threads or scenarios, or --suite, run the matrix:
    every combination, each stored in the history as it finishes (see `edgekit report`). With
    --images or --video, the whole Predictor pipeline on those frames is timed too, per stage.
    """
    from edgekit.cli.matrix import int_list, is_matrix, split_list

    models = list(model or [])
    batches, thread_counts = int_list(batch, "batch", [1]), int_list(threads, "threads", [None])   # parsed once
    parsed = {"precision": tuple(split_list(precision, "precision") or ["fp32"]), "batch": tuple(batches),
              "threads": tuple(thread_counts), "scenario": tuple(split_list(scenario, "scenario") or ["single-stream"])}
    check_numbers(warmup=warmup, runs=runs, duration=duration, seed=seed, rounds=rounds)
    for value in batches:
        check_numbers(batch=value)
    for value in thread_counts:
        check_numbers(threads=value)
    check_outputs(json_out, inputs=[*models, weights, load_inputs, meta_file, *(images or []), video])
    lists = {"precision": precision, "batch": batch, "threads": threads, "scenario": scenario}
    if (is_matrix(models, runtime or "ort-cpu", lists, suite) or db is not None or force or rounds != 3
            or cluster is not None):
        one_model_only = [name for name, value in (("--data-loader", data_loader), ("--load-inputs", load_inputs),
                          ("--images", images), ("--video", video)) if value]
        if one_model_only:
            raise BadInputError(f"{', '.join(one_model_only)}: for one model on one runtime, not for a matrix")
        changes = source_options(weights, input_spec, meta_pair, meta_file).meta_changes
        if (weights or input_spec or changes) and (suite is not None or len(models) != 1):
            raise BadInputError("--weights, --input and --meta in a matrix are for one torch source; a suite gives "
                                "each torch source its own (a model mapping: model, weights, inputs, meta)")
        user = (weights, tuple(input_spec or ()), changes)
        lab = (cluster, device) if cluster is not None else None   # with --cluster, --device is the lab device
        options = [*(option or []), *([f"device={device}"] if device and lab is None else [])]
        _matrix(models, runtime, lists, parsed, suite, options, input_size, (warmup, runs, duration, rounds, seed),
                (db, force, json_out, lab), user)
        return
    if len(models) != 1:
        raise BadInputError("give a model (an .onnx file, a zoo name or a torch source), or --suite FILE")
    from edgekit.bench.pipeline import frames_for

    given = source_options(weights, input_spec, meta_pair, meta_file)
    frames = frames_for(images, video)  # read (and checked) before any export or timing
    _one(models[0], runtime or "ort-cpu", batches[0], thread_counts[0], device, (warmup, runs, duration), option,
         input_size, given, json_out, seed, (data_loader, load_inputs), frames)


def _one(model, runtime, batch_size, thread_count, device, timing, option, input_size, given, json_out, seed,
         user_inputs, frames) -> None:
    """One model on one runtime: the record's own table (and the whole pipeline on ``frames``)."""
    from edgekit.bench import BenchConfig, LoopPlan, benchmark
    from edgekit.exporters.config import parse_input_size
    from edgekit.runtimes import get_runtime

    # Check everything cheap before a possibly slow export.
    runtime_class = get_runtime(runtime)
    options = {"threads": thread_count, "device": device, **parse_options(option)}
    runtime_class.make_options(**options)
    runtime_class.ensure_available()
    plan = LoopPlan.from_options(*timing)
    config = BenchConfig(runtime=runtime_class.name, batch=batch_size, plan=plan, seed=seed, runtime_options=options)
    size = parse_input_size(input_size) if input_size else None
    from edgekit.inputs.specs import sample_feeds
    from edgekit.inputs.user_feeds import first_batch

    data_loader, load_inputs = user_inputs
    path = given.resolve(model, batch=batch_size, input_size=size)
    feeds = first_batch(path, data_loader, load_inputs) or (sample_feeds(given.specs, seed) if given.specs else None)
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


def _matrix(models, runtime, lists, parsed, suite, option, input_size, timing_options, where, user=()) -> None:
    """The matrix path: a suite file, or the product of the command line's lists (``parsed``);
    ``where``: (store URL, force, --json, lab)."""
    from edgekit.bench import LoopPlan
    from edgekit.cli.matrix import MatrixRequest, run_and_show, spec_from_request
    from edgekit.exporters.config import parse_input_size
    from edgekit.matrix.cells import Evaluation, Timing

    warmup, runs, duration, rounds, seed = timing_options
    db, force, json_out, lab = where
    if suite is not None:
        from edgekit.matrix.suite import load_suite

        if models or runtime is not None or any(v is not None for k, v in lists.items() if k != "batch") \
                or lists["batch"] != "1":
            raise BadInputError("--suite defines the models and lists; give either a suite or models and options")
        given = [name for name, value in (("--runs", runs), ("--duration", duration), ("--option", option),
                                          ("--input-size", input_size)) if value]
        given += ["--warmup"] * (warmup != 10) + ["--rounds"] * (rounds != 3) + ["--seed"] * (seed != 0)
        if given:
            raise BadInputError(f"{', '.join(given)}: a suite sets these itself "
                                "(its timing, options and input_size keys)")
        spec = load_suite(suite)
    else:
        if not models:
            raise BadInputError("give one or more models (an .onnx file, a zoo name or a torch source), "
                                "or --suite FILE")
        if rounds < 1:
            raise BadInputError(f"--rounds must be at least 1, got {rounds}")
        plan = LoopPlan.from_options(warmup, runs, duration)
        timing = Timing(plan.warmup, plan.min_runs, plan.min_duration_s, plan.max_runs, rounds)
        size = parse_input_size(input_size) if input_size else None
        spec = spec_from_request(MatrixRequest(
            tuple(models), runtime or "ort-cpu", parsed["precision"], parsed["batch"], parsed["threads"],
            parsed["scenario"], parse_options(option), size, timing, Evaluation(seed=seed), user))
    if lab is not None:
        from edgekit.cli.lab import run_on_lab

        run_on_lab(spec, db, force, json_out, *lab)
        return
    run_and_show(spec, db, force, json_out)


def print_record(record) -> None:
    """A rich table of one BenchRecord; names from the model are shown as typed, never as markup."""
    from rich.markup import escape
    from rich.table import Table

    lat = record.latency
    table = Table(title=escape(f"{record.model} on {record.runtime} {record.runtime_version} — {record.device}"))
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("precision / batch", f"{record.precision} / {record.batch}"),
        ("inputs", ", ".join(f"{k} {tuple(v)}" for k, v in record.inputs.items())),
        ("latency p50 / p90 / p99", f"{lat.p50_ms:.3f} / {lat.p90_ms:.3f} / {lat.p99_ms:.3f} ms"),
        ("latency min / mean ± std / max",
         f"{lat.min_ms:.3f} / {lat.mean_ms:.3f} ± {lat.std_ms:.3f} / {lat.max_ms:.3f} ms"),
        ("timed calls", str(lat.count)),
        ("throughput (batch / p50)", f"{record.throughput_items_s:.1f} items/s"),
        ("threads (as used)", str(record.runtime_options.get("threads_used", "-"))),
        ("cold start (load + first run)",
         f"{record.cold_start.load_ms:.1f} + {record.cold_start.first_inference_ms:.1f} ms"),
        ("peak RSS / increase", f"{record.peak_rss_mb:.0f} / {record.rss_increase_mb:.0f} MB"),
        ("model file", f"{record.model_size_mb:.2f} MB"),
    ]
    rows += [(f"{name} (per call)", f"{value:.3f} ms") for name, value in record.breakdown_ms.items()]
    for name, value in rows:
        table.add_row(escape(name), escape(value))
    console().print(table)
