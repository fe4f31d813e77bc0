"""`edgekit train RECIPE`: train a reference model, save its checkpoint and its verified ONNX."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_numbers, check_outputs, console, handle_errors, parse_options, write_json


def register(app: typer.Typer) -> None:
    app.command("train")(handle_errors(train))


def train(
    recipe: str = typer.Argument(..., help="Training recipe: lenet5, detector, transfer (needs "
                                          "--transfer-from), segmenter, embedder (`edgekit models`)."),
    data: str = typer.Option(..., "--data", "-d", help="Dataset: digits, shapes, shapes-masks, "
                                "glyph-identities, digits-identities, an image folder, or a COCO .json."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder \\[default: runs/RECIPE]."),
    epochs: Optional[int] = typer.Option(None, help="Maximum epochs \\[default: the recipe's]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Batch size \\[default: the recipe's]."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate \\[default: the recipe's]."),
    optimizer: Optional[str] = typer.Option(None, help="sgd or adam \\[default: the recipe's]."),
    seed: int = typer.Option(0, help="Seed of the data split, initialization, data order and augmentation."),
    transfer_from: Optional[str] = typer.Option(None, "--transfer-from",
                                                help="Backbone: a checkpoint from `edgekit train`, "
                                                "or a zoo model name with --weights."),
    mode: Optional[str] = typer.Option(None, help="Transfer mode: features (new linear head) "
                                       "or finetune (also the last layers)."),
    weights: Optional[Path] = typer.Option(None, help="state_dict for a zoo backbone (--transfer-from MODEL)."),
    classes: Optional[str] = typer.Option(None, help="Digits to keep, e.g. 0-4 or 5,6,7 (digits dataset)."),
    per_class: Optional[int] = typer.Option(None, "--per-class", help="Training (and validation) images per class: "
                                            "a few-shot subset."),
    patience: Optional[int] = typer.Option(None, help="Early stopping: epochs without a better val metric (0: off)."),
    augment: bool = typer.Option(True, "--augment/--no-augment",
                                 help="Random rotation/scale/shift of training images."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-O", help="Recipe option KEY=VALUE (repeatable)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the training result as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train RECIPE on --data; writes OUT/NAME.pt (checkpoint) and OUT/NAME.onnx (verified, with metadata)."""
    check_numbers(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, per_class=per_class, patience=patience)
    check_outputs(json_out, inputs=[transfer_from, weights, data])
    from edgekit.train import RECIPES, TrainConfig

    function = RECIPES.get(recipe)  # unknown names: "did you mean"
    name = RECIPES.canonical(recipe)
    check_json_not_written(json_out, out or Path("runs") / name)
    options = parse_options(option)
    given = {"weights": weights, "classes": classes, "per_class": per_class, "patience": patience,
             "augment": None if augment else False}
    options.update({key: (str(value) if isinstance(value, Path) else value)
                    for key, value in given.items() if value is not None})
    config = TrainConfig(
        data=data, output_dir=out or Path("runs") / name, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,
        optimizer=optimizer.lower() if optimizer else None,
        transfer_from=Path(transfer_from) if transfer_from else None,
        mode=mode, options=options,
    )
    from edgekit.cli.progress import EpochBar

    with EpochBar() as bar:
        result = function(replace(config, progress=None if quiet else bar))
    show(result)
    if json_out:
        from dataclasses import asdict

        write_json(json_out, asdict(result))


def check_json_not_written(json_out: Path | None, folder: Path) -> None:
    """--json is not the checkpoint or the model the run writes (FOLDER/NAME.pt, FOLDER/NAME.onnx)."""
    from edgekit.errors import BadInputError
    from edgekit.fileio import is_special, same_output

    if json_out is None or is_special(json_out) or json_out.suffix.lower() not in (".pt", ".onnx"):
        return
    if same_output(json_out.parent, folder):
        raise BadInputError(f"--json {json_out}: the run writes its checkpoint and model (NAME.pt, NAME.onnx) "
                            f"in {folder}: give the JSON a .json name")


def show(result) -> None:
    from rich.markup import escape

    out = console()
    metrics = "  ".join(f"{key} {value:.2f}" for key, value in result.metrics.items() if not key.endswith("count"))
    out.print(f"trained [bold]{escape(str(result.model))}[/] in {result.seconds:.1f} s ({result.epochs_run} epochs): "
              f"{escape(metrics)}")
    out.print(f"checkpoint → {result.checkpoint}", markup=False)
    out.print(f"model      → {result.onnx}", markup=False)
