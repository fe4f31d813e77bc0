"""Small helpers to grow an ONNX graph: uniquely named nodes and constants, opset upgrade,
splicing nodes in front of an input or behind outputs (workstation tier: onnx)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgekit.errors import BadInputError, first_line

MIN_FUSE_OPSET = 18  # Resize with antialias=0 and axes, Pad with axes


class Nodes:
    """Collects nodes and initializers whose names all start with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}/{hint}_{self._count}"

    def const(self, value: Any, dtype: Any = np.int64, hint: str = "const") -> str:
        """An initializer holding ``value`` (a scalar stays 0-d, a sequence is 1-d)."""
        from onnx import numpy_helper

        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], output: str | None = None, **attributes: Any) -> str:
        """Add one node; returns its (only) output name."""
        return self.op_n(op_type, inputs, 1, [output] if output else None, **attributes)[0]

    def op_n(self, op_type: str, inputs: Sequence[str], count: int, outputs: Sequence[str] | None = None,
             **attributes: Any) -> list[str]:
        from onnx import helper

        names = list(outputs) if outputs else [self.fresh(op_type.lower()) for _ in range(count)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=self.fresh(op_type), **attributes))
        return names


def default_opset(model) -> int:
    """The default-domain (ai.onnx) opset a ModelProto declares (0 when none)."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def upgrade_opset(model, minimum: int = MIN_FUSE_OPSET):
    """``model`` with its default-domain opset raised to at least ``minimum`` (version converter)."""
    from onnx import version_converter

    current = default_opset(model)
    if current >= minimum:
        return model
    try:
        return version_converter.convert_version(model, minimum)
    except Exception as exc:  # the converter raises bare RuntimeError/ValueError subclasses
        raise BadInputError(f"cannot convert the model from opset {current} to {minimum}: {first_line(exc)}") from None


def prepend(model, nodes: Nodes, graph_input, replaced: str) -> None:
    """Make ``graph_input`` the model's input in place of ``replaced``, which ``nodes`` now compute."""
    graph = model.graph
    kept = [value for value in graph.input if value.name != replaced]
    del graph.input[:]
    graph.input.extend([graph_input, *kept])
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes.nodes, *old])
    graph.initializer.extend(nodes.initializers)


def append(model, nodes: Nodes, removed: Sequence[str], added: Sequence[Any]) -> None:
    """Replace graph outputs ``removed`` by ``added`` value infos, computed by ``nodes``."""
    graph = model.graph
    kept = [value for value in graph.output if value.name not in removed]
    del graph.output[:]
    graph.output.extend([*kept, *added])
    graph.node.extend(nodes.nodes)
    graph.initializer.extend(nodes.initializers)


def dims(value_info) -> list[int | str | None]:
    """Shape of a graph input/output value info: ints, symbolic names, or None when unknown."""
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim]
