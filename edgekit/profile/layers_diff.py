"""Layer-wise diff (``edgekit compare A B --layers``): where two runs of a model part.

Both sides run a copy of their graph with every intermediate float tensor as an extra output (``taps``),
on the same real inputs (compare's ``--images``/``--data``/``--inputs``); each pair of corresponding
tensors gets max abs / max relative error and cosine, accumulated over every batch. A layer diverges
when it crosses the tolerance: atol/rtol and cosine for the same precision, cosine alone (compare's
budget) when one side is INT8/FP16. The first divergent layer in topological order is named, and so
are the layers that add the most error of their own (relative L2 error above their inputs' worst):
with an INT8 side, those are the layers to keep in float, as a ready ``edgekit quantize`` command.
``bisect`` exposes one tensor at a time and halves the range instead (fewer outputs, fusions kept).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import BadInputError
from edgekit.profile.attribution import named_outputs
from edgekit.profile.graph import Graph
from edgekit.profile.suggest import quantize_command, suspects
from edgekit.profile.taps import correspondence, float_producer, float_tensors, load_model, tapped_copy


@dataclass(frozen=True)
class Side:
    """One side of the diff: a model file on a runtime."""

    path: Path
    runtime: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerRule:
    """When a layer diverges: every element within atol + rtol·|ref| and cosine ≥ min_cosine; with
    ``reduced`` (a side in INT8/FP16) cosine alone, since every quantized layer differs element-wise."""

    atol: float = 1e-4
    rtol: float = 1e-3
    min_cosine: float = 0.999
    reduced_min_cosine: float = 0.99  # compare's budget default when the precisions differ
    reduced: bool = False

    @property
    def cosine(self) -> float:
        return self.reduced_min_cosine if self.reduced else self.min_cosine

    def text(self) -> str:
        if self.reduced:
            return f"cosine ≥ {self.reduced_min_cosine:g} (a reduced-precision side)"
        return f"atol {self.atol:g}, rtol {self.rtol:g}, cosine ≥ {self.min_cosine:g}"


class Stats:
    """Running figures of one tensor pair over the batches (float64)."""

    def __init__(self) -> None:
        self.max_abs = self.max_rel = self.dot = self.ref_sq = self.cand_sq = self.diff_sq = 0.0
        self.outside = 0
        self.problem = ""

    def add(self, ref: np.ndarray, cand: np.ndarray, rule: LayerRule) -> None:
        ref, cand = np.asarray(ref, np.float64), np.asarray(cand, np.float64)
        if ref.shape != cand.shape:
            self.problem = self.problem or f"shapes differ: {ref.shape} vs {cand.shape}"
            return
        if not (np.isfinite(ref).all() and np.isfinite(cand).all()):
            self.problem = self.problem or "NaN or infinite values"
            return
        signed = (ref - cand).ravel()
        self.diff_sq += float(np.dot(signed, signed))
        diff = np.abs(ref - cand)
        self.max_abs = max(self.max_abs, float(diff.max(initial=0.0)))
        self.max_rel = max(self.max_rel, float((diff / np.maximum(np.abs(ref), rule.atol)).max(initial=0.0)))
        self.outside += int(np.count_nonzero(diff > rule.atol + rule.rtol * np.abs(ref)))
        self.dot += float(np.dot(ref.ravel(), cand.ravel()))
        self.ref_sq += float(np.dot(ref.ravel(), ref.ravel()))
        self.cand_sq += float(np.dot(cand.ravel(), cand.ravel()))

    @property
    def cosine(self) -> float:
        if self.problem:
            return float("nan")
        if self.ref_sq == 0.0 or self.cand_sq == 0.0:
            return 1.0 if self.ref_sq == self.cand_sq else 0.0
        return self.dot / math.sqrt(self.ref_sq * self.cand_sq)

    @property
    def error(self) -> float:
        """Relative L2 error ‖ref − cand‖ / ‖ref‖ (inf when broken)."""
        if self.problem:
            return math.inf
        return math.sqrt(self.diff_sq / self.ref_sq) if self.ref_sq > 0 else (0.0 if self.diff_sq == 0 else math.inf)

    def passed(self, rule: LayerRule) -> bool:
        if self.problem or not self.cosine >= rule.cosine:
            return False
        return rule.reduced or self.outside == 0


@dataclass(frozen=True)
class LayerDiff:
    """One layer: the reference tensor, the node that makes it, the candidate's tensor, and the figures."""

    tensor: str
    node: str
    op_type: str
    candidate_tensor: str
    max_abs: float
    max_rel: float
    cosine: float
    passed: bool
    error: float = 0.0  # relative L2 error ‖ref − cand‖ / ‖ref‖
    introduced: float = 0.0  # relative error added here, above the worst of its inputs
    problem: str = ""
    candidate_node: str = ""  # the node making the tensor in the candidate's graph (what quantize --exclude takes)


@dataclass(frozen=True)
class LayerDiffRecord:
    """What ``compare --layers`` found."""

    reference: str
    candidate: str
    precision: str
    input_source: str
    batches: int
    rule: str
    layers: tuple[LayerDiff, ...]
    first_divergent: LayerDiff | None
    keep_in_float: tuple[str, ...]  # node names that add the most error (the first divergent first)
    quantize_command: str = ""
    not_compared: int = 0  # reference float tensors with no counterpart on the other side
    tap_drift: dict[str, float] = field(default_factory=dict)  # side → max abs change of final outputs
    output_shares: dict[str, float] = field(default_factory=dict)  # output → share of the disagreement it explains
    notes: tuple[str, ...] = ()
    bisect_steps: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.first_divergent is None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["passed"] = self.passed
        return data


def layer_diff(reference: Side, candidate: Side, io, rule: LayerRule, seed: int = 0, keep: int = 3,
               bisect: bool = False) -> LayerDiffRecord:
    """The layer-wise diff of two sides on the inputs ``io`` (``edgekit.compare.CompareInputs``)."""
    from edgekit.compare_files import precision_of, require_real_inputs

    model_a, graph_a = load_model(reference.path)
    model_b, graph_b = (model_a, graph_a) if candidate.path == reference.path else load_model(candidate.path)
    precisions = [precision_of(reference.path), precision_of(candidate.path)]
    reduced = precisions[0] != precisions[1] or precisions[0] != "fp32"
    if reduced:
        require_real_inputs(io, f"{precisions[0]} with {precisions[1]} layer by layer")
    rule = dataclasses.replace(rule, reduced=reduced)
    floats_a, floats_b = float_tensors(model_a, graph_a), float_tensors(model_b, graph_b)
    pairs = [(a, b) for a, b in correspondence(graph_a, graph_b, floats_b).items() if a in floats_a]
    order = {out: index for index, node in enumerate(graph_a.nodes) for out in node.outputs}
    pairs.sort(key=lambda pair: order[pair[0]])
    if not pairs:
        raise BadInputError(f"no layer of {reference.path.name} matches one of {candidate.path.name} by tensor "
                            "name: a layer-wise diff needs two versions of one graph (the same export, or its "
                            "quantized copy)")
    with tempfile.TemporaryDirectory(prefix="edgekit-layers-") as folder:
        run = Runner(reference, candidate, (model_a, model_b), (floats_a, floats_b), Path(folder), io, seed, rule)
        stats, steps = (run.bisect(pairs) if bisect else (run.all(pairs), ()))
    layers = diffs(pairs, stats, (graph_a, graph_b), rule)
    first = next((layer for layer in layers if not layer.passed), None)
    shares = run.output_shares()
    keep_nodes = suspects(layers, first, named_outputs(shares), keep, reduced)
    command = quantize_command(reference.path, candidate.path, keep_nodes) if reduced and keep_nodes else ""
    return LayerDiffRecord(
        reference=f"{reference.path.name} on {reference.runtime} ({precisions[0]})",
        candidate=f"{candidate.path.name} on {candidate.runtime} ({precisions[1]})",
        precision=" vs ".join(precisions), input_source=run.where, batches=run.count, rule=rule.text(),
        layers=layers, first_divergent=first, keep_in_float=keep_nodes, quantize_command=command,
        not_compared=len(floats_a) - len(pairs), tap_drift=run.drift, output_shares=shares, notes=run.notes(),
        bisect_steps=steps)


class Runner:
    """Runs tapped copies of both sides on the batches and accumulates each tensor pair."""

    def __init__(self, reference: Side, candidate: Side, models, floats, folder: Path, io, seed: int,
                 rule: LayerRule) -> None:
        from edgekit.compare_runs import plan_inputs
        from edgekit.meta import read_meta

        self.sides, self.models, self.floats, self.folder, self.rule = (reference, candidate), models, floats, \
            folder, rule
        self.batches, self.make, self.where = plan_inputs(io, reference.path, read_meta(reference.path), 1, seed)
        self.drift: dict[str, float] = {}
        self.count = 0
        self.io = io
        self.finals: tuple[list, list] = ([], [])  # each side's graph outputs per batch (the first run's)
        self.meta = read_meta(reference.path)

    def all(self, pairs: Sequence[tuple[str, str]]) -> dict[str, Stats]:
        """Every pair at once; the tapped copies' final outputs are checked against the untouched files."""
        stats = self.run(pairs, "all")
        for index, side in enumerate(self.sides):
            self.drift[side.runtime if self.sides[0].path == self.sides[1].path else side.path.name] = \
                self.final_drift(index, pairs)
        return stats

    def bisect(self, pairs: Sequence[tuple[str, str]]) -> tuple[dict[str, Stats], tuple[str, ...]]:
        """The first diverging pair by halving (assumes a divergence stays diverged downstream)."""
        stats: dict[str, Stats] = {}
        steps = []
        low, high = 0, len(pairs) - 1
        last = self.run([pairs[high]], f"step{len(steps)}")
        stats.update(last)
        steps.append(f"{pairs[high][0]}: {'ok' if last[pairs[high][0]].passed(self.rule) else 'diverges'}")
        if last[pairs[high][0]].passed(self.rule):
            return stats, tuple(steps)
        while low < high:
            middle = (low + high) // 2
            step = self.run([pairs[middle]], f"step{len(steps)}")
            stats.update(step)
            ok = step[pairs[middle][0]].passed(self.rule)
            steps.append(f"{pairs[middle][0]}: {'ok' if ok else 'diverges'}")
            low, high = (middle + 1, high) if ok else (low, middle)
        return stats, tuple(steps)

    def run(self, pairs: Sequence[tuple[str, str]], tag: str) -> dict[str, Stats]:
        """Tapped copies of both sides with ``pairs`` exposed, run on every batch."""
        from edgekit.compare_runs import check_feeds, get_runtime_class

        paths = [tapped_copy(self.models[i], [pair[i] for pair in pairs], self.floats[i], self.folder,
                             f"{tag}-{i}.onnx") for i in (0, 1)]
        stats = {a: Stats() for a, _ in pairs}
        reference, candidate = self.sides
        with get_runtime_class(reference.runtime)(paths[0], **reference.options) as first, \
                get_runtime_class(candidate.runtime)(paths[1], **candidate.options) as second:
            if self.batches is None:
                self.batches = check_feeds(self.make(first), first.inputs, self.where)
            keep_finals = not self.finals[0]
            outputs = [o.name for o in self.models[0].graph.output]
            for feeds in self.batches:
                ref, cand = first.run(feeds), second.run(feeds)
                for a, b in pairs:
                    stats[a].add(ref[a], cand[b], self.rule)
                if keep_finals and all(name in ref and name in cand for name in outputs):
                    self.finals[0].append({name: ref[name] for name in outputs})
                    self.finals[1].append({name: cand[name] for name in outputs})
        self.count = len(self.batches)
        return stats

    def final_drift(self, index: int, pairs: Sequence[tuple[str, str]]) -> float:
        """Largest change the extra outputs made to the side's own outputs (ORT keeps exposed Q/DQ unfused)."""
        from edgekit.compare_runs import get_runtime_class

        side = self.sides[index]
        tapped = tapped_copy(self.models[index], [pair[index] for pair in pairs], self.floats[index], self.folder,
                             f"drift-{index}.onnx")
        with get_runtime_class(side.runtime)(side.path, **side.options) as plain, \
                get_runtime_class(side.runtime)(tapped, **side.options) as exposed:
            drift = 0.0
            for feeds in self.batches:
                before, after = plain.run(feeds), exposed.run(feeds)
                for name, value in before.items():
                    if np.asarray(value).dtype.kind == "f" and np.shape(value) == np.shape(after[name]):
                        drift = max(drift, float(np.abs(np.asarray(value) - after[name]).max(initial=0.0)))
        return drift

    def output_shares(self) -> dict[str, float]:
        """Each graph output's share of the task-level disagreement (``attribution``)."""
        from edgekit.profile.attribution import output_shares

        return output_shares(self.meta, *self.finals) if self.finals[0] else {}

    def notes(self) -> tuple[str, ...]:
        from edgekit.compare_runs import RANDOM_NOTE

        return () if self.io.real else (RANDOM_NOTE,)


def diffs(pairs, stats: Mapping[str, Stats], graphs: tuple[Graph, Graph], rule: LayerRule) -> tuple[LayerDiff, ...]:
    """The compared pairs in topological order, with the error each adds over its inputs."""
    graph, candidate = graphs
    errors = {a: s.error for a, s in stats.items()}
    layers = []
    for a, b in pairs:
        if a not in stats:
            continue
        node = graph.producer[a]
        s = stats[a]
        upstream = upstream_error(graph, node, errors)  # independent errors add in quadrature
        introduced = math.sqrt(max(0.0, errors[a] ** 2 - upstream ** 2)) if math.isfinite(errors[a]) else math.inf
        made = float_producer(candidate, b)  # the node a QDQ graph computes the float tensor with
        layers.append(LayerDiff(a, node.name, node.op_type, b, s.max_abs, s.max_rel, s.cosine, s.passed(rule),
                                errors[a], introduced, s.problem, made.name if made is not None else node.name))
    return tuple(layers)


def upstream_error(graph: Graph, node, errors: Mapping[str, float]) -> float:
    """The worst error among the nearest compared tensors upstream of ``node`` (0 at graph inputs)."""
    worst, stack, seen = 0.0, list(node.inputs), set()
    while stack:
        tensor = stack.pop()
        if not tensor or tensor in seen or graph.constant(tensor):
            continue
        seen.add(tensor)
        if tensor in errors:
            worst = max(worst, errors[tensor])
        elif tensor in graph.producer:
            stack.extend(graph.producer[tensor].inputs)
    return worst


def sides_for(model: str, candidate: str | None, runtimes: Sequence[str],
              options: Mapping[str, Mapping[str, Any]]) -> tuple[Side, Side]:
    """The two sides ``compare --layers`` diffs: two model files on the first runtime, or one model on two
    runtimes (a zoo name or torch source is exported first; torch itself has no ONNX layers)."""
    from edgekit.runtimes import get_runtime
    from edgekit.sources import resolve_model

    def side(path: Path, name: str) -> Side:
        cls = get_runtime(name)
        given = dict(options.get(name, options.get(cls.name, {})))
        cls.make_options(**given)
        cls.ensure_available()
        return Side(path, cls.name, given)

    if candidate is not None and len(runtimes) == 1:
        return side(_onnx(model), runtimes[0]), side(_onnx(candidate), runtimes[0])
    if candidate is None and len(runtimes) == 2:
        path = _onnx(str(resolve_model(model)))
        return side(path, runtimes[0]), side(path, runtimes[1])
    raise BadInputError("--layers diffs two sides: two model files on one runtime (-r RUNTIME), or one model on two "
                        f"runtimes (-r A,B); got {2 if candidate else 1} model(s) and {len(runtimes)} runtime(s)")


def _onnx(path: str) -> Path:
    if Path(path).suffix.lower() != ".onnx":
        raise BadInputError(f"--layers needs ONNX files (their tensors are exposed by editing a copy of the graph); "
                            f"{Path(path).name} is not one")
    if not Path(path).is_file():
        raise BadInputError(f"model file not found: {path}")
    return Path(path)
