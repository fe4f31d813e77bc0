"""Multiply-accumulate counts from an ONNX graph with inferred shapes.

Counts the layers that published MAC figures count (convolutions and fully connected
layers, float or quantized); symbolic dims (a dynamic batch) count as 1, so the
figure is per item.
"""

from __future__ import annotations

import math
from collections.abc import Callable

Shape = tuple[int, ...]


def _conv(node, shapes: dict[str, Shape], attrs: dict) -> int:
    weight = shapes.get(node.input[_weight_index(node)])
    out = shapes.get(node.output[0])
    if weight is None or out is None:
        return 0
    # weight: [C_out, C_in / groups, k...]; each output element needs C_in/groups · Πk MACs
    return math.prod(out) * math.prod(weight[1:])


def _conv_transpose(node, shapes: dict[str, Shape], attrs: dict) -> int:
    data, weight = shapes.get(node.input[0]), shapes.get(node.input[1])
    if data is None or weight is None:
        return 0
    # weight: [C_in, C_out / groups, k...]; each input element feeds C_out/groups · Πk outputs
    return math.prod(data) * math.prod(weight[1:])


def _gemm(node, shapes: dict[str, Shape], attrs: dict) -> int:
    a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
    if a is None or out is None or len(a) != 2:
        return 0
    k = a[0] if attrs.get("transA") else a[1]
    return math.prod(out) * k


def _matmul(node, shapes: dict[str, Shape], attrs: dict) -> int:
    a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
    if a is None or out is None or not a:
        return 0
    return math.prod(out) * a[-1]


def _weight_index(node) -> int:
    # QLinearConv/QLinearMatMul interleave scales and zero points: x, x_s, x_zp, w, ...
    return 3 if node.op_type.startswith("QLinear") else 1


COUNTERS: dict[str, Callable] = {
    "Conv": _conv,
    "ConvInteger": _conv,
    "QLinearConv": _conv,
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "MatMulInteger": _matmul,
    "QLinearMatMul": _matmul,
}


def infer_shapes(model) -> dict[str, Shape]:
    """Static shape of every tensor onnx can infer (symbolic dims → 1)."""
    import onnx

    light = without_weight_data(model)
    inferred = onnx.shape_inference.infer_shapes(light, data_prop=True)
    graph = inferred.graph
    shapes: dict[str, Shape] = {init.name: tuple(init.dims) for init in model.graph.initializer}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = value.type.tensor_type
        if tensor_type.HasField("shape"):
            shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in tensor_type.shape.dim)
    return shapes


def without_weight_data(model):
    """A copy in which initializers are graph inputs (shape only), except small well-formed constants
    (shapes, axes) that data propagation needs: nothing is allocated from declared dims."""
    import onnx

    light = onnx.ModelProto(ir_version=model.ir_version)
    light.opset_import.extend(model.opset_import)
    graph = light.graph
    graph.node.extend(model.graph.node)
    graph.input.extend(model.graph.input)
    graph.output.extend(model.graph.output)
    declared = {value.name for value in model.graph.input}
    for init in model.graph.initializer:
        if all(d >= 0 for d in init.dims) and math.prod(init.dims) <= 64 and not init.external_data:
            graph.initializer.append(init)  # small constants (shapes, axes) feed data propagation
        elif init.name not in declared:
            graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    return light
