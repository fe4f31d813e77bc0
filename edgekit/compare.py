"""Run one model on several runtimes with the same inputs and compare their outputs.

The reference is torch when the model is a zoo name (the same seeded weights the export used),
otherwise the first runtime listed. Numbers come from edgekit.parity.compare_outputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import BadInputError
from edgekit.parity import BoxAgreement, ParityReport, check_tolerance, compare_fp32, match_boxes


@dataclass(frozen=True)
class RuntimeParity:
    """How one runtime's outputs compare with the reference's (detectors: box-matched too)."""

    runtime: str
    version: str
    device: str
    parity: ParityReport
    boxes: BoxAgreement | None = None

    @property
    def passed(self) -> bool:
        """Detectors pass on matched boxes (raw tensors may differ in length and order)."""
        return self.boxes.passed if self.boxes is not None else self.parity.passed


@dataclass(frozen=True)
class CompareRecord:
    """Everything ``edgekit compare`` found; the table and the JSON read this."""

    model: str
    model_path: str
    reference: str
    inputs: dict[str, list[int]]
    input_source: str
    atol: float
    rtol: float
    min_cosine: float
    results: tuple[RuntimeParity, ...]
    batches: int = 1

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    @property
    def failed_runtimes(self) -> list[str]:
        return [result.runtime for result in self.results if not result.passed]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["passed"] = self.passed
        for result, row in zip(self.results, data["results"]):
            row["passed"] = result.passed
            if result.boxes is not None:
                row["boxes"]["passed"] = result.boxes.passed
        return data


@dataclass(frozen=True)
class CompareInputs:
    """Where the inputs come from and where inputs/outputs are saved or loaded (all optional)."""

    inputs: str | Path | None = None  # .npz of feeds (one batch, or several as index:name)
    data_loader: str | None = None  # file.py:function yielding feed dicts
    specs: tuple = ()  # InputSpec for exporting a user model
    save_inputs: str | Path | None = None
    save_outputs: str | Path | None = None
    load_outputs: str | Path | None = None  # golden outputs: the reference instead of a runtime


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
) -> CompareRecord:
    """Run ``model`` (a model file, a zoo name or a user torch model) on each runtime and compare
    with the reference: torch for zoo/user models, saved golden outputs, else the first runtime.

    ``inputs``: an .npz whose array names are the model's inputs (else ``io``'s loader, else seeded
    random inputs); ``runtime_options``: per-runtime options by runtime name; ``meta_changes``:
    metadata written into the export of a zoo or torch model.
    """
    from edgekit.sources import parse_source, resolve_model

    io = io or CompareInputs(inputs=inputs)
    if inputs is not None and io.inputs is None:
        io = dataclasses.replace(io, inputs=inputs)
    if io.inputs is not None and io.data_loader is not None:
        raise BadInputError("give either --load-inputs/--inputs or --data-loader, not both")
    check_tolerance(atol, rtol, min_cosine)
    if not 0 < iou_threshold <= 1 or not 0 <= score_tol < 1:
        raise BadInputError(f"--iou must be in (0, 1] and --score-tol in [0, 1), got {iou_threshold}, {score_tol}")
    classes = _runtime_classes(runtimes, runtime_options or {})
    source = parse_source(str(model))
    from_torch = source.kind == "zoo" or source.is_torch
    if not from_torch and io.load_outputs is None and len(classes) < 2:
        raise BadInputError("comparing a model file needs at least two runtimes (the first is the reference) "
                            "or --load-outputs; a zoo or torch model is compared against torch")
    path = resolve_model(str(model), batch=batch, input_size=input_size, weights=weights, inputs=io.specs,
                         meta_changes=meta_changes)
    given = runtime_options or {}
    options = {cls.name: dict(given.get(name, given.get(cls.name, {}))) for name, cls in zip(runtimes, classes)}
    batches = _given_batches(io)
    if batches is None and io.specs and source.kind == "file":  # --input shapes a file's random inputs
        from edgekit.inputs.specs import sample_feeds

        batches = [sample_feeds(io.specs, seed)]
    batches, outputs, described = _run_all(classes, options, path, batches, io, batch, seed)
    first = outputs[classes[0].name]
    if io.load_outputs is not None:
        reference_name = f"saved outputs {Path(io.load_outputs).name}"
        reference = _golden(io.load_outputs, len(batches))
        candidates = [cls.name for cls in classes]
    elif from_torch:
        reference_name = "torch"
        run_torch = _torch_runner(source, weights, batch, input_size, io.specs)
        reference = [run_torch(feeds, list(first[0])) for feeds in batches]
        candidates = [cls.name for cls in classes]
    else:
        reference_name = classes[0].name
        reference = first
        candidates = [cls.name for cls in classes[1:]]
    _save(io, batches, reference)
    from edgekit.meta import read_meta

    meta = read_meta(path)
    results = tuple(
        RuntimeParity(name, *described[name],
                      compare_fp32(_merge(reference), _merge(outputs[name]), atol, rtol, min_cosine),
                      box_agreement(meta, reference, outputs[name], iou_threshold, score_tol))
        for name in candidates
    )
    return CompareRecord(
        model=meta.model_name or path.stem, model_path=str(path), reference=reference_name,
        inputs={k: list(v.shape) for k, v in batches[0].items()}, input_source=_describe_source(io, seed),
        atol=atol, rtol=rtol, min_cosine=min_cosine, results=results, batches=len(batches),
    )


def _run_all(classes, options, path: Path, batches, io: CompareInputs, batch: int, seed: int):
    """Every runtime on every batch: (batches, outputs by runtime, (version, device) by runtime)."""
    outputs: dict[str, list[dict[str, np.ndarray]]] = {}
    described: dict[str, tuple[str, str]] = {}
    for cls in classes:
        with get_runtime_class(cls.name)(path, **options[cls.name]) as runtime:
            if batches is None:
                batches = [_random_inputs(runtime, path, batch, seed)]
            else:
                check_feeds(batches, runtime.inputs, _describe_source(io))
            outputs[cls.name] = [runtime.run(feeds) for feeds in batches]
            availability = cls.probe()
            device = runtime.describe().get("device_name") or (availability.devices or ("",))[0]
            described[cls.name] = (availability.version, str(device))
    return batches, outputs, described


def get_runtime_class(name: str):
    from edgekit.runtimes import get_runtime

    return get_runtime(name)


def _given_batches(io: CompareInputs) -> list[dict[str, np.ndarray]] | None:
    if io.inputs is not None:
        from edgekit.inputs.golden import load_batches_npz

        return _finite(load_batches_npz(io.inputs, "inputs"), Path(io.inputs).name)
    if io.data_loader is not None:
        from edgekit.inputs.loader import load_batches

        return _finite(load_batches(io.data_loader), f"data loader {io.data_loader}")
    return None


def _finite(batches: list[dict[str, np.ndarray]], source: str) -> list[dict[str, np.ndarray]]:
    """NaN or infinite inputs make every comparison NaN: refuse them where they come from."""
    for batch in batches:
        for name, array in batch.items():
            if isinstance(array, np.ndarray) and array.dtype.kind in "fc" and not np.isfinite(array).all():
                raise BadInputError(f"{source}: input '{name}' holds NaN or infinite values; "
                                    "outputs cannot be compared")
    return batches


def _describe_source(io: CompareInputs, seed: int = 0) -> str:
    if io.inputs is not None:
        return str(io.inputs)
    if io.data_loader is not None:
        return f"data loader {io.data_loader}"
    return f"random(seed={seed})"


def check_feeds(batches, specs, source: str):
    from edgekit.inputs.loader import check_feeds as check

    return check(batches, specs, source)


def _golden(path: str | Path, count: int) -> list[dict[str, np.ndarray]]:
    from edgekit.inputs.golden import load_batches_npz

    golden = load_batches_npz(path, "golden outputs")
    if len(golden) != count:
        raise BadInputError(f"{Path(path).name} holds outputs of {len(golden)} batches, the inputs have {count}: "
                            "give the inputs saved with them (--load-inputs)")
    return golden


def _save(io: CompareInputs, batches, reference) -> None:
    from edgekit.inputs.golden import save_batches

    if io.save_inputs is not None:
        save_batches(io.save_inputs, batches)
    if io.save_outputs is not None:
        save_batches(io.save_outputs, reference)


def _merge(batches: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One dict of outputs over every batch (concatenated along the batch axis where shapes allow)."""
    if len(batches) == 1:
        return dict(batches[0])
    merged = {}
    for name in batches[0]:
        arrays = [np.asarray(b[name]) for b in batches if name in b]
        if len(arrays) == len(batches) and all(a.ndim and a.shape[1:] == arrays[0].shape[1:] for a in arrays):
            merged[name] = np.concatenate(arrays, axis=0)
        else:
            merged[name] = np.concatenate([a.ravel() for a in arrays])
    return merged


def box_agreement(meta, reference, candidate, iou_threshold: float, score_tol: float) -> BoxAgreement | None:
    """Box-matched agreement when the model is a detector with a known decoder."""
    if meta.task != "detection":
        return None
    from edgekit.tasks.detection import DetectionTask
    from edgekit.tasks.preprocess import ImageTransform

    task = DetectionTask()
    _, settings = task.decoder(meta)
    height, width = meta.input_size
    ref_dets, cand_dets = [], []
    for ref, cand in zip(reference, candidate, strict=True):
        images = _image_count(ref)
        identity = [ImageTransform(1.0, 1.0, 0.0, 0.0, (height, width))] * images
        ref_dets += task.postprocess(ref, meta, identity)
        cand_dets += task.postprocess(cand, meta, identity)
    return match_boxes(ref_dets, cand_dets, settings["score_threshold"], iou_threshold, score_tol)


def _image_count(outputs: Mapping[str, np.ndarray]) -> int:
    """Images in one batch of detector outputs (a batch-less output, e.g. torchvision's, is one)."""
    shapes = [np.asarray(a).shape for a in outputs.values()]
    return 1 if any(len(s) <= 2 for s in shapes) else int(shapes[0][0])


def _runtime_classes(names: Sequence[str], runtime_options: Mapping[str, Mapping[str, Any]]) -> list:
    """Resolve and probe every runtime before any (possibly slow) export; options checked too."""
    from edgekit.runtimes import get_runtime
    if not names:
        raise BadInputError("no runtimes to compare: give --runtimes, e.g. ort-cpu,openvino")
    classes = [get_runtime(name) for name in names]
    canonical = [cls.name for cls in classes]
    duplicates = sorted({name for name in canonical if canonical.count(name) > 1})
    if duplicates:
        raise BadInputError(f"runtime listed twice: {', '.join(duplicates)}")
    unknown = sorted(set(runtime_options) - set(names) - set(canonical))
    if unknown:
        raise BadInputError(f"options given for runtime {', '.join(unknown)}, which is not compared "
                            f"(comparing {', '.join(names)})")
    for name, cls in zip(names, classes):
        cls.make_options(**dict(runtime_options.get(name, runtime_options.get(cls.name, {}))))
        cls.ensure_available()
    return classes


def _random_inputs(runtime, path: Path, batch: int, seed: int) -> dict[str, np.ndarray]:
    from edgekit.bench.inputs import random_feeds
    from edgekit.meta import read_meta

    return random_feeds(runtime.inputs, batch, read_meta(path), seed)


def _torch_runner(source, weights, batch, input_size, specs):
    """A function feeds, output names → torch outputs, for a zoo or user model (built once)."""
    if source.kind == "zoo":
        return lambda feeds, names: torch_reference(source.location, feeds, names, weights)
    from edgekit.exporters.config import ExportConfig
    from edgekit.exporters.user_module import load_source, torch_outputs

    loaded = load_source(source, ExportConfig(batch=batch, input_size=input_size), weights, specs)

    def run(feeds, names):
        result = torch_outputs(loaded, feeds)
        return dict(zip(names, result.values())) if len(result) == len(names) else result

    return run


def torch_reference(
    name: str, feeds: Mapping[str, np.ndarray], output_names: list[str], weights: str | Path | None = None
) -> dict[str, np.ndarray]:
    """Outputs of zoo model ``name`` in torch, built with the weights/seed its export used."""
    from edgekit.deps import require
    from edgekit.exporters.config import ExportConfig
    from edgekit.zoo.build import build_model

    from edgekit.evaluate.torch_source import module_outputs

    require("torch", "torch")
    return module_outputs(build_model(name, weights=weights, seed=ExportConfig().seed), feeds, output_names)
