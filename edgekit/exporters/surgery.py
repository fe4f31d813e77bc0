"""Model surgery a foreign file needs before it deploys, each written to a new file that is kept
only when it computes what the original computes (same outputs on the same input):

- ``inputs``: make an input's dims fixed or dynamic (``name:1x3x640x640``, ``name:Nx3xHxW``);
- ``weights_to_initializers``: drop weights listed as graph inputs (old exporters did; runtimes then
  treat them as user inputs: ONNX Runtime ran such a file half as fast);
- ``output``: keep one output (the one holding a multi-output classifier's class scores), and the
  nodes it needs.

Workstation tier: onnx and ONNX Runtime.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.deps import require
from edgekit.errors import BadInputError, CheckFailedError

_DIMS = re.compile(r"^([^:]+):((?:[A-Za-z_][A-Za-z0-9_]*|\d+)(?:x(?:[A-Za-z_][A-Za-z0-9_]*|\d+))*)$")
MAX_DIM = 4096


@dataclass(frozen=True)
class Edits:
    """What to change; at least one must be asked for."""

    inputs: dict[str, tuple[int | str, ...]] = field(default_factory=dict)
    weights_to_initializers: bool = False
    output: str | None = None

    def __post_init__(self) -> None:
        if not (self.inputs or self.weights_to_initializers or self.output):
            raise BadInputError("nothing to change: give --input NAME:DIMS, --weights-to-initializers or --output NAME")


@dataclass(frozen=True)
class EditResult:
    path: Path
    changes: tuple[str, ...]
    max_abs_diff: float


def parse_dims(text: str) -> tuple[str, tuple[int | str, ...]]:
    """'images:1x3x640x640' → ('images', (1, 3, 640, 640)); names ('N', 'H') are dynamic dims."""
    match = _DIMS.match(text.strip())
    if not match:
        raise BadInputError(f"--input takes NAME:DIMS with dims joined by x, e.g. images:1x3x640x640 or "
                            f"images:Nx3x640x640, got '{text}'")
    dims: list[int | str] = []
    for part in match.group(2).split("x"):
        if part.isdigit():
            value = int(part)
            if not 1 <= value <= MAX_DIM:
                raise BadInputError(f"--input {text}: each fixed dim must be 1..{MAX_DIM}, got {value}")
            dims.append(value)
        else:
            dims.append(part)
    return match.group(1), tuple(dims)


def edit_model(source: str | Path, output: str | Path, edits: Edits) -> EditResult:
    """Apply ``edits`` to ``source`` and write ``output`` atomically, verified against the source."""
    onnx = require("onnx", "torch")
    from edgekit.fileio import atomic_path
    from edgekit.graph.summary import load_model

    source, output = Path(source), Path(output)
    model = load_model(source)
    if any(init.HasField("data_location") and init.data_location == 1 for init in model.graph.initializer):
        model = onnx.load(str(source))   # external data: loaded, then saved inside the new file
    changes = []
    if edits.weights_to_initializers:
        changes.append(_drop_weight_inputs(model))
    for name, dims in edits.inputs.items():
        changes.append(_set_dims(model, name, dims))
    if edits.output:
        changes.append(_keep_output(onnx, model, edits.output))
    with atomic_path(output) as temporary:
        onnx.save(model, str(temporary))
        worst = verify_edit(source, temporary, edits)
    return EditResult(output, tuple(changes), worst)


def _drop_weight_inputs(model) -> str:
    initializers = {init.name for init in model.graph.initializer}
    listed = [value for value in model.graph.input if value.name in initializers]
    if not listed:
        raise BadInputError("no weights are listed as graph inputs: nothing for --weights-to-initializers to do")
    kept = [value for value in model.graph.input if value.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    if model.ir_version < 4:   # initializers outside the inputs need IR 4
        model.ir_version = 4
    return f"{len(listed)} weights moved out of the graph inputs (initializers only)"


def _set_dims(model, name: str, dims: tuple[int | str, ...]) -> str:
    initializers = {init.name for init in model.graph.initializer}
    inputs = {value.name: value for value in model.graph.input if value.name not in initializers}
    if name not in inputs:
        raise BadInputError(f"the model has no input '{name}' (it has {', '.join(inputs) or 'none'})")
    shape = inputs[name].type.tensor_type.shape
    if len(shape.dim) != len(dims):
        raise BadInputError(f"input '{name}' has {len(shape.dim)} dims, --input gives {len(dims)}")
    before = "x".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim)
    for dim, value in zip(shape.dim, dims):
        if isinstance(value, int):
            dim.dim_value = value
        else:
            dim.dim_param = value
    # shapes recorded for the old dims would contradict the new ones: the runtime infers them again
    del model.graph.value_info[:]
    for value in model.graph.output:
        for dim in value.type.tensor_type.shape.dim:
            dim.ClearField("dim_value")
    return f"input {name}: {before} → {'x'.join(map(str, dims))}"


def _keep_output(onnx, model, name: str) -> str:
    outputs = [value.name for value in model.graph.output]
    if name not in outputs:
        raise BadInputError(f"the model has no output '{name}' (it has {', '.join(outputs)})")
    kept = [value for value in model.graph.output if value.name == name]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    needed, nodes = {name}, []
    for node in reversed(model.graph.node):
        if needed & set(node.output):
            nodes.append(node)
            needed |= set(node.input)
    del model.graph.node[:]
    model.graph.node.extend(reversed(nodes))
    used = {n for node in nodes for n in node.input}
    kept_init = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept_init)
    return f"kept output {name} (dropped {', '.join(o for o in outputs if o != name)})"


def verify_edit(source: Path, edited: Path, edits: Edits, atol: float = 1e-5) -> float:
    """Run both files on the same seeded input (dims the original takes) and compare the outputs both
    have; a difference or a file ONNX Runtime cannot run is an error and nothing is kept."""
    ort = require("onnxruntime", "ort")
    from edgekit.errors import first_line

    options = ort.SessionOptions()
    options.log_severity_level = 3
    sessions = []
    for path in (source, edited):
        try:
            sessions.append(ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]))
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise CheckFailedError(f"the edited model does not load in ONNX Runtime, nothing written: "
                                   f"{first_line(exc)}") from None
    feeds = _feeds(sessions[0], sessions[1], edits)
    try:
        before = dict(zip([o.name for o in sessions[0].get_outputs()], sessions[0].run(None, feeds)))
        after = dict(zip([o.name for o in sessions[1].get_outputs()], sessions[1].run(None, feeds)))
    except Exception as exc:  # a graph that hard-codes the old dims (a Reshape to batch 10) fails here
        raise CheckFailedError(f"the edited model does not run on the original's input, nothing written: "
                               f"{first_line(exc)}") from None
    worst = 0.0
    for name, value in after.items():
        expected = np.asarray(before[name], dtype=np.float64)
        actual = np.asarray(value, dtype=np.float64)
        if expected.shape != actual.shape:
            raise CheckFailedError(f"output {name} changed shape {expected.shape} → {actual.shape}, nothing written")
        difference = float(np.abs(expected - actual).max()) if expected.size else 0.0
        if not difference <= atol * max(1.0, float(np.abs(expected).max(initial=0.0))):
            raise CheckFailedError(f"output {name} changed by up to {difference:.3g}, nothing written")
        worst = max(worst, difference)
    return worst


def _feeds(original, edited, edits: Edits) -> dict[str, np.ndarray]:
    """One seeded input per graph input, at dims both files take: the original's fixed dims, 1 for its
    dynamic ones unless the edit fixed them."""
    from edgekit.runtimes.onnxruntime import ort_type

    rng = np.random.default_rng(0)
    edited_inputs = {spec.name for spec in edited.get_inputs()}
    feeds = {}
    for spec in original.get_inputs():
        if spec.name not in edited_inputs:
            continue
        wanted = edits.inputs.get(spec.name, ())
        dims = [d if isinstance(d, int) and d > 0 else (wanted[i] if i < len(wanted) and isinstance(wanted[i], int)
                                                      else 1) for i, d in enumerate(spec.shape)]
        dtype = ort_type(spec.type)[0]
        feeds[spec.name] = (rng.standard_normal(dims) if np.dtype(dtype).kind == "f"
                            else rng.integers(0, 2, dims)).astype(dtype)
    return feeds
