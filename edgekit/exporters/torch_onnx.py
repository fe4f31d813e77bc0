"""torch → ONNX export, verified on ONNX Runtime against torch before the file is kept."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import __version__
from edgekit.deps import require
from edgekit.errors import BadInputError, CheckFailedError, first_line
from edgekit.exporters.config import ExportConfig, ExportResult
from edgekit.fileio import atomic_path
from edgekit.meta import ModelMeta
from edgekit.parity import ParityReport, compare_fp32


def export_zoo_model(
    name: str, output: str | Path, config: ExportConfig = ExportConfig(), weights: str | Path | None = None
) -> ExportResult:
    """Build zoo model ``name`` (random or ``weights``), export it to ``output`` and verify it."""
    require("torch", "torch")
    require("onnx", "torch")
    from edgekit.zoo.build import build_model, default_labels
    from edgekit.zoo.catalog import get_entry

    entry = get_entry(name)
    size = config.input_size or entry.input_size
    if min(size) < entry.min_input_size:
        raise BadInputError(
            f"{entry.name} needs an input of at least {entry.min_input_size}x{entry.min_input_size}, "
            f"got {size[0]}x{size[1]}"
        )
    model = build_model(entry, weights=weights, seed=config.seed)
    from edgekit.hashing import weights_digest

    source = {"zoo": entry.name, "weights": weights_digest(weights) if weights else f"random(seed={config.seed})",
              **({} if weights else {"seed": config.seed})}
    meta = entry.meta(size, default_labels(entry)).with_(extra={"source": source})
    return export_module(model, meta, output, config)


def export_module(
    model, meta: ModelMeta, output: str | Path, config: ExportConfig = ExportConfig(),
    output_names: tuple[str, ...] = ("output",),
) -> ExportResult:
    """Export a torch module whose input ``meta`` describes; keep the file only if it matches torch."""
    torch = require("torch", "torch")
    require("onnx", "torch")

    size = config.input_size or meta.input_size
    meta = meta.with_(input_size=tuple(size), edgekit_version=__version__, input_name="input")
    generator = torch.Generator().manual_seed(config.seed)
    sample = torch.randn(config.batch, meta.channels, *size, generator=generator)
    model = model.eval()
    reference = _torch_outputs(model, sample, output_names, meta)

    dynamic_axes = None
    if config.dynamic_batch:
        dynamic_axes = {name: {0: "batch"} for name in ("input", *output_names)}
    with atomic_path(output) as temporary:
        try:
            with warnings.catch_warnings(), native_stderr_silenced():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model, (sample,), str(temporary), dynamo=False, opset_version=config.opset,
                    input_names=["input"], output_names=list(output_names), dynamic_axes=dynamic_axes,
                    do_constant_folding=True,
                )
        except torch.onnx.errors.OnnxExporterError as exc:
            reason = first_line(exc).split(" Please feel free")[0]
            raise BadInputError(
                f"torch cannot export {meta.model_name or 'the model'} at {size[0]}x{size[1]} "
                f"(opset {config.opset}): {reason}"
            ) from None
        write_metadata(temporary, meta, torch.__version__)
        actual = run_on_ort(temporary, {"input": sample.numpy()})
        parity, boxes = verify_export(reference, actual, meta, config)
    return ExportResult(Path(output), meta, parity, boxes)


@contextlib.contextmanager
def native_stderr_silenced():
    """Hide what torch's C++ exporter prints to fds 1 and 2 (it dumps whole graphs on failure)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with open(os.devnull, "wb") as devnull:
        for fd in saved:
            os.dup2(devnull.fileno(), fd)
    try:
        yield
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


def _torch_outputs(model, sample, output_names: tuple[str, ...], meta: ModelMeta) -> dict[str, np.ndarray]:
    import torch

    try:
        with torch.no_grad():
            result = model(sample)
    except RuntimeError as exc:
        reason = first_line(exc)
        raise BadInputError(
            f"input {tuple(sample.shape)} does not fit {meta.model_name or 'the model'}: {reason}"
        ) from None
    tensors = list(result) if isinstance(result, (tuple, list)) else [result]
    if len(tensors) != len(output_names):
        raise BadInputError(f"model returns {len(tensors)} outputs but {len(output_names)} names were given")
    return {name: tensor.numpy() for name, tensor in zip(output_names, tensors)}


def write_metadata(path: Path, meta: ModelMeta, torch_version: str) -> None:
    import onnx

    model = onnx.load(str(path))
    model.producer_name = "edgekit"
    model.producer_version = __version__
    from edgekit.exporters.metadata import set_metadata

    extra = {**meta.extra, "exporter": f"torch.onnx (torchscript) torch {torch_version}"}
    set_metadata(model, meta.with_(extra=extra))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def run_on_ort(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from edgekit.runtimes import open_runtime

    with open_runtime("ort-cpu", path) as runtime:
        return runtime.run({name: array for name, array in feeds.items() if name in runtime.inputs})


NO_BOXES_HINT = ("random weights tie a detector's scores, so its boxes come out in any order: export trained "
                 "weights (--weights FILE)")


def verify_export(reference: dict[str, np.ndarray], actual: dict[str, np.ndarray], meta: ModelMeta,
                  config: ExportConfig) -> tuple[ParityReport, Any]:
    """The export check's verdict: ONNX Runtime's outputs against torch's (``compare_fp32``); for a
    detector whose tensors differ (near-tied boxes come out in another order), its decoded boxes; for
    a segmenter its masks, for an embedder per-sample cosine (``dense_agreement``). Decoded outputs
    with nothing to compare (no box above the score threshold, one class everywhere) fall back to the
    tensors, and the line says so. Raises CheckFailedError (the file is not written) when they differ,
    or when nothing at all was compared. Returns (tensors, the decoded verdict or None)."""
    from edgekit.parity import box_agreement, dense_agreement

    parity = compare_fp32(reference, actual, atol=config.atol, rtol=config.rtol)
    boxes = box_agreement(meta, [reference], [actual], 0.5, 0.02)  # None unless a detector
    decoded = boxes if boxes is not None else dense_agreement(meta, [reference], [actual])
    no_boxes = boxes.nothing_to_compare if boxes is not None else ""
    uncompared = no_boxes or (f"{decoded.kind}: {decoded.nothing_to_compare}"
                              if decoded is not None and decoded.nothing_to_compare else "")
    if uncompared:
        parity = replace(parity, note="; ".join(filter(None, (parity.note, f"{uncompared}: raw outputs compared"))))
    if uncompared or (boxes is not None and parity.passed):  # tensors that agree give the same boxes
        decoded = None
    verdict = decoded if decoded is not None else parity
    if verdict.passed:
        return parity, decoded
    if parity.nothing_to_compare and decoded is None:
        reasons = "; ".join(filter(None, (parity.nothing_to_compare, uncompared)))
        raise CheckFailedError(f"the export check compared nothing, file not written: {reasons} — export trained "
                               "weights (--weights FILE), and check that the outputs depend on the input")
    hint = f" — {NO_BOXES_HINT}" if no_boxes else ""
    raise CheckFailedError(f"export does not match torch, file not written: {verdict.summary()}{hint}")
