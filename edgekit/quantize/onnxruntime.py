"""ONNX Runtime quantization: pre-processing, then QDQ static, dynamic, or FP16 conversion.

Helper files (the pre-processed model, ORT's calibration graph) live in a temporary
directory; only the finished, checked model is written to the output, atomically.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.deps import require
from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.quantize.base import QuantizeConfig, QuantizeResult, precision_of, recipe
from edgekit.quantize.calibration import batch_feeds, calibration_arrays, calibration_batches, model_inputs

# Not used: ORT's CalibMaxIntermediateOutputs option. In onnxruntime 1.32 MinMaxCalibrater drops
# each full chunk of outputs without computing its ranges (only the last chunk counts) and fails
# with "No data is collected" when the batch count is a multiple of it. Calibration memory is
# therefore about calib_size x the model's activation size (~2 GB for resnet18 at 224 x 128).
#: node types whose weights carry the model's first and last layers ("@first"/"@last" in exclude)
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")
#: samples the finished model is compared with FP32 on (cheap: a few ms each on small models)
CHECK_SAMPLES = 32


def quantize_static(source: Path, output: Path, config: QuantizeConfig, meta: ModelMeta) -> QuantizeResult:
    """Calibrated INT8 in QDQ format (QuantizeLinear/DequantizeLinear around each quantized op)."""
    with tempfile.TemporaryDirectory(prefix="edgekit-quant-") as folder:
        quantized = Path(folder) / "quantized.onnx"
        info = write_qdq(source, quantized, config, meta)
        return _finish(quantized, output, config, meta, info, source)


def write_qdq(
    source: Path, target: Path, config: QuantizeConfig, meta: ModelMeta, symmetric: bool = False,
    runtime_target: str = "ort-cpu", quantize_bias: bool = True,
) -> dict[str, Any]:
    """Calibrate and write a QDQ model to ``target`` (a scratch path); returns its recipe.

    ``symmetric`` forces zero-point-free ranges, as TensorRT's explicit quantization requires;
    ``quantize_bias=False`` keeps biases in float (TensorRT's ONNX parser refuses INT32 biases
    behind a DequantizeLinear, and quantizes them itself).
    """
    q = require("onnxruntime.quantization", "ort")
    batches = calibration_batches(config.calib or "", source, meta, config.calib_size, config.seed)
    methods = {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
               "percentile": q.CalibrationMethod.Percentile}
    # U8 activations + S8 weights: the VNNI-friendly pairing; S8S8 measured slower than FP32 on ORT CPU.
    activation = q.QuantType.QUInt8 if config.activations == "u8" else q.QuantType.QInt8
    extra: dict[str, Any] = {}
    if symmetric:
        extra.update(ActivationSymmetric=True, WeightSymmetric=True)
    if not quantize_bias:
        extra["QuantizeBias"] = False
    with tempfile.TemporaryDirectory(prefix="edgekit-quant-") as folder:
        prepared = _prepare(source, Path(folder))
        excluded = resolve_exclusions(prepared, config.exclude)
        quiet(q.quantize_static)(
            str(prepared), str(target), _Reader(batches), quant_format=q.QuantFormat.QDQ,
            per_channel=config.per_channel, activation_type=activation, weight_type=q.QuantType.QInt8,
            calibrate_method=methods[config.method], nodes_to_exclude=excluded or None, extra_options=extra,
        )
    samples = sum(len(next(iter(b.values()))) for b in batches)
    info = recipe(config, source, runtime_target, excluded_nodes=excluded, calib_batches=len(batches),
                  calib_samples=samples, symmetric=symmetric, quantize_bias=quantize_bias)
    return info


def quantize_dynamic(source: Path, output: Path, config: QuantizeConfig, meta: ModelMeta) -> QuantizeResult:
    """INT8 weights, activation ranges computed at run time (ConvInteger/MatMulInteger)."""
    q = require("onnxruntime.quantization", "ort")
    with tempfile.TemporaryDirectory(prefix="edgekit-quant-") as folder:
        prepared = _prepare(source, Path(folder))
        excluded = resolve_exclusions(prepared, config.exclude)
        quantized = Path(folder) / "quantized.onnx"
        quiet(q.quantize_dynamic)(str(prepared), str(quantized), per_channel=config.per_channel,
                                   weight_type=q.QuantType.QInt8, nodes_to_exclude=excluded or None)
        info = recipe(config, source, "ort-cpu", excluded_nodes=excluded)
        return _finish(quantized, output, config, meta, info, source)


def convert_fp16(source: Path, output: Path, config: QuantizeConfig, meta: ModelMeta) -> QuantizeResult:
    """Weights and activations in float16; inputs and outputs stay float32 (``keep_io_types``)."""
    onnx = require("onnx", "quantize")
    float16 = require("onnxruntime.transformers.float16", "ort")
    model = onnx.load(str(source))
    converted = float16.convert_float_to_float16(model, keep_io_types=True,
                                                 node_block_list=list(config.exclude) or None)
    with tempfile.TemporaryDirectory(prefix="edgekit-quant-") as folder:
        converted_path = Path(folder) / "fp16.onnx"
        onnx.save(converted, str(converted_path))
        info = recipe(config, source, "any")
        return _finish(converted_path, output, config, meta, info, source)


def resolve_exclusions(model: Path, exclude: tuple[str, ...]) -> list[str]:
    """Node names to keep in float; ``@first``/``@last`` name the first/last Conv/Gemm/MatMul."""
    if not exclude:
        return []
    import onnx

    nodes = onnx.load(str(model), load_external_data=False).graph.node
    names = [node.name for node in nodes]
    weighted = [node.name for node in nodes if node.op_type in WEIGHTED_OPS]
    resolved = []
    for item in exclude:
        if item in ("@first", "@last"):
            if not weighted:
                raise BadInputError(f"cannot exclude {item}: the model has no {'/'.join(WEIGHTED_OPS)} node")
            resolved.append(weighted[0] if item == "@first" else weighted[-1])
        elif item in names:
            resolved.append(item)
        else:
            raise BadInputError(f"no node named '{item}' to exclude (use @first, @last or a node name)")
    return list(dict.fromkeys(resolved))


def node_types(model: Any) -> dict[str, int]:
    """Op-type histogram of an ``onnx.ModelProto``."""
    return dict(Counter(node.op_type for node in model.graph.node).most_common())


class _Reader:
    """ORT's CalibrationDataReader protocol over prepared feed batches."""

    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self._batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _prepare(source: Path, folder: Path) -> Path:
    """Symbolic shape inference + ORT graph optimization: what ORT's quantizer expects first."""
    import contextlib

    q = require("onnxruntime.quantization", "ort")
    prepared = (folder / "prepared.onnx").resolve()
    model = str(source.resolve())
    # in the scratch folder: when ORT's symbolic inference fails it leaves sym_shape_infer_temp.onnx
    # and a <uuid>.data in the working directory
    with contextlib.chdir(folder):
        try:
            quiet(q.quant_pre_process)(model, str(prepared))
        except Exception:  # shape inference raises many types on unusual graphs
            # ORT's symbolic shape inference gives up on some graphs (the detector's Resize with a
            # dynamic batch: "Incomplete symbolic shape inference"); ONNX's own inference suffices there.
            try:
                quiet(q.quant_pre_process)(model, str(prepared), skip_symbolic_shape=True)
            except Exception as exc:
                raise BadInputError(f"cannot prepare {source.name} for quantization: "
                                    f"{str(exc).splitlines()[0]}") from None
    return prepared


def _finish(
    quantized: Path, output: Path, config: QuantizeConfig, meta: ModelMeta, info: dict[str, Any], source: Path,
) -> QuantizeResult:
    """Record the recipe in the metadata, check the model runs and agrees, then write it."""
    import onnx

    from edgekit.exporters.metadata import set_metadata
    from edgekit.fileio import atomic_path

    model = onnx.load(str(quantized))
    info["check"] = recorded_check(source, quantized, meta, config)
    new_meta = meta.with_(precision=precision_of(config.mode), recipe=info)
    set_metadata(model, new_meta)
    model.producer_name = "edgekit"
    with atomic_path(output) as temporary:
        onnx.save(model, str(temporary))
    return QuantizeResult(output, config, new_meta, node_types(model))


def check_feeds(source: Path, meta: ModelMeta, config: QuantizeConfig) -> tuple[list[dict[str, np.ndarray]], int, str]:
    """Up to CHECK_SAMPLES samples to compare with FP32, batched as the model takes them (one by one
    for a fixed batch of 1); returns (feeds, real samples, where they came from). A dataset gives its
    val split, images the calibration did not see; a folder or .npz, its images; no data, random inputs."""
    specs = model_inputs(source)
    if config.calib:
        data = config.calib
        named = Path(data).suffix.lower() != ".npz" and not Path(data).is_dir()
        try:
            # a dataset's val split under the calibration's seed is disjoint from the train split it
            # calibrated on; a folder's other seed draws other images where it has more
            arrays = calibration_arrays(data, source, meta, CHECK_SAMPLES, config.seed + (0 if named else 1),
                                        split="val" if named else "train")
            origin = f"{data} val split" if named else f"{data} (the calibration data)"
        except BadInputError:
            if not named:
                raise
            arrays = calibration_arrays(data, source, meta, CHECK_SAMPLES, config.seed)  # no val split
            origin = f"{data} calibration split"
        return batch_feeds(arrays, specs), len(next(iter(arrays.values()))), origin
    rng = np.random.default_rng(0)
    arrays = {spec.name: rng.standard_normal([CHECK_SAMPLES] + [d if isinstance(d, int) and d > 0 else 1
                                                                for d in spec.shape[1:]]).astype(spec.dtype)
              for spec in specs}
    return batch_feeds(arrays, specs), CHECK_SAMPLES, "random inputs"


def recorded_check(source: Path, candidate: Path, meta: ModelMeta, config: QuantizeConfig,
                   runtime: str = "ort-cpu") -> dict[str, Any]:
    """The ``check`` every quantizer records: ``candidate`` run on ``runtime`` against FP32 on the
    check samples (``check_feeds``), and where those came from."""
    feeds, count, origin = check_feeds(source, meta, config)
    return {**agreement(source, candidate, feeds, count, runtime=runtime, meta=meta), "data": origin}


def agreement(reference: Path, candidate: Path, feeds: list[dict[str, np.ndarray]], count: int,
              runtime: str = "ort-cpu", meta: ModelMeta | None = None) -> dict:
    """How the candidate (run on ``runtime``) agrees with FP32 (on ONNX Runtime's CPU) over ``count``
    samples, as figures without a verdict (INT8 is expected to move them; budgets judge accuracy):
    worst-output cosine and top-1 agreement (percent); segmenters by their masks (pixels that agree,
    mIoU), embedders by per-sample cosine (``parity.dense_agreement``)."""
    from edgekit.parity import compare_outputs, dense_agreement
    from edgekit.runtimes import get_runtime, open_runtime

    outputs = []
    for path, name in ((reference, "ort-cpu"), (candidate, runtime)):
        collected: dict[str, list[np.ndarray]] = {}
        try:
            with open_runtime(name, path) as session:
                for feed in feeds:
                    for output, value in session.run(feed).items():
                        collected.setdefault(output, []).append(np.asarray(value, dtype=np.float32))
        except BadInputError as exc:
            where = "ONNX Runtime" if name == "ort-cpu" else get_runtime(name).name
            raise BadInputError(f"the quantized model does not run on {where}: {exc}") from None
        outputs.append({output: np.concatenate(parts)[:count] for output, parts in collected.items()})
    # a segmenter or embedder whose outputs its task cannot read is refused, not judged by raw tensors
    dense = dense_agreement(meta, [outputs[0]], [outputs[1]], strict=True) if meta is not None else None
    if dense is not None and not dense.nothing_to_compare and not dense.problem:
        if dense.kind == "masks":
            text = f"masks: {100 * dense.pixel_agreement:.2f} % pixels agree, mIoU {dense.miou:.4f}"
            return {"cosine": None, "top1_agreement_pct": round(100.0 * dense.pixel_agreement, 3),
                    "miou": round(dense.miou, 4), "samples": count, "agreement": text}
        text = f"embeddings: per-sample cosine min {dense.cosine_min:.6f}, mean {dense.cosine_mean:.6f}"
        return {"cosine": round(dense.cosine_min, 6), "top1_agreement_pct": None, "samples": count,
                "agreement": text}
    parity = compare_outputs(outputs[0], outputs[1])
    worst = min(parity.outputs, key=lambda o: o.cosine)
    top1 = None if worst.top1_agreement is None else round(100.0 * worst.top1_agreement, 3)
    return {"cosine": round(worst.cosine, 6), "top1_agreement_pct": top1, "samples": count}


def quiet(function):
    """Run a quantization tool without its warnings and stdout chatter (progress bars) on the terminal.
    Loggers are not touched: their levels belong to the application (edgekit's CLI quiets them)."""
    import contextlib
    import functools
    import io
    import warnings

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return function(*args, **kwargs)

    return wrapper
