"""Intermediate tensors made visible: a copy of a model with chosen tensors as extra graph outputs (in a
temporary folder; the user's file is never changed), and how two graphs' tensors correspond.

Two runs of one graph (two runtimes) share tensor names. An FP32 graph and its INT8 QDQ version share
them too, but the quantized graph's view of a float tensor ``t`` is the output of the DequantizeLinear
after ``QuantizeLinear(t)``: what the next layer reads. Exposing it keeps ONNX Runtime from fusing that
Q/DQ pair into an int8 kernel, so the copy computes the same quantized values in float (to a rounding
step); ``layers_diff`` reports how far the copy's final outputs moved from the untouched file's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgekit.errors import BadInputError
from edgekit.profile.graph import Graph, graph_of, refuse_control_flow

FLOAT_TYPES = (1, 10, 11, 16)  # onnx.TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16


def load_model(path: Path):
    """The ONNX model with its external data, and its ``Graph``; control flow refused (one line)."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # DecodeError, missing external data
        raise BadInputError(f"cannot read {path} as ONNX: {exc}") from None
    graph = graph_of(model.graph)
    refuse_control_flow(graph, path.name)
    return model, graph


def float_tensors(model, graph: Graph) -> dict[str, int]:
    """Every non-constant node output of a float element type → that type (shape inference decides)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    except Exception:  # an op the inference does not know: fall back to what the file declares
        inferred = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.value_info, *inferred.output)
             if v.type.HasField("tensor_type")}
    return {out: types[out] for node in graph.nodes for out in node.outputs
            if out and not graph.constant(out) and types.get(out) in FLOAT_TYPES}


def correspondence(reference: Graph, candidate: Graph, candidate_floats: dict[str, int]) -> dict[str, str]:
    """Reference tensor → the candidate tensor holding the same values: a QDQ graph's DequantizeLinear
    output for the float tensor it quantized, else the same name."""
    mapping = {name: name for name in candidate_floats if name in reference.producer}
    views: dict[str, str] = {}
    for node in candidate.nodes:
        if node.op_type != "DequantizeLinear" or not node.inputs:
            continue
        quantize = candidate.producer.get(node.inputs[0])
        if quantize is None or quantize.op_type != "QuantizeLinear" or not quantize.inputs:
            continue  # a weight's DequantizeLinear reads an initializer
        if quantize.inputs[0] in reference.producer and node.outputs[0] in candidate_floats:
            views.setdefault(quantize.inputs[0], node.outputs[0])  # the first one of each tensor
    return {**mapping, **views}


def float_producer(graph: Graph, tensor: str):
    """The node computing ``tensor`` in float: through a DequantizeLinear ← QuantizeLinear pair to the op
    before them (a QDQ graph's outputs are DequantizeLinear outputs); None for graph inputs."""
    node = graph.producer.get(tensor)
    if node is not None and node.op_type == "DequantizeLinear" and node.inputs:
        quantize = graph.producer.get(node.inputs[0])
        if quantize is not None and quantize.op_type == "QuantizeLinear" and quantize.inputs:
            return graph.producer.get(quantize.inputs[0], node)
    return node


def tapped_copy(model, tensors: Sequence[str], types: dict[str, int], folder: Path, name: str) -> Path:
    """A copy of ``model`` with ``tensors`` added as graph outputs, saved under ``folder``."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    present = {output.name for output in copy.graph.output}
    for tensor in tensors:
        if tensor not in present:
            copy.graph.output.append(onnx.helper.make_tensor_value_info(tensor, types[tensor], None))
    target = folder / name
    try:
        onnx.save(copy, str(target))
    except ValueError:  # above protobuf's 2 GB: weights beside it
        onnx.save(copy, str(target), save_as_external_data=True, location=f"{target.name}.data")
    return target
