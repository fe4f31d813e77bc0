"""``profile_model``: one model on one runtime, per layer; ``side_by_side``: two profiles layer by layer."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import BadInputError
from edgekit.matrix.cells import json_safe
from edgekit.profile.graph import Graph, absorb_fused, match_layer, read_graph
from edgekit.profile.records import Profile, aggregate
from edgekit.profile.timing import Collected, ProfilePlan

#: canonical runtime name → the module whose ``collect`` profiles it
PROFILERS = {"ort-cpu": "edgekit.profile.ort", "ort-cuda": "edgekit.profile.ort", "ort-trt": "edgekit.profile.ort",
             "openvino": "edgekit.profile.openvino", "trt": "edgekit.profile.tensorrt"}


def profiler_for(runtime: str):
    """(runtime class, profiler module name); a runtime edgekit cannot profile is one line, exit 2."""
    from edgekit.runtimes import get_runtime

    cls = get_runtime(runtime)
    module = PROFILERS.get(cls.name)
    if module is None:
        raise BadInputError(f"runtime '{cls.name}' has no per-layer profiler in edgekit (profiled runtimes: "
                            f"{', '.join(PROFILERS)}); time it whole with `edgekit bench`")
    return cls, module


def profile_model(model: str | Path, runtime: str = "ort-cpu", options: Mapping[str, Any] | None = None,
                  plan: ProfilePlan | None = None, inputs: str | Path | None = None, seed: int = 0,
                  batch: int = 1) -> Profile:
    """Per-layer times of ``model`` (a model file) on ``runtime``: medians over ``plan.runs`` profiled runs,
    each paired with a plain run for the overhead. ``inputs``: an .npz of feeds (else seeded random)."""
    cls, module = profiler_for(runtime)
    options = dict(options or {})
    cls.make_options(**options)
    cls.ensure_available()
    path = Path(model)
    if not path.is_file():
        raise BadInputError(f"model file not found: {model}")
    graph = read_graph(path)
    collected = importlib.import_module(module).collect(cls, path, options, feeds_maker(path, inputs, seed, batch),
                                                        plan or ProfilePlan())
    return build_profile(path, cls.name, collected, graph, asked_precision(path, collected))


def feeds_maker(path: Path, inputs: str | Path | None, seed: int, batch: int) -> Callable:
    """runtime → the feeds to time: the first batch of an .npz, else seeded random inputs."""
    from edgekit.bench.inputs import random_feeds
    from edgekit.meta import read_meta

    if inputs is not None:
        from edgekit.inputs.golden import load_batches_npz

        first = load_batches_npz(inputs, "inputs")[0]
        return lambda runtime: first
    meta = read_meta(path)
    return lambda runtime: random_feeds(runtime.inputs, batch, meta, seed)


def asked_precision(path: Path, collected: Collected) -> str:
    """The model's precision when reduced (int8, fp16), else the runtime's precision setting, else fp32."""
    from edgekit.compare_files import precision_of

    model = precision_of(path)
    return model if model != "fp32" else (collected.asked or "fp32")


def build_profile(path: Path, runtime: str, collected: Collected, graph: Graph | None, asked: str) -> Profile:
    """Map the runtime's layers to ONNX nodes and aggregate the runs."""
    from edgekit.meta import read_meta

    layer_names = list(dict.fromkeys(s.layer for run in collected.runs for s in run.layers))
    matches = {name: _matches(name, collected, graph) for name in layer_names}
    taken = {node for found in matches.values() for node in found}
    guessed = {node: how for name, found in matches.items() if name not in collected.original_names
               for node, how in found.items()}  # runtimes that list a layer's parts (OpenVINO, TensorRT) say it all
    owned = absorb_fused(graph, guessed, taken)
    order = {node.name: index for index, node in enumerate(graph.nodes)} if graph is not None else {}
    mapped = {name: tuple(sorted(dict.fromkeys(n for node in found for n in (node, *owned.get(node, ()))),
                                 key=lambda n: order.get(n, 0)))
              for name, found in matches.items()}
    fused = sum(len(extra) for extra in owned.values())
    layers, totals = aggregate(collected.runs, mapped, asked, collected.slow_kernels)
    covered = {node for nodes in mapped.values() for node in nodes}
    unprofiled = () if graph is None else tuple(
        n.name for n in graph.nodes if n.name not in covered and not all(graph.constant(o) for o in n.outputs))
    meta = read_meta(path)
    return Profile(
        model=meta.model_name or path.stem, model_path=str(path), runtime=runtime, version=collected.version,
        device=collected.device, asked=asked, runs=int(totals["runs"]), layers=layers, total_ms=totals["total_ms"],
        wall_ms=totals["wall_ms"], plain_ms=totals.get("plain_ms"), overhead=totals.get("overhead"),
        total_source=collected.total_source,
        mapping=mapping_note(layers, graph, fused),
        unprofiled=unprofiled, notes=collected.notes, settings=json_safe(dict(collected.settings)),
        preempted=int(totals["disturbed"]), timed_runs=len(collected.runs), coverage=totals["coverage"])


def _matches(layer: str, collected: Collected, graph: Graph | None) -> dict[str, str]:
    """ONNX node → head/tail for each name the runtime says the layer holds (its own name by default)."""
    found: dict[str, str] = {}
    for name in collected.original_names.get(layer, (layer,)):
        node, how = match_layer(name, graph)
        if node:
            found.setdefault(node, how)
    return found


def mapping_note(layers, graph: Graph | None, fused: int) -> str:
    if graph is None:
        return "not an ONNX file: layers keep the runtime's names"
    mapped = sum(1 for layer in layers if layer.onnx_nodes)
    text = f"by name: {mapped} of {len(layers)} timed layers mapped to ONNX nodes"
    if fused:
        text += f"; {fused} ONNX node(s) with no time of their own counted in the layer they were fused into"
    if mapped < len(layers):
        text += "; unmapped layers were inserted by the runtime (layout reorders, copies) or renamed past recognition"
    return text


@dataclass(frozen=True)
class PairRow:
    """Layers of two profiles that run the same ONNX nodes (one side empty: only the other has them)."""

    nodes: tuple[str, ...]
    a_layers: tuple[str, ...]
    b_layers: tuple[str, ...]
    a_ms: float
    b_ms: float
    a_precision: str
    b_precision: str
    op_type: str

    @property
    def ratio(self) -> float | None:
        """b / a time; None where a side has no time."""
        return self.b_ms / self.a_ms if self.a_ms > 0 and self.b_ms > 0 else None


def side_by_side(a: Profile, b: Profile) -> list[PairRow]:
    """Rows of layers joined through the ONNX nodes they run (connected groups), in A's order, B-only last."""
    groups: list[tuple[dict[str, None], list, list]] = []
    for side, profile in ((0, a), (1, b)):
        for layer in profile.layers:
            found = [g for g in groups if g[0].keys() & set(layer.onnx_nodes)] if layer.onnx_nodes else []
            merged: tuple[dict[str, None], list, list] = (dict.fromkeys(layer.onnx_nodes), [], [])
            for group in found:
                groups.remove(group)
                merged = ({**group[0], **merged[0]}, group[1] + merged[1], group[2] + merged[2])
            merged[1 + side].append(layer)
            groups.append(merged)
    order = {layer.layer: index for index, layer in enumerate(a.layers)}
    groups.sort(key=lambda g: min((order[x.layer] for x in g[1]), default=len(order)))
    return [_row(tuple(nodes), left, right) for nodes, left, right in groups]


def _row(nodes: tuple[str, ...], left: list, right: list) -> PairRow:
    def precision(layers: list) -> str:
        return "/".join(sorted({x.precision for x in layers if x.precision}))

    first = (left or right)[0]
    return PairRow(nodes, tuple(x.layer for x in left), tuple(x.layer for x in right),
                   sum(x.median_ms for x in left), sum(x.median_ms for x in right), precision(left),
                   precision(right), first.op_type)
