"""`edgekit profile`: per-layer time of a model on a runtime, or two side by side (two runtimes, two files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from edgekit.cli.common import check_numbers, check_outputs, console, handle_errors, parse_options, write_json


def register(app: typer.Typer) -> None:
    app.command("profile")(handle_errors(profile))


def profile(
    model: str = typer.Argument(..., help="An .onnx file (or OpenVINO IR, TensorRT engine), or a zoo name."),
    other: Optional[str] = typer.Argument(None, help="A second model file (e.g. its INT8 version): both profiled "
                                          "on the runtime and shown layer by layer."),
    runtime: str = typer.Option("ort-cpu", "--runtime", "-r", help="Runtime, or two as A,B to compare them "
                                "layer by layer."),
    threads: Optional[int] = typer.Option(None, help="Inference threads \\[default: the runtime's]."),
    runs: int = typer.Option(20, help="Profiled runs (each paired with a plain run for the overhead)."),
    warmup: int = typer.Option(5, help="Untimed calls before the profiled runs."),
    batch: int = typer.Option(1, help="Batch size of the random inputs."),
    seed: int = typer.Option(0, help="Seed of the random inputs."),
    inputs: Optional[Path] = typer.Option(None, "--inputs", "--load-inputs", help=".npz of inputs (first batch)."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-O", help="Runtime option KEY=VALUE, or "
                                               "RUNTIME.KEY=VALUE for one of two runtimes (repeatable)."),
    top: int = typer.Option(20, help="Rows of the layer table: the slowest N (0: every layer, in run order)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the profile(s) as JSON (every layer)."),
) -> None:
    """Time every layer of MODEL with the runtime's own profiler (ONNX Runtime's trace, OpenVINO's counters,
    TensorRT's IProfiler), mapped back to ONNX node names: median per layer over the profiled runs, its
    share of the whole, op types, and layers that ran in another precision than asked or on a slow
    reference kernel. Profiled runs are not `bench` figures: the profiler's overhead is shown beside.
    """
    from edgekit.errors import BadInputError
    from edgekit.profile import ProfilePlan, profile_model, side_by_side
    from edgekit.sources import resolve_model

    check_numbers(threads=threads, batch=batch, seed=seed, warmup=warmup, runs=runs)
    if top < 0:
        raise BadInputError(f"--top must be 0 (every layer) or more, got {top}")
    check_outputs(json_out, inputs=[model, other, inputs])
    plan = ProfilePlan(warmup, runs)
    names = [name.strip() for name in runtime.split(",") if name.strip()]
    if not names or len(names) > 2 or (other is not None and len(names) > 1):
        raise BadInputError("profile takes one runtime, two runtimes as A,B (one model), or two models on one "
                            f"runtime; got -r {runtime}" + (" with two models" if other is not None else ""))
    options = runtime_options(option, names, threads)
    models = [Path(resolve_model(model, batch=batch)), *([Path(other)] if other is not None else [])]
    pairs = [(m, names[0]) for m in models] if len(models) == 2 else [(models[0], n) for n in names]
    profiles = [profile_model(path, name, options[name], plan, inputs, seed, batch) for path, name in pairs]
    for record in profiles:
        print_profile(record, top)
    rows = side_by_side(*profiles) if len(profiles) == 2 else None
    if rows is not None:
        print_side_by_side(profiles, rows)
    if json_out:
        write_json(json_out, _json(profiles, rows))


def runtime_options(pairs: list[str] | None, names: list[str], threads: int | None) -> dict[str, dict[str, Any]]:
    """KEY=VALUE for every runtime, RUNTIME.KEY=VALUE for one; --threads for all."""
    from edgekit.errors import BadInputError
    from edgekit.runtimes import get_runtime

    options: dict[str, dict[str, Any]] = {name: ({"threads": threads} if threads else {}) for name in names}
    canonical = {get_runtime(name).name: name for name in names}
    for pair in pairs or []:
        key = pair.partition("=")[0]
        target, dot, _ = key.partition(".")
        if dot and target.strip() not in options and target.strip() not in canonical:
            raise BadInputError(f"option {pair}: runtime '{target}' is not profiled (profiling {', '.join(names)})")
        chosen = [canonical.get(target.strip(), target.strip())] if dot else names
        for name in chosen:
            options[name].update(parse_options([pair.partition(".")[2] if dot else pair]))
    return options


def _json(profiles, rows) -> dict[str, Any]:
    import dataclasses

    if rows is None:
        return profiles[0].to_dict()
    return {"profiles": [p.to_dict() for p in profiles],
            "side_by_side": [{**dataclasses.asdict(r), "ratio": r.ratio} for r in rows]}


def print_profile(record, top: int) -> None:
    """The layer table (slowest ``top`` or all in order), op types, and the lines that explain the figures."""
    from rich.markup import escape
    from rich.table import Table

    layers = sorted(record.layers, key=lambda x: -x.median_ms)[:top] if top else list(record.layers)
    table = Table(title=escape(f"{record.model} on {record.runtime} {record.version} ({record.device}) — "
                               f"median of {record.runs} profiled runs, asked {record.asked}"))
    for column in ("layer", "ONNX nodes", "op", "kernel", "precision", "ms", "share", "flags"):
        table.add_column(column, justify="right" if column in ("ms", "share") else "left")
    for layer in layers:
        table.add_row(escape(layer.layer), escape(_nodes(layer.onnx_nodes)), escape(layer.op_type),
                      escape(layer.kernel), layer.precision, f"{layer.median_ms:.3f}", f"{layer.share:.1%}",
                      f"[yellow]{escape('; '.join(layer.flags))}[/]" if layer.flags else "")
    out = console()
    out.print(table)
    hidden = len(record.layers) - len(layers)
    if hidden:
        rest = sum(x.median_ms for x in record.layers) - sum(x.median_ms for x in layers)
        out.print(f"{hidden} faster layers not shown: {rest:.3f} ms together (--top 0 shows all)")
    out.print("by op type: " + ", ".join(f"{escape(r.op_type)} {r.ms:.3f} ms ({r.share:.0%}, {r.layers})"
                                         for r in record.by_op()))
    for line in summary_lines(record):
        out.print(escape(line))


def summary_lines(record) -> list[str]:
    """Layers vs the whole, the overhead, flagged layers, unmapped nodes, the runtime's notes."""
    lines = [f"layers explain {record.coverage:.0%} of the whole, run by run (median); per-layer medians sum to "
             f"{record.layer_sum_ms:.3f} ms of the median whole {record.total_ms:.3f} ms ({record.total_source}): "
             f"{record.outside_ms:.3f} ms outside the layers (the runtime's own work between layers, input and "
             "output handling, the profiler's bookkeeping)"]
    if record.overhead is not None:
        lines.append(f"profiler overhead: profiled calls {record.wall_ms:.3f} ms vs plain p50 {record.plain_ms:.3f} "
                     f"ms (x{record.overhead:.2f}, median of paired per-run ratios); profiled runs are never bench "
                     "figures")
    lines += disturbed_lines(record)
    lines += [f"flagged: {layer.layer}: {'; '.join(layer.flags)}" for layer in record.flagged]
    lines.append(f"mapping {record.mapping}")
    if record.unprofiled:
        shown = ", ".join(record.unprofiled[:8]) + (" …" if len(record.unprofiled) > 8 else "")
        lines.append(f"{len(record.unprofiled)} ONNX node(s) have no time of their own (fused or folded by the "
                     f"runtime, or not run): {shown}")
    return lines + list(record.notes)


def disturbed_lines(record) -> list[str]:
    """Runs whose calling thread was switched out: left out, or (too few others) kept and said so."""
    if not record.preempted:
        return []
    if record.timed_runs > record.runs:
        return [f"{record.preempted} profiled run(s) left out: the calling thread was switched out during them "
                "(other work on the machine: a stall of the scheduler's, not the model's)"]
    return [f"{record.preempted} of {record.timed_runs} profiled runs had the calling thread switched out (other "
            "work on the machine), too many to leave out: the whole may hold stalls; more --runs or a quieter "
            "machine give cleaner figures"]


def print_side_by_side(profiles, rows) -> None:
    from rich.markup import escape
    from rich.table import Table

    a, b = profiles
    label_a, label_b = _label(a, b), _label(b, a)
    table = Table(title=escape(f"layer by layer: {label_a} vs {label_b}"))
    for column in ("ONNX nodes", "op", "A ms", "B ms", "B/A", "A precision", "B precision"):
        table.add_column(column, justify="left" if column in ("ONNX nodes", "op") or "precision" in column else "right")
    for row in rows:
        nodes = _nodes(row.nodes) or f"({', '.join(row.a_layers or row.b_layers)}: inserted by the runtime)"
        table.add_row(escape(nodes), escape(row.op_type), f"{row.a_ms:.3f}" if row.a_layers else "-",
                      f"{row.b_ms:.3f}" if row.b_layers else "-", f"{row.ratio:.2f}" if row.ratio else "-",
                      row.a_precision, row.b_precision)
    out = console()
    out.print(table)
    out.print(escape(f"A: {label_a}, {a.total_ms:.3f} ms whole; B: {label_b}, {b.total_ms:.3f} ms whole "
                     f"(B/A {b.total_ms / a.total_ms:.2f})"))


def _label(one, other) -> str:
    return Path(one.model_path).name if one.runtime == other.runtime else one.runtime


def _nodes(nodes) -> str:
    return ", ".join(nodes[:3]) + (f" +{len(nodes) - 3}" if len(nodes) > 3 else "")


def compare_layers(model: str, candidate: str | None, runtimes: list[str], options: dict, io, tolerance: tuple,
                   seed: int, keep: int, bisect: bool, json_out: Path | None) -> None:
    """`compare --layers`: the layer-wise diff, its table and verdict (exit 1 when a layer diverges)."""
    from edgekit.compare_runs import Judging, check_request
    from edgekit.errors import BadInputError, CheckFailedError
    from edgekit.profile.layers_diff import LayerRule, layer_diff, sides_for

    atol, rtol, min_cosine = tolerance
    unsupported = [flag for flag, value in (("--load-outputs", io.load_outputs), ("--save-outputs", io.save_outputs),
                                            ("--save-inputs", io.save_inputs), ("--input", io.specs)) if value]
    if unsupported:
        raise BadInputError(f"{', '.join(unsupported)}: not with --layers (it compares two sides' tensors on "
                            "--inputs, --images, --data or random inputs)")
    if keep < 0:
        raise BadInputError(f"--keep must be 0 or more, got {keep}")
    check_request(io, Judging(atol, rtol, 0.999 if min_cosine is None else min_cosine))
    rule = LayerRule(atol, rtol, 0.999 if min_cosine is None else min_cosine,
                     0.99 if min_cosine is None else min_cosine)
    record = layer_diff(*sides_for(model, candidate, runtimes, options), io, rule, seed, keep, bisect)
    print_layer_diff(record)
    if json_out:
        write_json(json_out, record.to_dict())
    if not record.passed:
        first = record.first_divergent
        raise CheckFailedError(f"layers part at {first.node or first.tensor} ({first.tensor}): {record.rule} crossed")


def print_layer_diff(record) -> None:
    """One row per compared layer in topological order, then the first divergence and what to keep in float."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"{record.candidate} vs {record.reference} — layer by layer, {record.input_source}"))
    for column in ("layer (tensor)", "node", "op", "max abs", "max rel", "cosine", "rel err", "added", "result"):
        table.add_column(column, justify="left" if column in ("layer (tensor)", "node", "op", "result") else "right")
    first = record.first_divergent
    for layer in record.layers:
        verdict = "[green]ok[/]" if layer.passed else ("[red]FIRST DIVERGENT[/]" if layer is first or
                                                       layer == first else "[red]diverges[/]")
        table.add_row(escape(layer.tensor), escape(layer.node), escape(layer.op_type), f"{layer.max_abs:.3g}",
                      f"{layer.max_rel:.3g}", f"{layer.cosine:.6f}", f"{layer.error:.3g}", f"{layer.introduced:.3g}",
                      verdict if not layer.problem else f"[red]{escape(layer.problem)}[/]")
    out = console()
    out.print(table)
    for line in layer_diff_lines(record):
        out.print(escape(line))


def layer_diff_lines(record) -> list[str]:
    first = record.first_divergent
    lines = [f"tolerance: {record.rule}; {len(record.layers)} layers compared on {record.batches} batch(es)"
             + (f", {record.not_compared} float tensors with no counterpart" if record.not_compared else "")]
    if record.bisect_steps:
        lines.append(f"bisected in {len(record.bisect_steps)} steps: {'; '.join(record.bisect_steps)}")
    if first is None:
        lines.append("no layer crosses the tolerance: the two sides agree layer by layer")
    else:
        made = f"; made by {first.candidate_node} on the other side" if first.candidate_node != first.node else ""
        lines.append(f"first divergent layer: {first.node or '?'} ({first.op_type}, tensor {first.tensor}{made}): "
                     f"cosine {first.cosine:.6f}, max abs {first.max_abs:.3g}")
    if record.output_shares and len(record.output_shares) > 1:
        lines.append("disagreement removed by making one output exact: " + ", ".join(
            f"{name} {share:.0%}" for name, share in sorted(record.output_shares.items(), key=lambda x: -x[1])))
    if record.keep_in_float:
        lines.append(f"keep in float (first divergent, then the outputs that matter, then the layers adding the most "
                     f"error): {', '.join(record.keep_in_float)}")
    if record.quantize_command:
        lines.append(f"to keep them in float: {record.quantize_command}")
    drift = {side: value for side, value in record.tap_drift.items() if value > 0}
    if drift:
        lines.append("exposing the tensors moved final outputs by at most " + ", ".join(
            f"{value:.3g} ({side})" for side, value in drift.items()) + " (ONNX Runtime leaves exposed Q/DQ unfused)")
    return lines + list(record.notes)
