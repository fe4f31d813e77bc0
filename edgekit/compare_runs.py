"""What a comparison is made of: its records (RuntimeParity, CompareRecord), where its inputs
come from (CompareInputs: saved, a loader, real images, a data set, seeded noise), its tolerances
(Judging), and running the same inputs on several runtimes. ``edgekit.compare`` (one model across
runtimes or against torch) and ``edgekit.compare_files`` (two files) build on it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import BadInputError
from edgekit.inputs.images import DEFAULT_SAMPLES
from edgekit.parity import BoxAgreement, ParityReport, check_tolerance

RANDOM_NOTE = "random N(0,1) inputs: agreement on noise is not accuracy"


@dataclass(frozen=True)
class RuntimeParity:
    """How one runtime's outputs compare with the reference's (detectors: box-matched too; segmenters
    and embedders: ``dense``, their masks or per-sample cosine; a reduced-precision candidate: against
    the budget)."""

    runtime: str
    version: str
    device: str
    parity: ParityReport
    boxes: BoxAgreement | None = None
    budget: Any = None  # edgekit.compare_files.BudgetVerdict when the precisions differ
    dense: Any = None  # edgekit.parity.dense_agreement: MaskAgreement or EmbeddingAgreement

    @property
    def passed(self) -> bool:
        """Detectors pass on matched boxes (raw tensors may differ in length and order) when some box
        scored above the threshold, segmenters and embedders on masks or cosine when they compare
        something, else on the raw tensors; reduced precision on the budget."""
        return self._verdict.passed

    def summary(self) -> str:
        return self._verdict.summary()

    @property
    def _verdict(self):
        if self.budget is not None:
            return self.budget
        if self.boxes is not None and not self.boxes.nothing_to_compare:
            return self.boxes
        if self.dense is not None and not self.dense.nothing_to_compare:
            return self.dense
        return self.parity


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
    candidate_path: str = ""  # the second model file, when two are compared
    precision: str = "fp32"  # "fp32", or "fp32 vs int8" when the sides differ
    budget: Any = None  # edgekit.compare_files.Budget: set when judged by budget, not tolerance
    input_note: str = ""  # why agreement on these inputs says little (random noise, constant inputs)

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
            row["summary"] = result.summary()
            if result.boxes is not None:
                row["boxes"]["passed"] = result.boxes.passed
            if result.dense is not None:
                row["dense"].update(passed=result.dense.passed, kind=result.dense.kind)
            if result.budget is not None:
                row["budget"]["passed"] = result.budget.passed
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
    images: str | Path | None = None  # a folder of images, through the model's preprocessing
    data: str | None = None  # a data set (digits, shapes, a folder of class folders...): its test split
    samples: int = DEFAULT_SAMPLES  # images taken from ``images`` or ``data``

    @property
    def real(self) -> bool:
        """Inputs the user gave (random N(0,1) noise otherwise)."""
        return any(x is not None for x in (self.inputs, self.data_loader, self.images, self.data))


@dataclass(frozen=True)
class Judging:
    """How candidates are judged: tolerances for the same precision, ``budget`` when it differs."""

    atol: float = 1e-4
    rtol: float = 1e-3
    min_cosine: float = 0.999
    iou_threshold: float = 0.5
    score_tol: float = 0.02
    budget: Any = None  # edgekit.compare_files.Budget: the precisions differ


def check_request(io: CompareInputs, judging: Judging) -> None:
    """Refuse contradictory input options and impossible tolerances before any (slow) work."""
    given = [flag for flag, value in (("--inputs", io.inputs), ("--data-loader", io.data_loader),
                                      ("--images", io.images), ("--data", io.data)) if value is not None]
    if len(given) > 1:
        raise BadInputError(f"give one source of inputs, not {' and '.join(given)}")
    if io.images is not None and not Path(io.images).is_dir():
        raise BadInputError(f"--images: {'not a folder' if Path(io.images).exists() else 'folder not found'}: "
                            f"{io.images}")
    if io.samples < 1:
        raise BadInputError(f"--samples must be at least 1, got {io.samples}")
    check_tolerance(judging.atol, judging.rtol, judging.min_cosine)
    if not 0 < judging.iou_threshold <= 1 or not 0 <= judging.score_tol < 1:
        raise BadInputError(f"--iou must be in (0, 1] and --score-tol in [0, 1), got {judging.iou_threshold}, "
                            f"{judging.score_tol}")


def input_note(io: CompareInputs, batches: Sequence[Mapping[str, np.ndarray]]) -> str:
    """Why agreement on these inputs says little: random noise, or an input that is constant."""
    from edgekit.parity import constant_input_reason

    constant = next((reason for reason in map(constant_input_reason, batches) if reason), "")
    return constant or ("" if io.real else RANDOM_NOTE)


def run_all(classes, options, path: Path, batches, make: Callable | None, source: str):
    """Every runtime on every batch: (batches, outputs by runtime, (version, device) by runtime).
    Without ``batches``, ``make(runtime)`` makes them on the first runtime."""
    outputs: dict[str, list[dict[str, np.ndarray]]] = {}
    described: dict[str, tuple[str, str]] = {}
    for cls in classes:
        with get_runtime_class(cls.name)(path, **options[cls.name]) as runtime:
            if batches is None:
                batches = make(runtime)
            check_feeds(batches, runtime.inputs, source)
            outputs[cls.name] = [runtime.run(feeds) for feeds in batches]
            availability = cls.probe()
            device = runtime.describe().get("device_name") or (availability.devices or ("",))[0]
            described[cls.name] = (availability.version, str(device))
    return batches, outputs, described


def get_runtime_class(name: str):
    from edgekit.runtimes import get_runtime

    return get_runtime(name)


def plan_inputs(io: CompareInputs, path: Path, meta, batch: int, seed: int, file_specs: bool = False):
    """(the batches given, or None; runtime → batches to make when none were; where they come from).
    Images and data sets are read here, once, and prepared by the model's preprocessing; random
    inputs are seeded N(0,1) (shaped by ``--input`` specs when ``file_specs``)."""
    if io.inputs is not None:
        from edgekit.inputs.golden import load_batches_npz

        return _finite(load_batches_npz(io.inputs, "inputs"), Path(io.inputs).name), None, str(io.inputs)
    if io.data_loader is not None:
        from edgekit.inputs.loader import load_batches

        where = f"data loader {io.data_loader}"
        return _finite(load_batches(io.data_loader), where), None, where
    if io.images is not None or io.data is not None:
        from edgekit.inputs.images import image_feeds, load_images

        images, where = load_images(io.images, io.data, meta, io.samples, seed)
        return None, lambda runtime: image_feeds(images, meta, runtime.inputs), where
    if file_specs:  # --input shapes a file's random inputs
        from edgekit.inputs.specs import sample_feeds

        return [sample_feeds(io.specs, seed)], None, f"random(seed={seed})"
    return None, lambda runtime: [_random_inputs(runtime, path, batch, seed)], f"random(seed={seed})"


def _finite(batches: list[dict[str, np.ndarray]], source: str) -> list[dict[str, np.ndarray]]:
    """NaN or infinite inputs make every comparison NaN: refuse them where they come from."""
    for batch in batches:
        for name, array in batch.items():
            if isinstance(array, np.ndarray) and array.dtype.kind in "fc" and not np.isfinite(array).all():
                raise BadInputError(f"{source}: input '{name}' holds NaN or infinite values; "
                                    "outputs cannot be compared")
    return batches


def check_feeds(batches, specs, source: str):
    from edgekit.inputs.loader import check_feeds as check

    return check(batches, specs, source)


def save(io: CompareInputs, batches, reference) -> None:
    from edgekit.inputs.golden import save_batches

    if io.save_inputs is not None:
        save_batches(io.save_inputs, batches)
    if io.save_outputs is not None:
        save_batches(io.save_outputs, reference)


def runtime_classes(names: Sequence[str], runtime_options: Mapping[str, Mapping[str, Any]]) -> list:
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
