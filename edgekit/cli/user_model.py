"""The body of `edgekit export` for user torch models (kept out of the thin CLI module)."""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import BadInputError
from edgekit.source_kinds import ModelSource


def meta_changes(pairs: list[str] | None, yaml_file: Path | None) -> dict:
    """Metadata changes from a YAML file, then KEY=VALUE pairs (pairs win)."""
    from edgekit.exporters.metadata import parse_pairs, read_yaml

    changes = read_yaml(yaml_file) if yaml_file else {}
    for key, value in parse_pairs(pairs or []).items():
        if isinstance(value, dict) and isinstance(changes.get(key), dict):
            changes[key] = {**changes[key], **value}
        else:
            changes[key] = value
    return changes


def export_user_model(source: ModelSource, output: Path | None, opset: int, batch: int, dynamic_batch: bool,
                      input_size: str | None, weights: Path | None, atol: float, rtol: float, seed: int,
                      input_specs: list[str] | None, meta_pairs: list[str] | None, meta_file: Path | None) -> None:
    from rich.markup import escape

    from edgekit.cli.common import check_outputs, console
    from edgekit.exporters.config import ExportConfig, parse_input_size
    from edgekit.exporters.user_module import export_source
    from edgekit.inputs.specs import parse_input_specs

    specs = parse_input_specs(input_specs)
    changes = meta_changes(meta_pairs, meta_file)
    output = output or Path(f"{source.factory or Path(source.location).stem}.onnx")
    if output.suffix.lower() != ".onnx":
        raise BadInputError(f"output must be an .onnx file, got '{output}'")
    check_outputs(output)
    size = parse_input_size(input_size) if input_size else None
    if specs and (size or batch != 1 or dynamic_batch):
        raise BadInputError("--input sets the input shapes: drop --input-size, --batch and --dynamic-batch")
    config = ExportConfig(opset=opset, batch=batch, dynamic_batch=dynamic_batch, input_size=size,
                          atol=atol, rtol=rtol, seed=seed)
    result = export_source(source, output, config, weights=weights, inputs=specs, meta_changes=changes)
    out = console()
    size_mb = result.path.stat().st_size / 2**20
    out.print(f"exported [bold]{escape(source.label)}[/] → {escape(str(result.path))} ({size_mb:.1f} MB, "
              f"task {result.meta.task})")
    out.print(f"verified on ONNX Runtime vs torch: {escape(result.summary)}")
    from edgekit.meta_records import assumed_of

    assumed = assumed_of(result.meta)
    if assumed:
        meta = result.meta
        values = {"task": meta.task, "input_size": "x".join(map(str, meta.input_size)), "color": meta.color,
                  "mean": ",".join(f"{v:g}" for v in meta.mean), "std": ",".join(f"{v:g}" for v in meta.std),
                  "resize": meta.resize}
        shown = ", ".join(f"{key} {values[key]}" for key in assumed)
        fix = " ".join(f"{key}=..." for key in assumed)
        out.print(f"assumed (no --meta given; recorded in the file as assumed): {shown} — set them with "
                  f"`edgekit meta set {result.path} {fix}`", markup=False, highlight=False)
