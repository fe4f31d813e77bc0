"""`edgekit fuse`: preprocessing (and a detector's decoding or a segmenter's argmax) into the graph of an .onnx."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_outputs, console, handle_errors


def register(app: typer.Typer) -> None:
    app.command("fuse")(handle_errors(fuse))


def fuse(
    model: Path = typer.Argument(..., help="An .onnx model (edgekit metadata, or give the settings below)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .onnx file."),
    frame: str = typer.Option("dynamic", help="Camera frame HxW, e.g. 480x640, or 'dynamic' (any size)."),
    frame_color: str = typer.Option("RGB", help="Channel order of the frames: RGB, BGR (OpenCV) or GRAY."),
    resize_op: str = typer.Option("resize", help="resize (ONNX Resize; fast on ONNX Runtime) or gather "
                                  "(bilinear as Gather + lerp; faster on OpenVINO)."),
    preprocess: bool = typer.Option(True, "--preprocess/--no-preprocess", help="Fuse the preprocessing."),
    postprocess: bool = typer.Option(False, "--postprocess", help="Detectors: decode boxes in the graph; segmenters: "
                                     "argmax to a uint8 class map."),
    nms: bool = typer.Option(False, "--nms", help="With --postprocess: class-wise NMS in the graph too."),
    resize: Optional[str] = typer.Option(None, help="No metadata: stretch, letterbox or center-crop."),
    color: Optional[str] = typer.Option(None, help="No metadata: the model's colour order RGB, BGR or GRAY."),
    mean: Optional[str] = typer.Option(None, help="No metadata: per-channel mean in [0, 1], e.g. 0.485,0.456,0.406."),
    std: Optional[str] = typer.Option(None, help="No metadata: per-channel std in [0, 1]."),
    atol: float = typer.Option(1e-3, help="Tolerance on outputs vs the original model fed by numpy."),
) -> None:
    """Write a model that takes uint8 NHWC frames; checked against numpy first (exit 1 if it differs)."""
    from rich.markup import escape

    from edgekit.errors import BadInputError
    from edgekit.exporters.config import FuseConfig, parse_frame
    from edgekit.exporters.fuse import fuse_model

    if output.suffix.lower() != ".onnx":
        raise BadInputError(f"output must be an .onnx file, got '{output}'")
    if not model.is_file():
        raise BadInputError(f"model file not found: {model}")
    check_outputs(output, inputs=[model], special_ok=False)
    config = FuseConfig(preprocess=preprocess, frame=parse_frame(frame), frame_color=frame_color.upper(),
                        resize_op=resize_op.lower(), postprocess=postprocess, nms=nms, atol=atol)
    settings = _settings(model, resize, color, mean, std)
    result = fuse_model(model, output, config, settings=settings)
    out = console()
    out.print(f"fused → {escape(str(result.path))}: {escape('; '.join(result.steps))}")
    checked = [f"outputs {result.parity.summary()}"]
    if result.pixel_max_abs is not None:
        checked.insert(0, f"input tensor max abs diff {result.pixel_max_abs:.3g}")
    if result.boxes_checked:
        what = "class-map pixels" if result.meta.task == "segmentation" else "boxes"
        checked.append(f"{result.boxes_checked} in-graph {what} match the numpy decoder")
    out.print(f"checked on ONNX Runtime vs numpy: {escape(', '.join(checked))}")


def _settings(model: Path, resize, color, mean, std):
    """ModelMeta from the options for a model without edgekit metadata (None when none given)."""
    if not any((resize, color, mean, std)):
        return None
    from edgekit.errors import BadInputError
    from edgekit.meta import COLORS, RESIZES, ModelMeta
    from edgekit.runtimes import open_runtime

    color = (color or "RGB").upper()
    if color not in COLORS or (resize or "stretch") not in RESIZES:
        raise BadInputError(f"--color must be one of {', '.join(COLORS)} and --resize one of {', '.join(RESIZES)}")
    with open_runtime("ort-cpu", model) as runtime:
        name, spec = next(iter(runtime.inputs.items()))
    if len(spec.shape) != 4 or not all(isinstance(d, int) for d in spec.shape[2:]):
        raise BadInputError(f"input '{name}' {spec.shape} is not N×C×H×W with a fixed height and width")
    channels = 1 if color == "GRAY" else 3
    return ModelMeta(input_name=name, input_size=tuple(spec.shape[2:]), color=color, resize=resize or "stretch",
                     mean=_floats(mean, channels, 0.0, "--mean"), std=_floats(std, channels, 1.0, "--std"))


def _floats(text, channels: int, default: float, option: str) -> tuple[float, ...]:
    from edgekit.errors import BadInputError

    if text is None:
        return (default,) * channels
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) == 1:
        values = values * channels
    if len(values) != channels or (option == "--std" and min(values) <= 0):
        raise BadInputError(f"{option} must be {channels} comma-separated numbers (std > 0), got '{text}'")
    return values
