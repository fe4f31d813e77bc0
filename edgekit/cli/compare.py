"""`edgekit compare`: the same inputs through several runtimes (and torch), or two model files, per-output
differences and a verdict by purpose (tolerance for the same precision, a budget when it differs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from edgekit.cli.common import check_numbers, check_outputs, console, handle_errors, parse_options, write_json
from edgekit.cli.source_options import INPUTS, META, META_FILE, WEIGHTS, source_options
from edgekit.inputs.images import DEFAULT_SAMPLES


def register(app: typer.Typer) -> None:
    app.command("compare")(handle_errors(compare))


def compare(
    model: str = typer.Argument(..., help="An .onnx file, a zoo name or a user torch model (file.py:factory, "
                                          "TorchScript, .pt2): exported first, torch is the reference."),
    candidate: Optional[str] = typer.Argument(None, help="A second model file (e.g. its INT8 or optimized "
                                              "version): both run on each runtime, MODEL is the reference."),
    runtimes: Optional[str] = typer.Option(None, "--runtimes", "-r", help="Comma-separated runtime names "
                                           "\\[default: ort-cpu,openvino; ort-cpu for two models]."),
    inputs: Optional[Path] = typer.Option(None, "--inputs", "--load-inputs",
                                          help=".npz with one array per model input \\[default: random]."),
    images: Optional[Path] = typer.Option(None, "--images", help="A folder of images, prepared by the model's "
                                          "own preprocessing (its metadata)."),
    data: Optional[str] = typer.Option(None, "--data", help="A data set (digits, shapes, a folder of class folders, "
                                       "COCO .json): its test images, prepared by the model's preprocessing."),
    samples: int = typer.Option(DEFAULT_SAMPLES, "--samples", help="Images taken from --images or --data."),
    seed: int = typer.Option(0, help="Seed of the random inputs."),
    batch: int = typer.Option(1, help="Batch size of the random inputs (and of a zoo export)."),
    input_size: Optional[str] = typer.Option(None, help="Input size when exporting a zoo model."),
    weights: Optional[Path] = WEIGHTS,
    atol: float = typer.Option(1e-4, help="Absolute tolerance (the same precision on both sides)."),
    rtol: float = typer.Option(1e-3, help="Relative tolerance (the same precision on both sides)."),
    min_cosine: Optional[float] = typer.Option(None, help="Lowest cosine similarity that passes "
                                               "\\[default: 0.999; 0.99 when the precisions differ]."),
    min_top1: float = typer.Option(98.0, "--min-top1", help="Precisions differ: lowest top-1 agreement (%) of a "
                                   "classifier that passes."),
    min_box_match: float = typer.Option(90.0, "--min-box-match", help="Precisions differ: lowest share (%) of "
                                        "boxes clearly above the threshold a detector must match (IoU --iou, "
                                        "same label)."),
    min_pixels: float = typer.Option(99.0, "--min-pixels", help="Precisions differ: lowest share (%) of mask "
                                     "pixels whose class a segmenter keeps."),
    min_miou: float = typer.Option(0.95, "--min-miou", help="Precisions differ: lowest mIoU of a segmenter's masks "
                                   "against the reference's."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-O",
                                               help="Runtime option RUNTIME.KEY=VALUE, e.g. openvino.precision=bf16."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the record as JSON."),
    input_spec: Optional[list[str]] = INPUTS,
    meta_pair: Optional[list[str]] = META,
    meta_file: Optional[Path] = META_FILE,
    data_loader: Optional[str] = typer.Option(None, "--data-loader", help="file.py:function yielding dicts of "
                                              "input name → array (every batch is compared)."),
    save_inputs: Optional[Path] = typer.Option(None, "--save-inputs", help="Save the inputs used (.npz)."),
    save_outputs: Optional[Path] = typer.Option(None, "--save-outputs", help="Save the reference's outputs (.npz) "
                                                "as golden outputs for a later --load-outputs."),
    load_outputs: Optional[Path] = typer.Option(None, "--load-outputs", help="Golden outputs (.npz) to check every "
                                                "runtime against (exit 1 on mismatch)."),
    iou: float = typer.Option(0.5, "--iou", help="Detectors: IoU at which boxes match."),
    score_tol: Optional[float] = typer.Option(None, "--score-tol", help="Detectors: largest score difference of "
                                              "matched boxes; boxes this near the threshold need not match "
                                              "\\[default: 0.02; 0.05 when the precisions differ]."),
    layers: bool = typer.Option(False, "--layers", help="Layer by layer: every intermediate tensor of both sides "
                                "compared, the first layer that crosses the tolerance named, and the layers to keep "
                                "in float."),
    bisect: bool = typer.Option(False, "--bisect", help="With --layers: find the first divergent layer by halving, "
                                "one exposed tensor at a time (large models; ORT's fusions kept)."),
    keep: int = typer.Option(3, "--keep", help="With --layers: how many layers to name for keeping in float."),
) -> None:
    """Run MODEL on each runtime with the same inputs (or MODEL and CANDIDATE, two model files, on each
    runtime); exit 1 if the candidate does not agree.

    Reference: torch for a zoo name, saved outputs, MODEL against CANDIDATE, else the first runtime.
    The same precision on both sides passes within --atol/--rtol and --min-cosine; when one side is
    INT8/FP16 (metadata or quantization nodes), on top-1 agreement and cosine (classifiers), box match
    (detectors) or cosine, on real inputs only (--images, --data, --inputs). Segmenters are judged by
    their masks (pixels that agree, mIoU), embedders by per-sample cosine, at either precision.
    """
    from edgekit.compare import CompareInputs
    from edgekit.compare import compare as run_compare
    from edgekit.compare_files import Budget
    from edgekit.errors import CheckFailedError
    from edgekit.exporters.config import parse_input_size

    check_numbers(seed=seed, batch=batch, atol=atol, rtol=rtol, min_cosine=min_cosine)
    budget = Budget(min_top1=min_top1 / 100, min_cosine=0.99 if min_cosine is None else min_cosine,
                    min_box_match=min_box_match / 100, score_tol=0.05 if score_tol is None else score_tol,
                    min_pixels=min_pixels / 100, min_miou=min_miou)
    check_outputs(json_out, save_inputs, save_outputs,
                  inputs=[model, candidate, inputs, weights, load_outputs, meta_file])
    from edgekit.fileio import check_distinct

    check_distinct([("--save-inputs", save_inputs), ("--save-outputs", save_outputs), ("--json", json_out)])
    given = source_options(weights, input_spec, meta_pair, meta_file)
    default = "ort-cpu" if candidate is not None else "ort-cpu,openvino"
    names = [name.strip() for name in (runtimes or default).split(",") if name.strip()]
    io = CompareInputs(inputs=inputs, data_loader=data_loader, specs=given.specs, save_inputs=save_inputs,
                       save_outputs=save_outputs, load_outputs=load_outputs, images=images, data=data, samples=samples)
    if layers or bisect:
        from edgekit.cli.profile import compare_layers

        return compare_layers(model, candidate, names, _split_options(option), io, (atol, rtol, min_cosine), seed,
                              keep, bisect, json_out)
    record = run_compare(
        model, names, seed=seed, batch=batch,
        input_size=parse_input_size(input_size) if input_size else None, weights=weights,
        atol=atol, rtol=rtol, min_cosine=0.999 if min_cosine is None else min_cosine,
        runtime_options=_split_options(option), io=io, iou_threshold=iou,
        score_tol=0.02 if score_tol is None else score_tol,
        meta_changes=given.meta_changes, candidate=candidate, budget=budget,
    )
    print_record(record)
    if json_out:
        write_json(json_out, record.to_dict())
    if not record.passed:
        failing = "; ".join(f"{r.runtime}: {r.summary()}" for r in record.results if not r.passed)
        raise CheckFailedError(f"compare failed against {record.reference} — {failing}")


def _split_options(pairs: list[str] | None) -> dict[str, dict[str, Any]]:
    """['openvino.precision=bf16'] → {'openvino': {'precision': 'bf16'}}."""
    from edgekit.errors import BadInputError

    options: dict[str, dict[str, Any]] = {}
    for pair in pairs or []:
        runtime, dot, rest = pair.partition(".")
        if not dot or "=" not in rest or "=" in runtime:
            raise BadInputError(f"compare options look like RUNTIME.KEY=VALUE, got '{pair}'")
        options.setdefault(runtime.strip(), {}).update(parse_options([rest]))
    return options


def print_record(record) -> None:
    """A rich table (one row per runtime × output), the verdict lines and what the inputs were."""
    from rich.markup import escape
    from rich.table import Table

    shapes = ", ".join(f"{name} {tuple(shape)}" for name, shape in record.inputs.items())
    against = f"{record.model} vs {record.reference}" if record.candidate_path else \
        f"{record.model}: runtimes vs {record.reference}"
    table = Table(title=escape(f"{against} — inputs {shapes} {record.input_source}"))
    for column in ("runtime", "output", "max abs", "max rel", "cosine", "top-1", "result"):
        table.add_column(column, justify="left" if column in ("runtime", "output", "result") else "right")
    for result in record.results:
        for output in result.parity.outputs:
            top1 = "-" if output.top1_agreement is None else f"{output.top1_agreement:.1%}"
            table.add_row(f"{result.runtime} {result.version}", escape(output.name), f"{output.max_abs:.3g}",
                          f"{output.max_rel:.3g}", f"{output.cosine:.6f}", top1, _cell(output, result, record))
    out = console()
    out.print(table)
    for result in record.results:
        if result.budget is not None:
            out.print(f"{result.runtime}: {record.precision} — {escape(result.summary())}")
        elif result.boxes is not None:
            out.print(f"{result.runtime} detections vs {escape(record.reference)}: {escape(result.boxes.summary())}")
        elif result.dense is not None:
            out.print(f"{result.runtime} vs {escape(record.reference)}: {escape(result.dense.summary())}")
        if result.budget is None and (result.parity.note or result.parity.nothing_to_compare):
            out.print(f"{result.runtime}: {escape(result.parity.summary())}")
    if record.input_note:
        out.print(f"[yellow]{escape(record.input_note)}[/]")
    verdict = "[green]all runtimes pass[/]" if record.passed else f"[red]failed: {', '.join(record.failed_runtimes)}[/]"
    out.print(f"{_rule(record)} — {verdict}")


def _cell(output, result, record) -> str:
    """The result column: nothing to compare, or the output against the rule that judges it ('-' where
    matched boxes judge a reduced-precision detector)."""
    if output.nothing_to_compare:
        return "[yellow]nothing to compare[/]"
    if result.budget is not None and (result.budget.box_match is not None or result.budget.dense is not None):
        return "-"
    if record.budget is None:
        return "[green]pass[/]" if output.passed else "[red]FAIL[/]"
    budget = record.budget
    within = output.cosine >= budget.min_cosine and (output.top1_agreement is None
                                                     or output.top1_agreement >= budget.min_top1)
    return "[green]within budget[/]" if within else "[red]over budget[/]"


def _rule(record) -> str:
    """The rule the verdict applied: the tolerance, or the budget's figures that judged something."""
    if record.budget is None:
        dense = next((r.dense for r in record.results if r.dense is not None and not r.dense.nothing_to_compare), None)
        if dense is not None:  # segmenters, embedders: their masks or vectors judge
            return (f"masks ≥ {100 * dense.min_pixels:g} % pixels, mIoU ≥ {dense.min_miou:g}" if dense.kind == "masks"
                    else f"embeddings: per-sample cosine ≥ {dense.min_cosine:g}")
        return f"tolerance: atol {record.atol:g}, rtol {record.rtol:g}, cosine ≥ {record.min_cosine:g}"
    budget, verdicts = record.budget, [r.budget for r in record.results if r.budget is not None]
    figures = [text for text, used in (
        (f"top-1 agreement ≥ {budget.min_top1:.0%}", any(v.top1 is not None for v in verdicts)),
        (f"cosine ≥ {budget.min_cosine:g}", any(v.cosine is not None for v in verdicts)),
        (f"box match ≥ {budget.min_box_match:.0%}", any(v.box_match is not None for v in verdicts)),
        (f"masks ≥ {budget.min_pixels:.0%} pixels, mIoU ≥ {budget.min_miou:g}",
         any(getattr(v.dense, "kind", "") == "masks" for v in verdicts))) if used]
    return f"budget ({record.precision}): {', '.join(figures) or 'nothing compared'}"
