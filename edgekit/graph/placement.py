"""`inspect --runtime`: which nodes a runtime cannot run, or runs somewhere else.

ONNX Runtime: the node placement its session logs at verbose level (execution provider per node,
Memcpy nodes it inserts between devices), or the op it names when the session cannot be built.
OpenVINO: ``Core.query_model`` (operations no device plugin takes) or the operations its ONNX
frontend has no conversion rule for. Each finding comes with a hint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import BadInputError, first_line


@dataclass(frozen=True)
class Finding:
    """One node (or op type) the runtime does not run as asked, and what to do about it."""

    node: str
    op: str
    placed_on: str  # execution provider / device, or "unsupported"
    hint: str


@dataclass(frozen=True)
class PlacementReport:
    runtime: str
    target: str  # the execution provider or device asked for
    loadable: bool
    node_count: int  # nodes after the runtime's own optimisations (0 when unknown)
    placement: dict[str, int]  # provider/device → node count
    findings: tuple[Finding, ...]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


HINT_CUSTOM = "custom-domain op: register its kernel (a custom-op library) or replace it before export"
HINT_MISSING = "no kernel for this op here: rewrite it with standard ops or run on a runtime that has it"
HINT_FALLBACK = "runs on {where}, not {target}: data crosses devices around it (Memcpy); consider replacing it"
HINT_MEMCPY = "copy inserted between devices: a node nearby runs on another provider"


def inspect_placement(model: str | Path, runtime: str, **options: Any) -> PlacementReport:
    """Placement of ``model``'s nodes on ``runtime`` (a registry name: ort-cpu, ort-cuda, openvino, ...)."""
    from edgekit.runtimes import get_runtime

    cls = get_runtime(runtime)
    cls.ensure_available()
    path = Path(model)
    if not path.is_file():
        raise BadInputError(f"model file not found: {path}")
    nodes = _onnx_nodes(path)
    if cls.name.startswith("ort-"):
        return _ort_placement(cls, path, nodes, options)
    if cls.name == "openvino":
        return _openvino_placement(path, nodes, str(options.get("device") or "CPU").upper())
    raise BadInputError(f"inspect --runtime reads placements from ONNX Runtime and OpenVINO, not '{cls.name}'")


def _onnx_nodes(path: Path) -> list[tuple[str, str, str]]:
    from edgekit.graph.summary import load_model

    return [(node.name, node.op_type, node.domain) for node in load_model(path).graph.node]


# ---- ONNX Runtime ----------------------------------------------------------------------------
_PLACED = re.compile(r"(?:All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)")
_LISTED = re.compile(r"\]\s{2,}(\w+) \((.*)\)\s*$")
_NOT_REGISTERED = re.compile(r"([\w.]*):(\w+)\(-?\d+\) is not a registered function/op")
_NO_KERNEL = re.compile(r"Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'")


def _ort_placement(cls, path: Path, nodes, options: dict) -> PlacementReport:
    import onnxruntime as ort

    runtime = cls(path, **options)
    providers = runtime.execution_providers()
    session_options = ort.SessionOptions()
    session_options.log_severity_level = 0
    session_options.log_verbosity_level = 0
    with _captured_stderr() as log:
        try:
            ort.InferenceSession(str(path), session_options, providers=providers)
            error = None
        except Exception as exc:  # ORT raises Fail/InvalidGraph/NotImplemented for unloadable graphs
            error = first_line(exc)
        sys.stderr.flush()
        text = log.read_text(errors="replace")
    target = providers[0][0]
    if error is not None:
        findings = _ort_failures(error, nodes)
        return PlacementReport(cls.name, target, False, 0, {}, findings, note=f"session not created: {error[:300]}")
    placement, findings = _parse_ort_log(text, target)
    total = sum(placement.values())
    note = "" if placement else "ONNX Runtime logged no placement (verbose logging unavailable in this build)"
    return PlacementReport(cls.name, target, True, total, placement, tuple(findings), note)


def _parse_ort_log(text: str, target: str) -> tuple[dict[str, int], list[Finding]]:
    placement: dict[str, int] = {}
    findings: list[Finding] = []
    current = ""
    for line in text.splitlines():
        placed = _PLACED.search(line)
        if placed:
            current = placed.group(1)
            placement[current] = placement.get(current, 0) + int(placed.group(2))
            continue
        listed = _LISTED.search(line) if current else None
        if listed and "VerifyEachNodeIsAssignedToAnEp" in line:
            op, name = listed.groups()
            if op.startswith("Memcpy"):
                findings.append(Finding(name, op, current, HINT_MEMCPY))
            elif current != target:
                findings.append(Finding(name, op, current, HINT_FALLBACK.format(where=current, target=target)))
    return placement, findings


def _ort_failures(error: str, nodes) -> tuple[Finding, ...]:
    match = _NOT_REGISTERED.search(error)
    if match:
        domain, op = match.groups()
        hint = HINT_CUSTOM if domain not in ("", "ai.onnx") else HINT_MISSING
        return _nodes_of(nodes, op, domain, "unsupported", hint)
    match = _NO_KERNEL.search(error)
    if match:
        op, _, name = match.groups()
        return (Finding(name, op, "unsupported", HINT_MISSING),)
    return ()


def _nodes_of(nodes, op: str, domain: str, placed: str, hint: str) -> tuple[Finding, ...]:
    found = [Finding(name, op_type, placed, hint) for name, op_type, node_domain in nodes
             if op_type == op and (not domain or node_domain == domain)]
    return tuple(found) or (Finding("", op, placed, hint),)


@contextlib.contextmanager
def _captured_stderr() -> Iterator[Path]:
    """Send fd 2 (where ONNX Runtime's C++ logger writes) to a temporary file for the block."""
    sys.stderr.flush()
    handle, name = tempfile.mkstemp(prefix="edgekit-ort-log-", suffix=".txt")
    saved = os.dup(2)
    os.dup2(handle, 2)
    try:
        yield Path(name)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(handle)
        with contextlib.suppress(OSError):  # the caller reads the log inside the block
            os.unlink(name)


# ---- OpenVINO --------------------------------------------------------------------------------
_UNCONVERTED = re.compile(r"No conversion rule found for operations: ([^\n|]+)")
_FAILED_OP = re.compile(r"-- ([\w.]+)-(\d+) with a message")


def _openvino_placement(path: Path, nodes, device: str) -> PlacementReport:
    import openvino as ov

    core = ov.Core()
    try:
        model = core.read_model(str(path))
    except RuntimeError as exc:
        findings = _openvino_failures(str(exc), nodes)
        reason = "OpenVINO cannot convert " + (", ".join(sorted({f.op for f in findings})) or first_line(exc))
        return PlacementReport("openvino", device, False, 0, {}, findings, note=reason)
    try:
        supported = core.query_model(model, device)
    except RuntimeError as exc:
        raise BadInputError(f"OpenVINO cannot query {device}: "
                            f"{first_line(exc, skip=('Exception from', 'Check'))}") from None
    placement: dict[str, int] = {}
    findings = []
    for op in model.get_ordered_ops():
        where = supported.get(op.get_friendly_name())
        if where is None:
            findings.append(Finding(op.get_friendly_name(), op.get_type_name(), "unsupported",
                                    f"no {device} plugin takes this operation: try another device or replace it"))
        else:
            placement[where] = placement.get(where, 0) + 1
    return PlacementReport("openvino", device, True, len(model.get_ordered_ops()), placement, tuple(findings))


def _openvino_failures(message: str, nodes) -> tuple[Finding, ...]:
    ops: list[str] = []
    match = _UNCONVERTED.search(message)
    if match:
        ops += [item.strip() for item in match.group(1).split(",") if item.strip()]
    ops += [f"{op}-{version}" for op, version in _FAILED_OP.findall(message)]
    findings: list[Finding] = []
    for item in dict.fromkeys(ops):
        name = re.sub(r"-\d+$", "", item)
        domain, _, op = name.rpartition(".")
        hint = HINT_CUSTOM if domain else "OpenVINO's ONNX frontend has no conversion for this op: replace it " \
                                          "before export or run it on ONNX Runtime"
        findings.extend(_nodes_of(nodes, op, domain, "unsupported", hint))
    return tuple(findings)
