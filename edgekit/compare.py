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
from edgekit.parity import ParityReport, check_tolerance, compare_outputs


@dataclass(frozen=True)
class RuntimeParity:
    """How one runtime's outputs compare with the reference's."""

    runtime: str
    version: str
    device: str
    parity: ParityReport

    @property
    def passed(self) -> bool:
        return self.parity.passed


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
        return data


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
) -> CompareRecord:
    """Run ``model`` (an .onnx file or a zoo name) on each runtime and compare with the reference.

    ``inputs``: an .npz whose array names are the model's inputs (else seeded random inputs);
    ``runtime_options``: per-runtime options by runtime name.
    """
    from edgekit.runtimes import get_runtime
    from edgekit.sources import resolve_model

    check_tolerance(atol, rtol, min_cosine)
    classes = _runtime_classes(runtimes, runtime_options or {})
    is_zoo = not Path(str(model)).is_file()
    if not is_zoo and len(classes) < 2:
        raise BadInputError("comparing an .onnx file needs at least two runtimes (the first is the reference); "
                            "a zoo model name is compared against torch")
    path = resolve_model(str(model), batch=batch, input_size=input_size, weights=weights)
    given = runtime_options or {}
    options = {cls.name: dict(given.get(name, given.get(cls.name, {}))) for name, cls in zip(runtimes, classes)}
    outputs: dict[str, dict[str, np.ndarray]] = {}
    described: dict[str, tuple[str, str]] = {}
    feeds: dict[str, np.ndarray] | None = None
    source = str(inputs) if inputs else f"random(seed={seed})"
    for cls in classes:
        with get_runtime(cls.name)(path, **options[cls.name]) as runtime:
            if feeds is None:
                feeds = load_inputs(inputs, runtime.inputs) if inputs else _random_inputs(runtime, path, batch, seed)
            outputs[cls.name] = runtime.run(feeds)
            availability = cls.probe()
            device = runtime.describe().get("device_name") or (availability.devices or ("",))[0]
            described[cls.name] = (availability.version, str(device))
    assert feeds is not None
    if is_zoo:
        reference_name = "torch"
        reference = torch_reference(str(model), feeds, list(outputs[classes[0].name]), weights)
        candidates = [cls.name for cls in classes]
    else:
        reference_name = classes[0].name
        reference = outputs[reference_name]
        candidates = [cls.name for cls in classes[1:]]
    results = tuple(
        RuntimeParity(name, *described[name], compare_outputs(reference, outputs[name], atol, rtol, min_cosine))
        for name in candidates
    )
    from edgekit.meta import read_meta

    return CompareRecord(
        model=read_meta(path).model_name or path.stem, model_path=str(path), reference=reference_name,
        inputs={k: list(v.shape) for k, v in feeds.items()}, input_source=source,
        atol=atol, rtol=rtol, min_cosine=min_cosine, results=results,
    )


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


def load_inputs(path: str | Path, specs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Arrays from an .npz whose names must be exactly the model's inputs."""
    from edgekit.fileio import read_npz

    path = Path(path)
    arrays = read_npz(path, "inputs")
    if set(arrays) != set(specs):
        expected = "; ".join(str(spec) for spec in specs.values())
        raise BadInputError(f"{path.name} holds arrays {sorted(arrays)}, but the model expects inputs {expected}")
    for name, array in arrays.items():
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            raise BadInputError(f"{path.name}: input '{name}' holds NaN or infinite values; outputs cannot be compared")
    return arrays


def _random_inputs(runtime, path: Path, batch: int, seed: int) -> dict[str, np.ndarray]:
    from edgekit.bench.inputs import random_feeds
    from edgekit.meta import read_meta

    return random_feeds(runtime.inputs, batch, read_meta(path), seed)


def torch_reference(
    name: str, feeds: Mapping[str, np.ndarray], output_names: list[str], weights: str | Path | None = None
) -> dict[str, np.ndarray]:
    """Outputs of zoo model ``name`` in torch, built with the weights/seed its export used."""
    from edgekit.deps import require
    from edgekit.exporters.config import ExportConfig
    from edgekit.zoo.build import build_model

    torch = require("torch", "torch")
    model = build_model(name, weights=weights, seed=ExportConfig().seed)
    tensors = [torch.from_numpy(np.ascontiguousarray(array)) for array in feeds.values()]
    with torch.no_grad():
        result = model(*tensors)
    results = list(result) if isinstance(result, (tuple, list)) else [result]
    return {out: tensor.numpy() for out, tensor in zip(output_names, results)}
