"""What `edgekit inspect` shows: I/O, opset, op histogram, parameters, MACs, metadata."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.deps import require
from edgekit.errors import BadInputError, first_line
from edgekit.fileio import model_size_bytes
from edgekit.graph.layers import LayerRow, layer_table
from edgekit.meta import ModelMeta

# Initializer element types that hold learned weights (float, or quantized integers).
_WEIGHT_TYPES = {1, 10, 11, 16, 2, 3}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16, UINT8, INT8
_DTYPE_NAMES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64"}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int | str, ...]


@dataclass(frozen=True)
class GraphSummary:
    """Static facts about an ONNX model file."""

    path: str
    file_size_bytes: int  # with the weights beside it (external data, an IR's .bin)
    producer: str
    ir_version: int
    opsets: dict[str, int]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    node_count: int
    op_histogram: dict[str, int]
    parameters: int
    macs: int | None  # None when a counted layer has a dynamic non-batch dim (see macs_note)
    meta: ModelMeta
    macs_note: str = ""
    layers: tuple[LayerRow, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def flops(self) -> int | None:
        """FLOPs counted as two per MAC."""
        return None if self.macs is None else 2 * self.macs

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["flops"] = self.flops
        return data


def summarize(path: str | Path, shapes: dict | None = None, layers: bool = False) -> GraphSummary:
    """Load ``path`` with onnx (external data never read) and compute its summary; ``shapes``
    (input name → dims) resolves dynamic dims, ``layers`` keeps the per-layer table."""
    path = Path(path)
    model = load_model(path)
    from edgekit.graph.warnings import deployment_warnings
    from edgekit.meta import read_meta

    table = layer_table(model, shapes)
    initializer_names = {init.name for init in model.graph.initializer}
    return GraphSummary(
        path=str(path),
        file_size_bytes=model_size_bytes(path),
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        ir_version=model.ir_version,
        opsets={entry.domain or "ai.onnx": entry.version for entry in model.opset_import},
        inputs=tuple(_info(v) for v in model.graph.input if v.name not in initializer_names),
        outputs=tuple(_info(v) for v in model.graph.output),
        node_count=len(model.graph.node),
        op_histogram=dict(Counter(node.op_type for node in model.graph.node).most_common()),
        parameters=count_parameters(model),
        macs=table.macs,
        meta=read_meta(path),
        macs_note=table.macs_note,
        layers=table.rows if layers else (),
        warnings=tuple(deployment_warnings(model, {p.key: p.value for p in model.metadata_props})),
    )


def load_model(path: Path):
    """The graph of an .onnx file without its external data (never opened, wherever it points)."""
    onnx = require("onnx", "torch")
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise BadInputError(f"model file not found: {path}")
    if path.suffix.lower() != ".onnx":
        raise BadInputError(f"inspect reads .onnx files, not {path.name} (bench and eval take other formats)")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise BadInputError(f"{path} is not an ONNX model ({first_line(exc)})") from None
    if not model.graph.node:
        raise BadInputError(f"{path} is not an ONNX model (no graph nodes)")
    return model


def count_parameters(model) -> int:
    """Elements of weight-like initializers and Constant tensors (int64 shape constants excluded)."""
    import math

    total = sum(math.prod(init.dims) for init in model.graph.initializer
                if init.data_type in _WEIGHT_TYPES and all(d >= 0 for d in init.dims))
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.t.data_type in _WEIGHT_TYPES:
                    total += math.prod(attribute.t.dims)
    return total


def _info(value) -> TensorInfo:
    tensor_type = value.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor_type.shape.dim)
    return TensorInfo(value.name, _DTYPE_NAMES.get(tensor_type.elem_type, str(tensor_type.elem_type)), dims)
