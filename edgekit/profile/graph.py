"""The ONNX graph a profile or a layer diff is mapped onto: nodes in topological order, who makes and
who reads each tensor, and the runtimes' layer names mapped back to ONNX node names.

Runtimes fuse and rename: ONNX Runtime's ``conv1_relu_nchwc`` is node ``conv1`` with the Relu after
it fused in, OpenVINO's ``conv1/WithoutBiases`` is ``conv1``, TensorRT's ``conv1 + relu1`` two nodes.
Mapping is by name (exact, then the longest node name the layer's name starts with, then path
prefixes); a layer no name matches is one the runtime inserted (a layout reorder) or renamed beyond
recognition, and is shown unmapped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import BadInputError

CONTROL_FLOW = ("If", "Loop", "Scan")
SEPARATORS = ("_", "/", ".", ":", " ")


@dataclass(frozen=True)
class Node:
    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass
class Graph:
    """An ONNX graph's nodes (topological order) and tensor producers; initializers are constants."""

    nodes: tuple[Node, ...]
    initializers: frozenset[str]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    producer: dict[str, Node] = field(default_factory=dict)
    by_name: dict[str, Node] = field(default_factory=dict)
    constants: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.producer = {out: node for node in self.nodes for out in node.outputs if out}
        self.by_name = {node.name: node for node in self.nodes if node.name}
        self.constants = set(self.initializers)
        for node in self.nodes:  # ONNX keeps nodes in topological order
            if node.op_type not in CONTROL_FLOW and all(i in self.constants for i in node.inputs if i):
                self.constants.update(o for o in node.outputs if o)

    @property
    def control_flow(self) -> list[Node]:
        return [node for node in self.nodes if node.op_type in CONTROL_FLOW]

    def constant(self, tensor: str) -> bool:
        """Whether ``tensor`` depends on no graph input (an initializer, or computed from them only)."""
        return tensor in self.constants


def read_graph(path: str | Path) -> Graph | None:
    """The graph of an ONNX file (None for other formats: OpenVINO IR, TensorRT engines)."""
    if Path(path).suffix.lower() != ".onnx":
        return None
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise BadInputError(f"cannot read {path} as ONNX: {exc}") from None
    return graph_of(model.graph)


def graph_of(graph) -> Graph:
    """A ``Graph`` from an ``onnx.GraphProto``."""
    nodes = tuple(Node(n.name, n.op_type, tuple(n.input), tuple(n.output)) for n in graph.node)
    initializers = frozenset(i.name for i in graph.initializer)
    return Graph(nodes, initializers, tuple(i.name for i in graph.input if i.name not in initializers),
                 tuple(o.name for o in graph.output))


def map_layer(name: str, graph: Graph | None) -> tuple[str, ...]:
    """ONNX node names a runtime's layer name stands for; () when none matches."""
    if graph is None or not name:
        return ()
    if name in graph.by_name:
        return (name,)
    node = graph.producer.get(name)  # OpenVINO names some layers by their output tensor
    if node is not None and node.name:
        return (node.name,)
    best = ""
    for candidate in graph.by_name:
        if len(candidate) > len(best) and name.startswith(candidate) and name[len(candidate):][:1] in SEPARATORS:
            best = candidate
    if best:
        return (best,)
    trimmed = name.rsplit("/", 1)[0] if "/" in name.strip("/") else ""
    return map_layer(trimmed, graph) if trimmed and trimmed != name else ()


def fused_followers(graph: Graph | None, mapped: set[str]) -> dict[str, str]:
    """ONNX nodes with no time of their own that follow a timed node they read alone (an activation
    fused into the convolution before it): follower → the timed node it was folded into."""
    if graph is None:
        return {}
    found: dict[str, str] = {}
    for node in graph.nodes:
        if node.name in mapped or not node.name:
            continue
        sources = [graph.producer[i] for i in node.inputs if i in graph.producer and not graph.constant(i)]
        if len(sources) == 1:
            owner = found.get(sources[0].name, sources[0].name)
            if owner in mapped:
                found[node.name] = owner
    return found


def refuse_control_flow(graph: Graph, label: str) -> None:
    """Intermediate tensors inside If/Loop/Scan bodies are not graph values: one line saying so."""
    nodes = graph.control_flow
    if nodes:
        shown = ", ".join(f"{n.op_type} '{n.name or '?'}'" for n in nodes[:3])
        raise BadInputError(f"cannot expose the intermediate tensors of {label}: it holds control flow ({shown}) "
                            "whose inner tensors are not values of the graph")
