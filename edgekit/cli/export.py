"""`edgekit export`: zoo model or user torch model → verified ONNX file with metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_numbers, check_outputs, console, handle_errors
from edgekit.cli.source_options import INPUTS, META, META_FILE, WEIGHTS


def register(app: typer.Typer) -> None:
    app.command("export")(handle_errors(export))


def export(
    model: str = typer.Argument(..., help="Zoo model name (see `edgekit models`), file.py:factory, "
                                          "package.module:factory, a TorchScript file or a .pt2 program."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output .onnx file \\[default: MODEL.onnx]."),
    opset: int = typer.Option(17, help="ONNX opset version."),
    batch: int = typer.Option(1, help="Fixed batch size of the exported graph."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Make the batch dimension symbolic."),
    input_size: Optional[str] = typer.Option(None, help="Input size, e.g. 224 or 160x128 \\[default: the model's]."),
    weights: Optional[Path] = WEIGHTS,
    atol: float = typer.Option(1e-4, help="Absolute tolerance of the torch-vs-ONNX Runtime check."),
    rtol: float = typer.Option(1e-3, help="Relative tolerance of the torch-vs-ONNX Runtime check."),
    seed: int = typer.Option(0, help="Seed for random weights and the check's input."),
    input_spec: Optional[list[str]] = INPUTS,
    meta_pair: Optional[list[str]] = META,
    meta_file: Optional[Path] = META_FILE,
    fuse_preprocess: bool = typer.Option(
        False, "--fuse-preprocess", help="Put resize/crop/colour/normalize into the graph: input uint8 NHWC frames."),
    frame: str = typer.Option("dynamic", help="With --fuse-preprocess: camera frame HxW (480x640) or 'dynamic'."),
    frame_color: str = typer.Option("RGB", help="With --fuse-preprocess: frame channel order RGB, BGR or GRAY."),
    resize_op: str = typer.Option("resize", help="With --fuse-preprocess: resize (ONNX Resize) or gather "
                                  "(Gather + lerp, faster on OpenVINO)."),
) -> None:
    """Export a zoo model to ONNX, then check it on ONNX Runtime against torch (exit 1 if they differ)."""
    check_numbers(opset=opset, batch=batch, atol=atol, rtol=rtol, seed=seed)
    from edgekit.exporters.config import ExportConfig, parse_input_size
    from edgekit.exporters.torch_onnx import export_zoo_model
    from edgekit.sources import parse_source
    from edgekit.zoo.catalog import get_entry
    from rich.markup import escape

    source = parse_source(model)
    if source.is_torch:
        from edgekit.cli.user_model import export_user_model

        return export_user_model(source, output, opset, batch, dynamic_batch, input_size, weights, atol, rtol, seed,
                                 input_spec, meta_pair, meta_file)
    if input_spec:
        from edgekit.errors import BadInputError

        raise BadInputError("--input describes a user model's inputs; a zoo model takes --input-size")
    entry = get_entry(model)
    output = output or Path(f"{entry.name}.onnx")
    if output.suffix.lower() != ".onnx":
        from edgekit.errors import BadInputError

        raise BadInputError(f"output must be an .onnx file, got '{output}'")
    check_outputs(output, inputs=[weights], special_ok=False)
    size = parse_input_size(input_size) if input_size else None
    config = ExportConfig(opset=opset, batch=batch, dynamic_batch=dynamic_batch, input_size=size,
                          atol=atol, rtol=rtol, seed=seed)
    if meta_pair or meta_file:  # checked before the export, written after it
        from edgekit.exporters.metadata import apply_changes
        from edgekit.cli.user_model import meta_changes

        changes = meta_changes(meta_pair, meta_file)
        apply_changes(entry.meta(size or entry.input_size, ()), changes)
    fuse_config = _fuse_config(frame, frame_color, resize_op) if fuse_preprocess else None
    if fuse_config is None:
        result = export_zoo_model(entry.name, output, config, weights=weights)
    else:
        import tempfile

        from edgekit.exporters.fuse import fuse_model

        with tempfile.TemporaryDirectory(prefix="edgekit-export-") as folder:
            result = export_zoo_model(entry.name, Path(folder) / "plain.onnx", config, weights=weights)
            fused = fuse_model(result.path, output, fuse_config)
        result = type(result)(fused.path, fused.meta, result.parity)
    if meta_pair or meta_file:
        from edgekit.exporters.metadata import update_file

        result = type(result)(result.path, update_file(result.path, changes), result.parity)
    from edgekit.fileio import model_size_mb

    size_mb = model_size_mb(result.path)
    out = console()
    h, w = result.meta.input_size
    batch_text = "dynamic" if dynamic_batch else str(batch)
    import onnx

    from edgekit.exporters.graph_ops import default_opset

    # fused pre-processing may need a newer opset than asked
    written = default_opset(onnx.load(str(result.path), load_external_data=False)) or opset
    out.print(f"exported [bold]{entry.name}[/] → {escape(str(result.path))} ({size_mb:.1f} MB, opset {written}, "
              f"input {result.meta.channels}x{h}x{w}, batch {batch_text})")
    out.print(f"verified on ONNX Runtime vs torch: {result.parity.summary()}")
    if fuse_config is not None:
        steps = "; ".join(fused.steps)
        out.print(f"fused preprocessing: {escape(steps)} (input tensor max abs diff vs numpy "
                  f"{fused.pixel_max_abs:.3g}); input is now uint8 NHWC frames")


def _fuse_config(frame: str, frame_color: str, resize_op: str):
    from edgekit.exporters.config import FuseConfig, parse_frame

    return FuseConfig(frame=parse_frame(frame), frame_color=frame_color.upper(), resize_op=resize_op.lower())
