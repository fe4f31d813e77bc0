"""A segmenter's argmax as ONNX nodes behind its per-pixel scores (workstation tier: onnx).

The scores output (N×C×h×w float) is replaced by ``classes``, an N×h×w uint8 class map: ``ArgMax``
over the class axis (the first best class on ties, as ``edgekit.tasks.segmentation.channel_argmax``),
or ``score > 0`` for a one-channel model. The host then only maps the small map back to the frame:
it receives h×w bytes instead of C×h×w floats.
"""

from __future__ import annotations

from edgekit.errors import BadInputError
from edgekit.exporters.graph_ops import Nodes, append, dims
from edgekit.meta import ModelMeta

CLASS_MAP = "classes"


def scores_output(model, meta: ModelMeta) -> str:
    """The per-pixel scores output the task decodes (metadata ``output``, else ``out``, else the first)."""
    from edgekit.tasks.segmentation import OUTSIDE, PREFERRED_OUTPUT

    names = [value.name for value in model.graph.output]
    name = meta.extra.get("output") or (PREFERRED_OUTPUT if PREFERRED_OUTPUT in names else names[0])
    value = next((v for v in model.graph.output if v.name == name), None)
    if value is None:
        raise BadInputError(f"metadata key 'output' names '{name}', not an output of the model (it has "
                            f"{', '.join(names)})")
    shape = dims(value)
    if len(shape) != 4:
        raise BadInputError(f"--postprocess needs per-pixel scores (batch, classes, height, width); output "
                            f"'{name}' has shape {shape}")
    if isinstance(shape[1], int) and shape[1] > OUTSIDE:
        raise BadInputError(f"output '{name}' has {shape[1]} classes; a uint8 class map holds at most {OUTSIDE}")
    if CLASS_MAP in names:
        raise BadInputError(f"the model already has an output '{CLASS_MAP}'")
    return name


def append_class_map(model, meta: ModelMeta) -> tuple[ModelMeta, list[str]]:
    """Append the argmax to ``model`` in place; returns the new metadata and the steps."""
    from onnx import TensorProto, helper

    name = scores_output(model, meta)
    shape = dims(next(v for v in model.graph.output if v.name == name))
    nodes = Nodes("edgekit_postprocess")
    if shape[1] == 1:
        positive = nodes.op("Greater", [name, nodes.const(0.0, "float32")])
        mapped = nodes.op("Squeeze", [positive, nodes.const([1])])
        step = "score > 0 (one channel)"
    else:
        mapped = nodes.op("ArgMax", [name], axis=1, keepdims=0, select_last_index=0)
        step = "argmax over classes"
    nodes.op("Cast", [mapped], CLASS_MAP, to=TensorProto.UINT8)
    batch, height, width = (d if d is not None else f"{CLASS_MAP}_{i}" for i, d in enumerate([shape[0], *shape[2:]]))
    added = [helper.make_tensor_value_info(CLASS_MAP, TensorProto.UINT8, [batch, height, width])]
    append(model, nodes, [name], added)
    steps = [step, "uint8 class map"]
    record = {"output": CLASS_MAP, "in_graph_steps": steps, "in_graph_from": name}
    return meta.with_(extra={**meta.extra, "output": CLASS_MAP, "class_map": record}), steps
