"""The ONNX graph a profile or a layer diff is mapped onto: nodes in topological order, who makes and
who reads each tensor, and the runtimes' layer names mapped back to ONNX node names.

Runtimes fuse and rename: ONNX Runtime names a fused NCHWc node after its output tensor
(``relu1_nchwc``: the Conv and the Relu that made ``relu1``), OpenVINO's ``conv1/WithoutBiases`` is
``conv1``, TensorRT's ``conv1 + relu1`` two nodes. Mapping is by name (a node or the producer of a
tensor of that name, then the longest node or tensor name the layer's name starts with, then path
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
    consumers: dict[str, list[Node]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.producer = {out: node for node in self.nodes for out in node.outputs if out}
        self.consumers = {}
        for node in self.nodes:
            for tensor in dict.fromkeys(node.inputs):
                self.consumers.setdefault(tensor, []).append(node)
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


def match_layer(name: str, graph: Graph | None) -> tuple[str, str]:
    """(ONNX node, how) a runtime's layer name stands for: 'head' when it carries a node's name (a fused
    group keeps its first node's), 'tail' when a tensor's (ORT's NCHWc nodes: the group's last output);
    ('', '') when nothing matches."""
    if graph is None or not name:
        return "", ""
    if name in graph.by_name:
        return name, "head"
    node = graph.producer.get(name)  # OpenVINO and ORT name some layers by their output tensor
    if node is not None and node.name:
        return node.name, "tail"
    best, found = "", ("", "")  # the longest node or tensor name the layer's name starts with
    candidates = (*((n, (n, "head")) for n in graph.by_name),
                  *((t, (n.name, "tail")) for t, n in graph.producer.items()))
    for candidate, match in candidates:
        if len(candidate) > len(best) and name.startswith(candidate) and name[len(candidate):][:1] in SEPARATORS:
            best, found = candidate, match
    if found[0]:
        return found
    trimmed = name.rsplit("/", 1)[0] if "/" in name.strip("/") else ""
    return match_layer(trimmed, graph) if trimmed and trimmed != name else ("", "")


def map_layer(name: str, graph: Graph | None) -> tuple[str, ...]:
    """ONNX node names a runtime's layer name stands for; () when none matches."""
    node, _ = match_layer(name, graph)
    return (node,) if node else ()


def absorb_fused(graph: Graph | None, matched: dict[str, str], taken: set[str]) -> dict[str, list[str]]:
    """Nodes with no time of their own, folded into a timed node (``matched``: node → head/tail): a head
    takes the untimed nodes after it that read only the group (a Relu fused into its Conv, never a
    convolution), a tail the untimed nodes before it whose outputs only the group reads (the Conv of
    ``relu1_nchwc``); a group holds one compute op at most. ``taken``: every node some layer holds."""
    from edgekit.profile.records import COMPUTE_OPS

    if graph is None:
        return {}
    owned: dict[str, list[str]] = {}
    for node_name, how in matched.items():
        group = {node_name}
        computes = int(graph.by_name[node_name].op_type in COMPUTE_OPS)
        frontier = [graph.by_name[node_name]]
        while frontier:
            node = frontier.pop()
            for other in (_after(graph, node) if how == "head" else _before(graph, node)):
                compute = other.op_type in COMPUTE_OPS
                if compute and (computes or how == "head"):
                    continue  # a fused kernel runs one convolution, after whatever it is named for
                if other.name and other.name not in taken and other.name not in group and \
                        _only_group(graph, other, group, how):
                    group.add(other.name)
                    computes += compute
                    frontier.append(other)
        taken |= group
        owned[node_name] = [n.name for n in graph.nodes if n.name in group and n.name != node_name]
    return owned


def _after(graph: Graph, node: Node) -> list[Node]:
    return [c for out in node.outputs for c in graph.consumers.get(out, ())]


def _before(graph: Graph, node: Node) -> list[Node]:
    return [graph.producer[i] for i in node.inputs if i in graph.producer and not graph.constant(i)]


def _only_group(graph: Graph, node: Node, group: set[str], how: str) -> bool:
    """A follower reads only the group's outputs; a predecessor's outputs are read only by the group."""
    if how == "head":
        return all(graph.producer[i].name in group for i in node.inputs if i in graph.producer and not
                   graph.constant(i))
    readers = [c for out in node.outputs for c in graph.consumers.get(out, ())]
    return bool(readers) and all(r.name in group for r in readers) and not set(node.outputs) & set(graph.outputs)


def refuse_control_flow(graph: Graph, label: str) -> None:
    """Intermediate tensors inside If/Loop/Scan bodies are not graph values: one line saying so."""
    nodes = graph.control_flow
    if nodes:
        shown = ", ".join(f"{n.op_type} '{n.name or '?'}'" for n in nodes[:3])
        raise BadInputError(f"cannot expose the intermediate tensors of {label}: it holds control flow ({shown}) "
                            "whose inner tensors are not values of the graph")
