"""`edgekit eval`: accuracy of an ONNX model on a dataset, on one or every runtime, beside torch."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_numbers, check_outputs, console, handle_errors, parse_options, write_json
from edgekit.cli.source_options import INPUTS, META, META_FILE, WEIGHTS, source_options


def register(app: typer.Typer) -> None:
    app.command("eval")(handle_errors(eval_command))


def eval_command(
    model: str = typer.Argument(..., help="An .onnx model with edgekit metadata (task, preprocessing, labels), a zoo "
                                          "name, file.py:factory, package.module:factory, TorchScript or .pt2 "
                                          "(exported to the cache; give what it lacks with --meta)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="digits, shapes, shapes-masks, "
                                       "glyph-identities, digits-identities, an image folder (a folder per class "
                                       "or, for an embedder, per identity) or a COCO .json "
                                       "\\[default: the model's training dataset]."),
    runtime: str = typer.Option("ort-cpu", "--runtime", "-r", help="A runtime, a comma list, "
                                "or 'all' (every available FP32 runtime)."),
    split: Optional[str] = typer.Option(None, help="train, val, test or all (every image) \\[default: all for your "
                                        "own folder or COCO file; test for digits, shapes or the data the "
                                        "model was trained on]."),
    seed: Optional[int] = typer.Option(None, help="Split seed "
                                       "\\[default: the one the model was trained with, else 0]."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="Images per inference call "
                                   "(fixed-batch models use theirs)."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-O", help="Runtime option KEY=VALUE (repeatable)."),
    torch_reference: Optional[bool] = typer.Option(
        None, "--torch/--no-torch",
        help="Also evaluate the source torch checkpoint \\[default: when it is known and torch is installed; "
             "--torch: required, an error if it cannot be]."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the records as JSON."),
    weights: Optional[Path] = WEIGHTS,
    input_spec: Optional[list[str]] = INPUTS,
    meta_pair: Optional[list[str]] = META,
    meta_file: Optional[Path] = META_FILE,
) -> None:
    """Top-1 (top-5 with over 5 classes), per-class recall and confusion matrix (classification), mAP
    (detection), mIoU and pixel accuracy (segmentation) or verification AUC, TAR at FAR 1 % and top-1
    retrieval (embeddings) of MODEL on each runtime, on the same images.

    A torch source is exported first (dynamic batch) and its own module gives the torch figure.
    """
    check_numbers(seed=seed, batch_size=batch_size)
    check_outputs(json_out, inputs=[model, data, weights, meta_file])
    given = source_options(weights, input_spec, meta_pair, meta_file)
    from edgekit.evaluate.across_runtimes import compare_runtimes

    data, split = _data_and_split(model, data, split)
    result = compare_runtimes(model, runtime, data, split, seed, batch_size, parse_options(option), torch_reference,
                              weights=given.weights, inputs=given.specs, meta_changes=given.meta_changes)
    show(result)
    if json_out:
        write_json(json_out, result.to_dict())


def _data_and_split(model: str, data: str | None, split: str | None) -> tuple[str | None, str]:
    """The dataset (the model's recorded spelling when ``data`` names the same folder, so its split seed
    applies) and the split: the one asked for, else test of a named or training dataset, else all."""
    from edgekit.datasets.loader import default_split, same_dataset

    recorded = _recorded_dataset(model)
    if data is not None and recorded and same_dataset(data, recorded):
        data = recorded
    return data, split if split is not None else default_split(data if data is not None else recorded, recorded)


def _recorded_dataset(model: str) -> str | None:
    """The dataset a model file's metadata says it was trained on (None for other sources, or a file
    that cannot be read: evaluation then says why)."""
    from edgekit.errors import EdgekitError
    from edgekit.meta import ENGINE_SUFFIXES, read_meta
    from edgekit.meta_records import source_of

    path = Path(model)
    if path.suffix.lower() not in (".onnx", ".xml", *ENGINE_SUFFIXES) or not path.is_file():
        return None
    try:
        return source_of(read_meta(path)).dataset
    except (EdgekitError, OSError):
        return None


def show(result) -> None:
    from rich.table import Table

    first = result.records[0]
    names = [k for k in first.metrics if k != "count"]
    images = (f"all {first.count} images" if result.split == "all"
              else f"{result.split} split, seed {result.seed}, {first.count} images")
    table = Table(title=f"{result.model} on {result.dataset} ({images})")
    table.add_column("runtime")
    for name in names:
        table.add_column(name, justify="right")
    primary = first.primary_metric
    if result.reference:
        table.add_column(f"Δ{primary} vs torch", justify="right")
    table.add_column("seconds", justify="right")
    for record in result.records:
        delta = [f"{record.metrics[primary] - result.reference[primary]:+.2f}"] if result.reference else []
        table.add_row(f"{record.runtime} ({record.precision})", *(f"{record.metrics[n]:.2f}" for n in names),
                      *delta, f"{record.seconds:.2f}")
    if result.reference:
        figures = (f"{result.reference.get(n, float('nan')):.2f}" for n in names)
        table.add_row(f"torch ({result.reference_kind})", *figures, "", "")
    out = console()
    out.print(table)
    show_per_class(out, result.records)
    if not result.reference:
        out.print(f"torch reference: none ({result.reference_note})")
    for name, reason in result.skipped.items():
        out.print(f"skipped {name}: {reason}")


MAX_CLASS_ROWS = 30      # more classes: the worst ones in the terminal, every one in --json
MAX_CONFUSION_SIDE = 12  # more classes: the confusion matrix only in --json


def show_per_class(out, records) -> None:
    """Per-class recall of each runtime, and each distinct confusion matrix (classification records)."""
    from rich.table import Table

    with_classes = [r for r in records if r.details.get("per_class")]
    if not with_classes:
        return
    rows = _shown_rows(with_classes[0].details["per_class"])
    several = len(with_classes) > 1
    table = Table(title="recall per class")
    table.add_column("class")
    table.add_column("images", justify="right")
    for record in with_classes:
        suffix = f" {record.runtime}" if several else ""
        table.add_column(f"correct{suffix}", justify="right")
        table.add_column(f"recall %{suffix}", justify="right")
    for row in rows:
        cells = (_recall_cells(r.details["per_class"], row["index"]) for r in with_classes)
        table.add_row(row["label"], str(row["images"]), *(cell for pair in cells for cell in pair))
    out.print(table)
    total = len(with_classes[0].details["per_class"])
    if len(rows) < total:
        out.print(f"recall per class: the {len(rows)} lowest of {total} classes shown, all in --json")
    _show_confusion(out, with_classes)


def _shown_rows(rows: list[dict]) -> list[dict]:
    """Every class, or the MAX_CLASS_ROWS of lowest recall (classes without images last)."""
    if len(rows) <= MAX_CLASS_ROWS:
        return rows
    return sorted(rows, key=lambda row: (row["recall"] is None, row["recall"] or 0.0))[:MAX_CLASS_ROWS]


def _recall_cells(rows: list[dict], index: int) -> tuple[str, str]:
    """(correct, recall %) of class ``index`` in one runtime's rows (a class it never predicted nor saw: none)."""
    row = next((r for r in rows if r["index"] == index), {"correct": 0, "recall": None})
    return str(row["correct"]), "—" if row["recall"] is None else f"{row['recall']:.2f}"


def _show_confusion(out, records) -> None:
    from rich.table import Table

    groups: dict[str, list] = {}
    for record in records:
        groups.setdefault(repr(record.details["confusion"]), []).append(record)
    for group in groups.values():
        confusion = group[0].details["confusion"]
        labels, runtimes = confusion["labels"], ", ".join(r.runtime for r in group)
        if len(labels) > MAX_CONFUSION_SIDE:
            out.print(f"confusion matrix ({runtimes}): {len(labels)}×{len(labels)}, in --json")
            continue
        table = Table(title=f"confusion matrix ({runtimes})")
        table.add_column("true \\ predicted")
        for label in labels:
            table.add_column(label, justify="right")
        for label, row in zip(labels, confusion["matrix"]):
            table.add_row(label, *(str(n) for n in row))
        out.print(table)
