"""What `edgekit inspect` warns about before a file deploys: weights listed as graph inputs, a fixed
batch above 1, and metadata keys edgekit does not read (another tool's convention), each with the
command that fixes it."""

from __future__ import annotations

from dataclasses import fields

from edgekit.conventions import is_ultralytics
from edgekit.meta import ModelMeta

# well-known keys of other exporters, to name the convention a file follows
CONVENTIONS = {"Ultralytics": {"names", "imgsz", "stride", "batch", "task", "author", "license", "docs"}}
# keys tools write about their own processing (ONNX Runtime's quantization pre-processing writes
# onnx.infer and onnx.quant.pre_process into every file edgekit quantizes): nothing to set instead
TOOL_PREFIXES = ("onnx.",)


def deployment_warnings(model, props: dict[str, str]) -> list[str]:
    """One line per problem of the ONNX ``model`` (a ModelProto) whose metadata_props are ``props``."""
    warnings = []
    initializers = {init.name for init in model.graph.initializer}
    listed = [value.name for value in model.graph.input if value.name in initializers]
    if listed:
        warnings.append(f"{len(listed)} weights are listed as graph inputs (runtimes may treat them as inputs and "
                        "run slower): edgekit edit MODEL --weights-to-initializers -o OUT.onnx")
    for value in model.graph.input:
        if value.name in initializers or not value.type.tensor_type.shape.dim:
            continue
        first = value.type.tensor_type.shape.dim[0]
        if first.HasField("dim_value") and first.dim_value > 1:
            rest = "x".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
                            for d in value.type.tensor_type.shape.dim[1:])
            warnings.append(f"input {value.name} has a fixed batch of {first.dim_value} (every call feeds that many "
                            f"images): edgekit edit MODEL --input {value.name}:Nx{rest} -o OUT.onnx")
    foreign = sorted(key for key in set(props) - {f.name for f in fields(ModelMeta)}   # edgekit's extras: 'extra'
                     if not key.startswith(TOOL_PREFIXES))
    if foreign and not is_ultralytics(props):   # a convention edgekit reads gives task, labels and size
        named = [name for name, keys in CONVENTIONS.items() if len(keys & set(foreign)) >= 2]
        warnings.append(f"metadata keys edgekit does not read: {', '.join(foreign)}"
                        + (f" ({' or '.join(named)} convention)" if named else "")
                        + "; set edgekit's with `edgekit meta set MODEL task=... labels=...`")
    return warnings
