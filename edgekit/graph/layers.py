"""`inspect --layers`: the per-layer table CNN course exercises fill by hand.

One row per node (Constant nodes and activations folded into the layer before them excluded):
type, output shape, kernel, stride, padding, groups, activation, parameters, MACs, receptive
field and jump (effective stride) along height and width. Weights may be initializers or
Constant nodes; nothing is allocated from declared dims (shapes are read, never materialised).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgekit.graph.macs import COUNTERS, without_weight_data

Dim = int | str
ACTIVATIONS = {"Relu": "ReLU", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "LeakyRelu": "LeakyReLU", "Elu": "ELU",
               "Selu": "SELU", "HardSigmoid": "HardSigmoid", "HardSwish": "HardSwish", "Gelu": "GELU",
               "Softplus": "Softplus", "Mish": "Mish", "PRelu": "PReLU", "Celu": "CELU", "Clip": "Clip"}
WINDOWED = ("Conv", "ConvInteger", "QLinearConv", "MaxPool", "AveragePool", "LpPool")
GLOBAL_POOLS = ("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
UPSAMPLING = ("Resize", "Upsample", "ConvTranspose")
RESIZE_TAPS = {"nearest": 1, "linear": 2, "bilinear": 2, "cubic": 4}   # input samples per output, one axis


@dataclass(frozen=True)
class Field:
    """Receptive field and jump (effective stride) of one tensor, along height and width, in input
    pixels (an upsampling decoder's jump falls below the stride it undoes: 16 → 8 → 4 …, or under 1)."""

    size: tuple[float, float]
    jump: tuple[float, float]


@dataclass(frozen=True)
class LayerRow:
    name: str
    op: str
    output_shape: tuple[Dim, ...] | None
    kernel: tuple[int, ...] | None = None
    stride: tuple[int, ...] | None = None
    padding: str = ""
    groups: int | None = None
    activation: str = ""
    parameters: int = 0
    macs: int | None = 0
    receptive_field: tuple[float, float] | None = None
    jump: tuple[float, float] | None = None


@dataclass(frozen=True)
class LayerTable:
    rows: tuple[LayerRow, ...]
    parameters: int
    macs: int | None  # None: some counted layer has a dynamic non-batch dim
    macs_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def layer_table(model, shapes: Mapping[str, tuple[Dim, ...]] | None = None) -> LayerTable:
    """The per-layer table of an ``onnx.ModelProto``; ``shapes`` fixes input dims (name → dims)."""
    model = with_input_shapes(model, shapes or {})
    tensor_shapes = infer_symbolic_shapes(model)
    weights = _weight_shapes(model)
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    fields = _input_fields(model, tensor_shapes)
    folded: set[int] = set()
    rows = []
    for node in model.graph.node:
        _propagate_field(node, fields, tensor_shapes)
        if node.op_type == "Constant" or id(node) in folded or _weight_alias(node, weights):
            continue  # weight aliases are counted by the layers that read them
        activation, tail = _following_activation(node, consumers)
        if tail is not None:
            folded.add(id(tail))
            if node.output[0] in fields:
                fields.update({output: fields[node.output[0]] for output in tail.output})
        rows.append(_row(node, tensor_shapes, weights, fields, activation,
                         tail.output[0] if tail is not None else node.output[0]))
    unresolved = [row for row in rows if row.macs is None]
    total = None if unresolved else sum(row.macs or 0 for row in rows)
    note = ""
    if unresolved:
        note = (f"MACs need a shape: {unresolved[0].name or unresolved[0].op} has dynamic dims "
                f"{_fmt(unresolved[0].output_shape)}; give --input name:1x3x224x224")
    return LayerTable(tuple(rows), sum(row.parameters for row in rows), total, note)


def with_input_shapes(model, shapes: Mapping[str, tuple[Dim, ...]]):
    """A copy of ``model`` whose graph inputs have the given dims (unknown names are an error)."""
    from edgekit.errors import BadInputError

    if not shapes:
        return model
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    inputs = {value.name: value for value in copy.graph.input}
    unknown = sorted(set(shapes) - set(inputs))
    if unknown:
        raise BadInputError(f"--input names {', '.join(unknown)}, but the model's inputs are "
                            f"{', '.join(sorted(inputs))}")
    for name, dims in shapes.items():
        declared = inputs[name].type.tensor_type.shape
        if len(declared.dim) and len(declared.dim) != len(dims):
            raise BadInputError(f"--input {name} has {len(dims)} dims, the model declares {len(declared.dim)}")
        del declared.dim[:]
        for dim in dims:
            entry = declared.dim.add()
            if isinstance(dim, int):
                entry.dim_value = dim
            else:
                entry.dim_param = dim
    return copy


def infer_symbolic_shapes(model) -> dict[str, tuple[Dim, ...]]:
    """Every tensor's shape onnx can infer; symbolic dims keep their names ('?' when unnamed)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(without_weight_data(model), data_prop=True)
    except Exception:  # an inconsistent graph: show what the file declares  # noqa: BLE001
        inferred = model
    shapes: dict[str, tuple[Dim, ...]] = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tensor_type = value.type.tensor_type
        if tensor_type.HasField("shape"):
            shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                                       for d in tensor_type.shape.dim)
    return shapes


def _weight_shapes(model) -> dict[str, tuple[int, ...]]:
    """Declared dims of initializers and Constant-node tensors (the data is never read)."""
    weights = {init.name: tuple(init.dims) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    weights[node.output[0]] = tuple(attribute.t.dims)
        elif _weight_alias(node, weights):  # torch's exporter names shared weights through Identity nodes
            weights[node.output[0]] = weights[node.input[0]]
    return weights


def _weight_alias(node, weights: Mapping[str, tuple[int, ...]]) -> bool:
    return node.op_type == "Identity" and len(node.input) == 1 and node.input[0] in weights


def _following_activation(node, consumers: Mapping[str, list]) -> tuple[str, Any]:
    """The activation that alone consumes ``node``'s only output, folded into its row."""
    if node.op_type in ACTIVATIONS or len(node.output) != 1:
        return "", None
    users = consumers.get(node.output[0], [])
    if len(users) != 1 or users[0].op_type not in ACTIVATIONS:
        return "", None
    tail = users[0]
    name = ACTIVATIONS[tail.op_type]
    if tail.op_type == "Clip":
        name = "Clip" if len(tail.input) < 3 else "Clip (ReLU6?)"
    return name, tail


def _attrs(node) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute if a.type in (a.INT, a.INTS, a.STRING,
                                                                                         a.FLOAT)}


def _row(node, shapes, weights, fields, activation: str, output: str) -> LayerRow:
    attrs = _attrs(node)
    out_shape = shapes.get(output) or shapes.get(node.output[0]) if node.output else None
    kernel = stride = None
    padding = ""
    groups = None
    if node.op_type in WINDOWED or node.op_type == "ConvTranspose":
        kernel = tuple(attrs.get("kernel_shape") or _conv_kernel(node, weights) or ()) or None
        stride = tuple(attrs.get("strides") or [1] * len(kernel or ()))
        padding = _padding(attrs)
        groups = attrs.get("group", 1) if "Conv" in node.op_type else None
    params = sum(math.prod(weights[name]) for name in node.input if name in weights and _is_weight(node, name))
    field = fields.get(output)
    return LayerRow(node.name, node.op_type, out_shape, kernel, stride, padding, groups, activation, params,
                    _macs(node, shapes, weights, attrs), field.size if field else None,
                    field.jump if field else None)


def _is_weight(node, name: str) -> bool:
    # shape/axes constants (Reshape's shape, Slice's starts) are not parameters
    return node.op_type not in ("Reshape", "Slice", "Unsqueeze", "Squeeze", "Expand", "Tile", "Pad", "Resize",
                                "ConstantOfShape", "TopK", "ReduceMean", "ReduceSum", "Gather", "Split")


def _conv_kernel(node, weights) -> tuple[int, ...] | None:
    index = 3 if node.op_type.startswith("QLinear") else 1
    if len(node.input) > index and node.input[index] in weights:
        return weights[node.input[index]][2:]
    return None


def _padding(attrs: Mapping[str, Any]) -> str:
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto not in ("NOTSET", ""):
        return auto.lower()
    pads = list(attrs.get("pads") or [])
    if not any(pads):
        return "0"
    half = len(pads) // 2
    begin, end = pads[:half], pads[half:]
    if begin == end:
        return str(begin[0]) if len(set(begin)) == 1 else ",".join(map(str, begin))
    return f"{','.join(map(str, begin))}/{','.join(map(str, end))}"  # begin/end differ


def _macs(node, shapes, weights, attrs) -> int | None:
    counter = COUNTERS.get(node.op_type)
    if counter is None:
        return 0
    involved = [shapes.get(node.input[0]), shapes.get(node.output[0])]
    if any(shape is None for shape in involved):
        return None
    if any(isinstance(d, str) for shape in involved for d in shape[1:]):
        return None  # a dynamic non-batch dim: any figure would be a guess
    static = {name: tuple(d if isinstance(d, int) else 1 for d in shape)  # dynamic batch counts as 1
              for name, shape in {**weights, **shapes}.items()}
    return counter(node, static, {k: v for k, v in attrs.items() if isinstance(v, int)})


def _input_fields(model, shapes) -> dict[str, Field]:
    initializers = {init.name for init in model.graph.initializer}
    return {value.name: Field((1, 1), (1, 1)) for value in model.graph.input
            if value.name not in initializers and len(shapes.get(value.name, ())) == 4}


def _propagate_field(node, fields: dict[str, Field], shapes) -> None:
    """Receptive field and jump of ``node``'s outputs from its inputs' (r += (k−1)·j, j *= s)."""
    # tensors of images (rank 2+): a shape computation's vectors (Shape, Concat of sizes) have no field;
    # a tensor whose shape inference could not tell (a custom op's output) keeps it
    named = {name: fields[name] for name in node.input if name in fields and not _vector(shapes, name)}
    known = list(named.values())
    if not known or not node.output or _vector(shapes, node.output[0]):
        return
    source = max(known, key=lambda f: f.size)
    attrs = _attrs(node)
    if node.op_type in WINDOWED:
        kernel = list(attrs.get("kernel_shape") or [])
        if not kernel and len(node.input) > 1:
            kernel = list(shapes.get(node.input[3 if node.op_type.startswith("QLinear") else 1], ())[2:])
        kernel = [k for k in kernel if isinstance(k, int)]
        if len(kernel) != 2:
            return
        strides = list(attrs.get("strides") or [1, 1])
        dilations = list(attrs.get("dilations") or [1, 1])
        field = _grow(source, [dilations[i] * (kernel[i] - 1) + 1 for i in range(2)], strides)
    elif node.op_type in GLOBAL_POOLS or (len(shapes.get(node.input[0], ())) == 4
                                          and len(shapes.get(node.output[0], ())) == 2):  # flatten
        spatial = shapes.get(node.input[0], ())[2:4]
        if len(spatial) != 2 or not all(isinstance(d, int) for d in spatial):
            return
        field = _grow(source, list(spatial), list(spatial))  # one window over the whole map
    elif node.op_type in UPSAMPLING:
        field = _upsampled(node, source, attrs, shapes)
    else:  # element-wise (Add, Mul, Concat…): the widest field over the main path's grid
        field = _joined(node.output[0], named, shapes)
    for output in node.output:
        fields[output] = field


def _vector(shapes, name: str) -> bool:
    """Whether ``name`` is known to be of rank 0 or 1 (a shape or an index, not an image)."""
    return name in shapes and len(shapes[name]) < 2


def _joined(output: str, inputs: Mapping[str, Field], shapes) -> Field:
    """Inputs joined element-wise see every input's field; positions step as on the input at the
    output's resolution (a squeeze-excite branch's global pool gives its 1×1 scale a whole-map jump
    that the feature map it multiplies does not take on)."""
    grid = shapes.get(output, ())[2:4]
    aligned = [field for name, field in inputs.items() if shapes.get(name, ())[2:4] == grid]
    jump = min(aligned or inputs.values(), key=lambda f: f.jump).jump
    return Field(tuple(max(f.size[i] for f in inputs.values()) for i in range(2)), jump)  # type: ignore[arg-type]


def _upsampled(node, source: Field, attrs: Mapping[str, Any], shapes) -> Field:
    """A resize or transposed convolution by ``scale`` = output / input size: the jump divides by it, and
    the field grows by the input samples each output reads beyond one (linear 2, cubic 4, a transposed
    kernel k at stride s ceil(k / s)); nearest neighbour reads one."""
    before, after = shapes.get(node.input[0], ())[2:4], shapes.get(node.output[0], ())[2:4]
    if len(before) != 2 or len(after) != 2 or not all(isinstance(d, int) and d > 0 for d in (*before, *after)):
        return source
    scale = [after[i] / before[i] for i in range(2)]
    if node.op_type == "ConvTranspose":
        kernel = [k for k in (attrs.get("kernel_shape") or shapes.get(node.input[1], ())[2:4]) if isinstance(k, int)]
        strides = list(attrs.get("strides") or [1, 1])
        if len(kernel) != 2:
            return source
        taps = [-(-kernel[i] // strides[i]) for i in range(2)]
    else:
        mode = attrs.get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        taps = [RESIZE_TAPS.get(mode, 1)] * 2
    size = tuple(source.size[i] + (taps[i] - 1) * source.jump[i] for i in range(2))
    return Field(size, tuple(source.jump[i] / scale[i] for i in range(2)))  # type: ignore[arg-type]


def _grow(field: Field, kernel: Sequence[int], stride: Sequence[int]) -> Field:
    size = tuple(field.size[i] + (kernel[i] - 1) * field.jump[i] for i in range(2))
    jump = tuple(field.jump[i] * stride[i] for i in range(2))
    return Field(size, jump)  # type: ignore[arg-type]


def _fmt(shape) -> str:
    return "[" + ", ".join(dim_text(d) for d in shape or ()) + "]"


def dim_text(dim: Dim) -> str:
    """A dim as shown: its value or name; one shape inference could not name (unk__0) is '?'."""
    return "?" if str(dim).startswith("unk__") else str(dim)
