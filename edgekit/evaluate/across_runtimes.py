"""One model, one dataset split, several runtimes — and the torch model it came from.

The dataset defaults to the one named in the model's metadata (``extra.source``), so a
model trained by ``edgekit train`` is evaluated on its own test split without repeating
how it was made. The torch figure comes from the recipe's registered reference evaluator, or,
for a torch source (``file.py:factory``, TorchScript, .pt2), from the source's module itself.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.datasets import Split, load_split
from edgekit.datasets.fit import misfit_reason
from edgekit.errors import BadInputError, RuntimeUnavailableError, first_line
from edgekit.evaluate.runner import EvalRecord, evaluate
from edgekit.inputs.specs import InputSpec
from edgekit.meta import ModelMeta, read_meta
from edgekit.meta_records import source_of
from edgekit.tasks.preprocess import FUSED_KEY


@dataclass(frozen=True)
class Comparison:
    """Records of one model on several runtimes, the torch reference, and what was skipped why."""

    model: str
    dataset: str
    split: str
    seed: int
    records: tuple[EvalRecord, ...]
    reference: dict[str, float] | None
    reference_note: str
    skipped: dict[str, str] = field(default_factory=dict)
    reference_kind: str = "checkpoint"  # "module": a torch source's own; "zoo module": rebuilt as exported

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "dataset": self.dataset, "split": self.split, "seed": self.seed,
                "records": [r.to_dict() for r in self.records], "reference": self.reference,
                "reference_note": self.reference_note, "skipped": dict(self.skipped)}


def resolve_runtimes(spec: str, suffix: str = ".onnx") -> tuple[list[str], dict[str, str]]:
    """'all' → every available FP32 runtime that loads ``suffix`` files (others listed as skipped);
    'a,b' → exactly those."""
    from edgekit.runtimes import RUNTIMES, get_runtime
    from edgekit.runtimes.base import unavailable_message

    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise BadInputError("no runtime given (e.g. --runtime ort-cpu, --runtime ort-cpu,openvino or --runtime all)")
    chosen: list[str] = []
    skipped: dict[str, str] = {}
    everything = names == ["all"]
    for name in RUNTIMES.names() if everything else names:
        runtime = get_runtime(name)
        if runtime.name in chosen:
            continue
        if everything and suffix.lower() not in runtime.suffixes:
            skipped[runtime.name] = f"cannot load {suffix} files"
            continue
        if getattr(runtime, "precision", "fp32") != "fp32" and everything:
            skipped[runtime.name] = f"not an FP32 runtime ({runtime.precision})"
            continue
        availability = runtime.probe()
        if not availability.available:
            if not everything:
                raise RuntimeUnavailableError(unavailable_message(availability))
            skipped[runtime.name] = availability.reason or "unavailable"
            continue
        chosen.append(runtime.name)
    if not chosen:
        raise RuntimeUnavailableError(f"no runtime is available here "
                                      f"({'; '.join(f'{k}: {v}' for k, v in skipped.items())})")
    return chosen, skipped


def dataset_for(meta: ModelMeta, data: str | None, seed: int | None) -> tuple[str, dict[str, Any], int]:
    """The dataset spec, its options and the split seed: the user's, else the model's recorded source."""
    source = source_of(meta)
    recorded = source.dataset
    if data is None and not recorded:
        raise BadInputError("this model does not record its dataset: give one with --data (digits, a folder, a .json)")
    spec = data or recorded
    options = dict(source.dataset_options) if spec == recorded else {}
    split_seed = seed if seed is not None else source.split_seed(0) if spec == recorded else 0
    return spec, options, split_seed


def reference_metrics(
    meta: ModelMeta, split: Split, batch_size: int, check_only: bool = False, weights: str | Path | None = None,
) -> tuple[dict[str, float] | None, str]:
    """The torch model's metrics when the metadata names a recipe and an existing checkpoint, or a zoo
    model with its random seed (or ``weights``, the state_dict it was exported with).

    ``check_only``: compute nothing; the note is "" when the reference can be computed, else why not.
    """
    if FUSED_KEY in meta.extra:
        return None, "the graph starts with fused pre-processing (frames in); torch runs the file it was fused from"
    source = source_of(meta)
    if source.zoo:
        return _zoo_reference(source.raw, meta, split, batch_size, check_only, weights)
    recipe, checkpoint = source.recipe, source.checkpoint
    if not recipe or not checkpoint:
        return None, "the model records no training checkpoint"
    from edgekit.train.base import REFERENCE_EVALUATORS

    if recipe not in REFERENCE_EVALUATORS:
        return None, f"recipe '{recipe}' has no reference evaluator"
    if not Path(checkpoint).is_file():
        return None, f"checkpoint {checkpoint} is not here"
    if not torch_installed():
        return None, "torch is not installed"
    if check_only:
        return None, ""
    return REFERENCE_EVALUATORS.get(recipe)(checkpoint, meta, split, batch_size), f"torch, {checkpoint}"


def compare_runtimes(
    model: str | Path, runtimes: str = "ort-cpu", data: str | None = None, split: str = "test",
    seed: int | None = None, batch_size: int = 32, runtime_options: dict[str, Any] | None = None,
    reference: bool | None = None, weights: str | Path | None = None, inputs: Sequence[InputSpec] = (),
    meta_changes: Mapping[str, Any] | None = None,
) -> Comparison:
    """Evaluate ``model`` on each runtime of ``runtimes`` (a name, 'a,b' or 'all') on the same split.

    ``model``: a model file, a zoo name or a torch source (exported to the cache with ``weights``,
    ``inputs`` and ``meta_changes``; the source's module is then the torch reference).
    ``reference``: None shows the torch figure when it can be computed; True requires it (a
    BadInputError says why it cannot be); False skips it.
    """
    from edgekit.sources import parse_source, resolve_model

    if batch_size < 1:
        raise BadInputError(f"batch size must be at least 1, got {batch_size}")
    if weights is not None and not Path(weights).is_file():
        raise BadInputError(f"weights file not found: {weights}")
    source = parse_source(str(model))  # also: "model file not found"
    as_file = source.kind == "file"   # its --weights only rebuild the zoo module it was exported from
    path = resolve_model(str(model), dynamic_batch=not as_file, weights=None if as_file else weights, inputs=inputs,
                         meta_changes=meta_changes)
    meta = read_meta(path)
    if as_file and weights is not None and not source_of(meta).zoo:
        raise BadInputError(f"--weights with a model file are the state_dict of the zoo model it was exported "
                            f"from (for the torch figure); {path.name} was not exported from the zoo")
    names, skipped = resolve_runtimes(runtimes, path.suffix)
    spec, options, split_seed = dataset_for(meta, data, seed)
    dataset = load_split(spec, split, split_seed, for_task=meta.task, **options)
    misfit = misfit_reason(meta, dataset.task, dataset.labels, spec)
    if misfit:  # the rule every accuracy figure obeys (the matrix's too): no figure on data of other classes
        raise BadInputError(f"no accuracy for {meta.model_name or path.stem} on {spec}: {misfit}")
    torch_figure = _torch_figure(source, weights, inputs)
    if reference:  # asked for explicitly: fail before the runtimes are timed when it cannot be had
        _, why = torch_figure(meta, dataset, batch_size, check_only=True)
        if why:
            raise BadInputError(f"--torch: no torch reference for {source.label}: {why}")
    records = tuple(evaluate(path, dataset, name, batch_size, runtime_options, dataset=spec) for name in names)
    metrics, note = (None, "not asked for") if reference is False else _figure(torch_figure, meta, dataset, batch_size,
                                                                               required=bool(reference))
    records = tuple(dataclasses.replace(r, reference=metrics) for r in records)
    kind = "module" if source.is_torch else "zoo module" if source_of(meta).zoo else "checkpoint"
    return Comparison(meta.model_name or path.stem, spec, split, split_seed, records, metrics, note, skipped, kind)


def _figure(torch_figure, meta: ModelMeta, split: Split, batch_size: int, required: bool):
    """The torch figure; when it was not asked for, a failure is its note rather than the command's end."""
    try:
        return torch_figure(meta, split, batch_size)
    except Exception as exc:  # noqa: BLE001 - torch's own errors too: the runtimes' figures stand without it
        if required:
            raise BadInputError(f"--torch: the torch reference failed: {first_line(exc)}") from None
        return None, f"the torch reference failed: {first_line(exc)}"


def _zoo_reference(source: Mapping[str, Any], meta: ModelMeta, split: Split, batch_size: int, check_only: bool,
                   weights: str | Path | None) -> tuple[dict[str, float] | None, str]:
    """The zoo module the file was exported from, rebuilt with the same seed or weights file."""
    from edgekit.evaluate.torch_source import zoo_rebuild

    rebuild = zoo_rebuild(source, weights)
    if isinstance(rebuild, str):
        return None, rebuild
    if not torch_installed():
        return None, "torch is not installed"
    if check_only:
        return None, ""
    from edgekit.evaluate.torch_source import zoo_metrics

    return zoo_metrics(rebuild, meta, split, batch_size), f"torch, {rebuild.label}"


def _torch_figure(source, weights, inputs) -> Callable[..., tuple[dict[str, float] | None, str]]:
    """How the torch figure is had: the torch source's own module, else the recorded zoo model or
    training checkpoint."""
    if not source.is_torch:
        return functools.partial(reference_metrics, weights=weights)

    def from_source(meta: ModelMeta, split: Split, batch_size: int, check_only: bool = False):
        if not torch_installed():
            return None, "torch is not installed"
        if check_only:
            return None, ""
        from edgekit.evaluate.torch_source import source_metrics

        return source_metrics(source, meta, split, batch_size, True, weights, inputs), f"torch, {source.label}"

    return from_source


def torch_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except ImportError:
        return False
