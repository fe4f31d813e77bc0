"""User torch models → verified ONNX: a factory returning an ``nn.Module``, a TorchScript file or a
``torch.export`` program, with several inputs/outputs and dynamic dims from ``--input`` specs."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import __version__
from edgekit.deps import require
from edgekit.errors import BadInputError, first_line
from edgekit.exporters.config import ExportConfig, ExportResult
from edgekit.fileio import atomic_path
from edgekit.inputs.specs import InputSpec
from edgekit.meta import ModelMeta
from edgekit.source_kinds import ModelSource, parse_source

DEFAULT_SIZE = (224, 224)


@dataclass(frozen=True)
class LoadedModel:
    """A user model ready to trace: the callable, its input specs and metadata to start from."""

    model: Any  # nn.Module, ScriptModule or ExportedProgram
    inputs: tuple[InputSpec, ...]
    meta: ModelMeta
    exported_program: bool = False


def load_source(source: ModelSource | str, config: ExportConfig = ExportConfig(),
                weights: str | Path | None = None, inputs: Sequence[InputSpec] = ()) -> LoadedModel:
    """Build the user's model (weights loaded) and decide its input specs."""
    torch = require("torch", "torch")
    source = parse_source(source) if isinstance(source, str) else source
    torch.manual_seed(config.seed)
    if source.kind == "exported":
        if weights is not None:
            raise BadInputError("--weights applies to factories; a .pt2 program carries its own weights")
        return _load_exported(source, config, inputs)
    if source.kind == "torchscript":
        module = _load_torchscript(source.location)
    elif source.kind == "factory":
        module = call_factory(source.location, source.factory)
    else:
        raise BadInputError(f"{source.label} is not a torch model source")
    if weights is not None:
        from edgekit.exporters.checkpoint import load_weights

        load_weights(module, weights)
    from edgekit.exporters.torchvision_detection import wrap_detector

    module, meta = wrap_detector(module, _base_meta(source))
    specs = tuple(inputs) or (_default_spec(config, meta),)
    return LoadedModel(module.eval(), specs, _meta_for(meta, specs))


def call_factory(location: str, factory: str):
    """Import ``location`` (a .py file or a module path) and call ``factory()``; it must return a module."""
    import torch

    module = import_location(location)
    if not hasattr(module, factory):
        import difflib

        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        close = difflib.get_close_matches(factory, names, n=1)
        hint = f" — did you mean '{close[0]}'?" if close else (f" (it has {', '.join(names[:8])})" if names else "")
        raise BadInputError(f"{location} has no factory '{factory}'{hint}")
    function = getattr(module, factory)
    if isinstance(function, torch.nn.Module):
        return function
    if not callable(function):
        raise BadInputError(f"{location}:{factory} is a {type(function).__name__}, not a factory function")
    try:
        built = function()
    except TypeError as exc:
        raise BadInputError(f"factory {location}:{factory} must take no arguments: {first_line(exc)}") from None
    except SystemExit as exc:  # a script's sys.exit() must not end edgekit with its status, silently
        raise BadInputError(f"factory {location}:{factory} called sys.exit({exc.code!r})") from None
    except Exception as exc:  # user code can raise anything; report it in one line
        raise BadInputError(f"factory {location}:{factory} failed: {type(exc).__name__}: {first_line(exc)}") from None
    if not isinstance(built, torch.nn.Module):
        raise BadInputError(f"factory {location}:{factory} returned a {type(built).__name__}, "
                            "not a torch.nn.Module")
    return built


def import_location(location: str):
    try:
        if not location.endswith(".py"):
            return importlib.import_module(location)
        path = Path(location).resolve()
        name = f"edgekit_user_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.parent))  # the factory's file may import its neighbours
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(path.parent))
        return module
    except ModuleNotFoundError as exc:
        raise BadInputError(f"cannot import {location}: no module named '{exc.name}'") from None
    except SystemExit as exc:  # a script run at import (no `if __name__ == "__main__":` guard)
        raise BadInputError(f"cannot import {location}: it called sys.exit({exc.code!r}) on import") from None
    except Exception as exc:  # SyntaxError, ImportError or anything the user's module raises at import
        raise BadInputError(f"cannot import {location}: {type(exc).__name__}: {first_line(exc)}") from None


def _load_torchscript(location: str):
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.load(location, map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError/ValueError for non-TorchScript zips
        raise BadInputError(f"{location} is not a TorchScript file ({first_line(exc)[:120]}); for a state_dict "
                            "give the model's factory and --weights") from None


def _load_exported(source: ModelSource, config: ExportConfig, inputs: Sequence[InputSpec]) -> LoadedModel:
    import contextlib
    import os

    import torch

    from edgekit.exporters.torch_onnx import native_stderr_silenced

    debug = os.environ.get("EDGEKIT_DEBUG") == "1"
    try:   # torch logs a whole traceback as warnings before it raises: shown with EDGEKIT_DEBUG=1 only
        with contextlib.nullcontext() if debug else native_stderr_silenced():
            program = torch.export.load(source.location)
    except Exception as exc:  # torch raises several types for a bad archive
        reason = first_line(exc)[:160]
        if "check the warnings above" in reason:
            reason = "torch could not deserialize it (EDGEKIT_DEBUG=1 shows torch's reason)"
        raise BadInputError(f"{source.location} is not a torch.export program: {reason}") from None
    args = program.example_inputs[0] if program.example_inputs else ()
    names = list(program.graph_signature.user_inputs)
    if not inputs:
        if len(args) != len(names) or not all(isinstance(a, torch.Tensor) for a in args):
            raise BadInputError(f"{source.location} keeps no example tensors: give every input with --input")
        inputs = tuple(InputSpec(n, tuple(a.shape), str(a.dtype).removeprefix("torch."), tuple(a.shape))
                       for n, a in zip(names, args))
    return LoadedModel(program, tuple(inputs), _meta_for(_base_meta(source), inputs), exported_program=True)


def _base_meta(source: ModelSource) -> ModelMeta:
    name = source.factory or Path(source.location).stem
    return ModelMeta(model_name=name, extra={"source": {source.kind: source.label}})


def _default_spec(config: ExportConfig, meta: ModelMeta) -> InputSpec:
    height, width = config.input_size or (meta.input_size if meta.task == "detection" else DEFAULT_SIZE)
    shape = (config.batch, meta.channels, height, width)
    if config.dynamic_batch:
        return InputSpec("input", ("batch", *shape[1:]), "float32", shape)
    return InputSpec("input", shape, "float32", shape)


def _meta_for(meta: ModelMeta, specs: Sequence[InputSpec]) -> ModelMeta:
    first = specs[0]
    sample = first.sample_shape()
    changes: dict[str, Any] = {"input_name": first.name, "edgekit_version": __version__}
    if len(sample) == 4 and sample[1] in (1, 3):
        changes.update(input_size=(sample[2], sample[3]), color="GRAY" if sample[1] == 1 else meta.color)
        if sample[1] == 1 and len(meta.mean) != 1:
            changes.update(mean=(0.5,), std=(0.5,))
    return meta.with_(**changes)


def sample_inputs(specs: Sequence[InputSpec], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for tracing and the export check (see ``edgekit.inputs.specs.sample_feeds``)."""
    from edgekit.inputs.specs import sample_feeds

    return sample_feeds(specs, seed)


def torch_outputs(loaded: LoadedModel, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the user's model in torch; outputs named as the export names them."""
    import torch

    tensors = [torch.from_numpy(np.ascontiguousarray(feeds[spec.name])) for spec in loaded.inputs]
    model = loaded.model.module() if loaded.exported_program else loaded.model
    try:
        with torch.no_grad():
            result = model(*tensors)
    except (Exception, SystemExit) as exc:  # shape errors surface as RuntimeError, user code as anything
        shapes = ", ".join(f"{n} {tuple(a.shape)}" for n, a in feeds.items())
        raise BadInputError(f"the model does not run on inputs {shapes}: {first_line(exc)} "
                            "(give its inputs with --input name:1x3x224x224)") from None
    return flatten_outputs(result)


def flatten_outputs(result: Any) -> dict[str, np.ndarray]:
    """A tensor, a tuple/list or a dict of tensors → named numpy arrays."""
    import torch

    if isinstance(result, torch.Tensor):
        return {"output": result.numpy()}
    if isinstance(result, dict):
        items = list(result.items())
    elif isinstance(result, (tuple, list)):
        items = [(f"output{i}", value) for i, value in enumerate(result)]
    else:
        raise BadInputError(f"the model returns a {type(result).__name__}; edgekit exports tensors, "
                            "tuples, lists or dicts of tensors")
    if not all(isinstance(v, torch.Tensor) for _, v in items):
        raise BadInputError("the model's outputs must all be tensors (nested outputs are not exported)")
    return {str(name): value.numpy() for name, value in items}


def export_source(source: ModelSource | str, output: str | Path, config: ExportConfig = ExportConfig(),
                  weights: str | Path | None = None, inputs: Sequence[InputSpec] = (),
                  meta_changes: Mapping[str, Any] | None = None) -> ExportResult:
    """Export a user model to ``output``; the file is kept only if ONNX Runtime matches torch. Settings
    neither given (``meta_changes``) nor read from the model are recorded as assumed (``extra.assumed``)."""
    loaded = load_source(source, config, weights, inputs)
    assumed = assumed_settings(loaded.meta, inputs, {**({"input_size": 1} if config.input_size else {}),
                                                     **(meta_changes or {})})
    changes = {**(meta_changes or {}), **({"assumed": list(assumed)} if assumed else {})}
    return export_loaded(loaded, output, config, changes)


ASSUMABLE = ("task", "input_size", "color", "mean", "std", "resize")


def assumed_settings(meta: ModelMeta, inputs: Sequence[InputSpec], changes: Mapping[str, Any]) -> tuple[str, ...]:
    """The metadata a user export took from defaults (ImageNet mean/std, RGB, 224x224, no task): not
    given in ``changes``, not read from the model (a torchvision detector knows its task and size) nor
    from ``inputs`` (their shapes give the size; one channel gives grey and 0.5/0.5); ``changes`` names
    what was given (--meta keys, input_size for --input-size)."""
    known = set(changes)
    if meta.task != "unknown":
        known |= {"task", "input_size", "resize", "mean", "std", "color"}
    if inputs:
        known.add("input_size")
        sample = inputs[0].sample_shape()
        if len(sample) == 4 and sample[1] == 1:
            known |= {"color", "mean", "std"}
    return tuple(key for key in ASSUMABLE if key not in known)


def export_loaded(loaded: LoadedModel, output: str | Path, config: ExportConfig,
                  meta_changes: Mapping[str, Any] | None = None) -> ExportResult:
    torch = require("torch", "torch")
    require("onnx", "torch")
    from edgekit.exporters.metadata import apply_changes
    from edgekit.exporters.torch_onnx import native_stderr_silenced, run_on_ort, verify_export, write_metadata

    meta = apply_changes(loaded.meta, meta_changes or {})  # bad metadata is an error before any work
    feeds = sample_inputs(loaded.inputs, config.seed)
    reference = torch_outputs(loaded, feeds)
    names = [spec.name for spec in loaded.inputs]
    dynamic = {spec.name: {i: d for i, d in enumerate(spec.shape) if isinstance(d, str)} for spec in loaded.inputs}
    dynamic = {name: axes for name, axes in dynamic.items() if axes}
    if dynamic and not loaded.exported_program:
        dynamic.update({out: {0: "batch"} for out in reference} if any(0 in a for a in dynamic.values()) else {})
    args = tuple(torch.from_numpy(feeds[name]) for name in names)
    with atomic_path(output) as temporary:
        try:
            with warnings.catch_warnings(), native_stderr_silenced():
                warnings.simplefilter("ignore")
                torch.onnx.export(loaded.model, args, str(temporary), dynamo=loaded.exported_program,
                                  opset_version=max(config.opset, 18) if loaded.exported_program else config.opset,
                                  input_names=names, output_names=list(reference),
                                  dynamic_axes=None if loaded.exported_program else (dynamic or None),
                                  **({} if loaded.exported_program else {"do_constant_folding": True}))
        except Exception as exc:  # the exporters raise many types (OnnxExporterError, RuntimeError, ...)
            reason = first_line(exc).split(" Please feel free")[0][:200]
            raise BadInputError(f"torch cannot export {meta.model_name or 'the model'} "
                                f"(opset {config.opset}): {reason}") from None
        write_metadata(temporary, meta, torch.__version__)
        actual = run_on_ort(temporary, feeds)
        parity, boxes = verify_export(reference, actual, meta, config)
    return ExportResult(Path(output), meta, parity, boxes)

