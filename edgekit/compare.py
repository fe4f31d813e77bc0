"""Run one model on several runtimes with the same inputs and compare their outputs, or two model
files (FP32 and INT8, before and after an optimization) on the same runtimes.

The reference is torch for a zoo name or a torch source (the weights and seed its export used),
saved golden outputs (``--load-outputs``), the first of two files, else the first runtime listed.
Verdicts by purpose: the same precision on both sides is judged by atol/rtol (``compare_fp32``); a
reduced-precision side (int8/fp16 in the metadata, or Q/DQ nodes) by top-1 agreement, cosine or box
match against a ``Budget``, and only on real inputs (``edgekit.compare_files``). Segmenters are judged
by their masks and embedders by per-sample cosine at either precision (``parity.dense_agreement``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.compare_files import Budget, compare_files, judge, precision_of, require_real_inputs
from edgekit.compare_runs import (
    RANDOM_NOTE,
    CompareInputs,
    CompareRecord,
    Judging,
    RuntimeParity,
    check_request,
    input_note,
    plan_inputs,
    run_all,
    runtime_classes,
    save,
)
from edgekit.errors import BadInputError

__all__ = ["RANDOM_NOTE", "CompareInputs", "CompareRecord", "Judging", "RuntimeParity", "compare"]


#: runtime ``precision`` options that compute below FP32: their outputs are judged against the
#: reduced-precision budget (top-1 agreement, cosine, masks or boxes), not FP32's tolerance
REDUCED_PRECISIONS = ("bf16", "f16", "fp16")


def reduced_runtimes(options: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """'openvino at precision=bf16' for each runtime whose options ask for a reduced precision."""
    return [f"{name} at precision={value}" for name, values in options.items()
            for value in [str(values.get("precision", "")).lower()] if value in REDUCED_PRECISIONS]


def compare(
    model: str | Path,
    runtimes: Sequence[str],
    inputs: str | Path | None = None,
    seed: int = 0,
    batch: int = 1,
    input_size: tuple[int, int] | None = None,
    weights: str | Path | None = None,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    min_cosine: float = 0.999,
    runtime_options: Mapping[str, Mapping[str, Any]] | None = None,
    io: CompareInputs | None = None,
    iou_threshold: float = 0.5,
    score_tol: float = 0.02,
    meta_changes: Mapping[str, Any] | None = None,
    candidate: str | Path | None = None,
    budget: Any = None,
) -> CompareRecord:
    """Run ``model`` (a model file, a zoo name or a user torch model) on each runtime and compare
    with the reference: torch for zoo/user models, saved golden outputs, else the first runtime.
    With ``candidate`` (a second model file), run both files on each runtime and compare them.

    ``inputs``: an .npz whose array names are the model's inputs (else ``io``'s loader, images or
    data set, else seeded random inputs); ``runtime_options``: per-runtime options by runtime name;
    ``meta_changes``: metadata written into the export of a zoo or torch model; ``budget``
    (``compare_files.Budget``): what a reduced-precision candidate must keep.
    """
    from edgekit.sources import parse_source, resolve_model

    io = io or CompareInputs(inputs=inputs)
    if inputs is not None and io.inputs is None:
        io = dataclasses.replace(io, inputs=inputs)
    judging = Judging(atol, rtol, min_cosine, iou_threshold, score_tol, budget or Budget())
    check_request(io, judging)
    if candidate is not None:
        return compare_files(model, candidate, runtimes, io, judging, seed, runtime_options or {})
    classes = runtime_classes(runtimes, runtime_options or {})
    source = parse_source(str(model))
    from_torch = source.kind == "zoo" or source.is_torch
    if not from_torch and io.load_outputs is None and len(classes) < 2:
        raise BadInputError("comparing a model file needs at least two runtimes (the first is the reference), "
                            "a second model file, or --load-outputs; a zoo or torch model is compared against torch")
    path = resolve_model(str(model), batch=batch, input_size=input_size, weights=weights, inputs=io.specs,
                         meta_changes=meta_changes)
    precision = precision_of(path) if io.load_outputs is not None else "fp32"
    if precision != "fp32":
        require_real_inputs(io, f"an {precision} model with saved outputs")
    given = runtime_options or {}
    options = {cls.name: dict(given.get(name, given.get(cls.name, {}))) for name, cls in zip(runtimes, classes)}
    reduced = reduced_runtimes(options)   # e.g. -O openvino.precision=bf16: judged like an INT8 file
    if reduced:
        require_real_inputs(io, f"{' and '.join(reduced)}")
    judging = dataclasses.replace(judging, budget=judging.budget if precision != "fp32" or reduced else None)
    from edgekit.meta import read_meta

    meta = read_meta(path)
    file_specs = bool(io.specs) and source.kind == "file"
    batches, make, where = plan_inputs(io, path, meta, batch, seed, file_specs)
    batches, outputs, described = run_all(classes, options, path, batches, make, where)
    first = outputs[classes[0].name]
    if io.load_outputs is not None:
        reference_name = f"saved outputs {Path(io.load_outputs).name}"
        reference = _golden(io.load_outputs, len(batches))
        candidates = [cls.name for cls in classes]
    elif from_torch:
        reference_name = "torch"
        from edgekit.torch_runner import TorchRunner

        runner = TorchRunner.for_source(source, weights, batch, input_size, io.specs)
        names = list(first[0])
        reference = [_named(runner.run(feeds), names) for feeds in batches]
        candidates = [cls.name for cls in classes]
    else:
        reference_name = classes[0].name
        reference = first
        candidates = [cls.name for cls in classes[1:]]
    results = tuple(judge(name, described[name], reference, outputs[name], meta, judging) for name in candidates)
    save(io, batches, reference)
    return CompareRecord(
        model=meta.model_name or path.stem, model_path=str(path), reference=reference_name,
        inputs={k: list(v.shape) for k, v in batches[0].items()}, input_source=where,
        atol=atol, rtol=rtol, min_cosine=min_cosine, results=results, batches=len(batches),
        precision=f"saved vs {precision}" if precision != "fp32" else f"fp32 vs {', '.join(reduced)}" if reduced
        else "fp32", budget=judging.budget,
        input_note=input_note(io, batches),
    )


def _golden(path: str | Path, count: int) -> list[dict[str, np.ndarray]]:
    from edgekit.inputs.golden import load_batches_npz

    golden = load_batches_npz(path, "golden outputs")
    if len(golden) != count:
        raise BadInputError(f"{Path(path).name} holds outputs of {len(golden)} batches, the inputs have {count}: "
                            "give the inputs saved with them (--load-inputs)")
    return golden


def _named(result: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """Torch's outputs under the runtime's output names (a zoo module names its one output 'output')."""
    return dict(zip(names, result.values())) if len(result) == len(names) else result
