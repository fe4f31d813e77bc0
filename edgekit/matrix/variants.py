"""Precision variants of a model for a runtime: which file to open with which options.

fp32 is the file itself. int8 is ONNX Runtime's QDQ static quantization (OpenVINO runs the same
QDQ file), calibrated on the task's data when the model's labels match it, else on generated
images. fp16 is ONNX Runtime's FP16 conversion on ORT and OpenVINO's ``precision=f16`` hint;
bf16 is OpenVINO's ``precision=bf16`` hint where the CPU has it. Built variants are cached under
``cache_dir("variants")`` by source hash, recipe and library versions (``cached_quantize``, the one
builder the matrix, optimize and `quantize` share), so a re-run reuses them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.meta import ModelMeta
from edgekit.paths import cache_dir


class Unsupported(EdgekitError):
    """This cell cannot run here (precision the device lacks, runtime missing); recorded, not fatal."""


@dataclass(frozen=True)
class Variant:
    """One file to run and how: the runtime options it needs (a precision hint), the recipe it was
    built with, and for the precision report its name, precision and the runtimes that take it
    (empty: every runtime that loads the file). The one variant record of the matrix, optimize and
    `quantize --max-drop`."""

    path: Path
    runtime_options: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    name: str = "fp32"
    precision: str = "fp32"
    runtimes: tuple[str, ...] = ()

    @property
    def size_mb(self) -> float:
        from edgekit.fileio import model_size_mb

        return model_size_mb(self.path)


def make_variant(source: Path, source_sha: str, meta: ModelMeta, runtime: str, precision: str,
                 calib: str, calib_samples: int, seed: int) -> Variant:
    """The artifact and options that run ``source`` at ``precision`` on ``runtime``; raises Unsupported."""
    if precision == "fp32":
        return Variant(source)
    if precision == "bf16":
        if runtime != "openvino":
            raise Unsupported(f"{runtime} has no bf16 mode (bf16 runs on openvino)")
        from edgekit.quantize.openvino import bf16_available

        if not bf16_available():
            raise Unsupported("CPU lacks bf16")
        return Variant(source, {"precision": "bf16"}, {"mode": "bf16", "how": "openvino precision=bf16"})
    if precision == "fp16" and runtime == "openvino":
        _require_capability("FP16", "CPU lacks fp16")
        return Variant(source, {"precision": "f16"}, {"mode": "fp16", "how": "openvino precision=f16"})
    if precision == "fp16":
        return _quantized(source, source_sha, meta, {"mode": "fp16"})
    if precision == "int8":
        recipe = {"mode": "int8-static", "calib": calib, "calib_size": calib_samples, "seed": seed}
        return _quantized(source, source_sha, meta, recipe)
    raise Unsupported(f"unknown precision '{precision}'")


def _require_capability(capability: str, reason: str) -> None:
    try:
        import openvino as ov

        capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # openvino missing: the runtime check reports it
        return
    if capability not in capabilities:
        raise Unsupported(reason)


def _quantized(source: Path, source_sha: str, meta: ModelMeta, recipe: dict[str, Any]) -> Variant:
    return build_quantized(source, source_sha, meta, {**recipe, "backend": "ort"})


def build_quantized(source: Path, source_sha: str, meta: ModelMeta, recipe: dict[str, Any]) -> Variant:
    """A quantized variant from a ``recipe`` (the matrix's, optimize's and their fallbacks'): mode, backend
    (ort | nncf), calib ('generated' for generated images), calib_size, seed and exclude (layers kept in
    float); built by ``cached_quantize``."""
    from edgekit.quantize.base import SUFFIXES, QuantizeConfig

    backend, exclude = recipe.get("backend", "ort"), tuple(recipe.get("exclude") or ())
    recipe = {**recipe, "backend": backend, **({"exclude": list(exclude)} if exclude else {})}
    calib = recipe.get("calib")
    if calib == "generated":
        calib = str(generated_images_npz(meta, recipe["calib_size"], recipe["seed"]))
    config = QuantizeConfig(mode=recipe["mode"], backend=backend, calib=calib,
                            calib_size=recipe.get("calib_size") or 128, seed=recipe.get("seed", 0), exclude=exclude)
    # NNCF's IR path renames ONNX nodes (a Gemm becomes MatMul + Add): layers kept in float are named
    # on the ONNX graph, so that recipe runs NNCF's ONNX backend (a QDQ .onnx that OpenVINO runs)
    suffix = ".onnx" if backend == "nncf" and exclude else SUFFIXES[backend]
    target = cached_quantize(source, source_sha, config, suffix)
    return Variant(target, {}, {**recipe, "cached_file": target.name})


def cached_quantize(source: Path, source_sha: str, config, suffix: str | None = None) -> Path:
    """The one cached builder of quantized files (the matrix, optimize and `quantize` use it): the file
    is keyed by the source's bytes, every field of the ``QuantizeConfig`` (its calibration data by
    content), and the library versions, so a rebuilt source, other calibration images or an upgraded
    quantizer builds it again. Written atomically: a killed build leaves no file."""
    from edgekit.quantize.base import SUFFIXES, quantize
    from edgekit.sources import versions_tag

    fields = {**dataclasses.asdict(config), "calib": calibration_fingerprint(config.calib)}
    key = hashlib.sha256(json.dumps([fields, versions_tag(), _quantizer_versions()], sort_keys=True, default=str)
                         .encode()).hexdigest()[:12]
    suffix = suffix or SUFFIXES[config.backend]
    target = cache_dir("variants") / f"{source_sha[:16]}-{config.mode}-{config.backend}-{key}{suffix}"
    if not target.is_file():
        if config.backend == "nncf" and config.exclude:   # NNCF takes node names: resolve @first/@last
            from edgekit.quantize.onnxruntime import resolve_exclusions

            config = dataclasses.replace(config, exclude=tuple(resolve_exclusions(source, config.exclude)))
        quantize(source, target, config)
    return target


def calibration_fingerprint(calib: str | None) -> str | None:
    """What identifies calibration data: a file's SHA-256, a folder's file names, sizes and times, or a
    named data set (generated or shipped, so fixed by the library versions in the key)."""
    if calib is None:
        return None
    path = Path(calib)
    if path.is_file():
        from edgekit.quantize.base import file_sha256

        return f"file:{file_sha256(path)}"
    if path.is_dir():
        digest = hashlib.sha256()
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            stat = item.stat()
            digest.update(f"{item.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        return f"folder:{digest.hexdigest()}"
    return f"data:{calib}"


def _quantizer_versions() -> list[str]:
    from edgekit.matrix.cells import library_versions

    versions = library_versions()
    return [versions.get(name, "-") for name in ("onnxruntime", "onnxruntime-gpu", "nncf", "openvino", "onnx")]


def generated_images(meta: ModelMeta, count: int, seed: int) -> np.ndarray:
    """``count`` smooth random uint8 images at the model's input size (low-frequency noise looks
    more like photographs to a CNN than white noise), for models with no labelled data."""
    height, width = meta.input_size
    channels = meta.channels
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(count, max(2, height // 8), max(2, width // 8), channels))
    rows = np.linspace(0, coarse.shape[1] - 1, height).round().astype(int)
    cols = np.linspace(0, coarse.shape[2] - 1, width).round().astype(int)
    images = coarse[:, rows][:, :, cols] + rng.normal(0, 12, size=(count, height, width, channels))
    return np.clip(images, 0, 255).astype(np.uint8)


def generated_images_npz(meta: ModelMeta, count: int, seed: int) -> Path:
    """The generated images as an ``images`` .npz in the cache (the calibration code reads those)."""
    height, width = meta.input_size
    target = cache_dir("matrix", "generated") / f"images-{height}x{width}x{meta.channels}-n{count}-s{seed}.npz"
    if not target.is_file():
        from edgekit.fileio import atomic_path

        with atomic_path(target) as temporary:
            with open(temporary, "wb") as stream:
                np.savez(stream, images=generated_images(meta, count, seed))
    return target
