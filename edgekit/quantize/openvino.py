"""OpenVINO quantization with NNCF post-training quantization, calibrated on the same data
as ONNX Runtime's. Writes an IR (.xml + .bin) the ``openvino`` runtime loads, with edgekit's
metadata in the IR's ``rt_info``; an ``.onnx`` output runs NNCF's ONNX backend instead (QDQ).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from edgekit.deps import require
from edgekit.errors import BadInputError
from edgekit.fileio import replace_file
from edgekit.meta import IR_RT_INFO_KEY, ModelMeta, read_meta
from edgekit.quantize.base import QuantizeConfig, QuantizeResult, precision_of, recipe
from edgekit.quantize.calibration import calibration_batches

#: NNCF's range estimators for our method names. NNCF has no KL-entropy calibration; its
#: histogram estimator is the closest and is recorded as such in the recipe.
RANGE_ESTIMATORS = {"minmax": "MINMAX", "percentile": "MEAN_QUANTILE", "entropy": "HISTOGRAM"}
RT_INFO_KEY = IR_RT_INFO_KEY


def quantize_nncf(source: Path, output: Path, config: QuantizeConfig, meta: ModelMeta) -> QuantizeResult:
    """INT8 (signed weights, per-channel; activations as NNCF's PERFORMANCE preset chooses)."""
    nncf = require("nncf", "openvino")
    batches = calibration_batches(config.calib or "", source, meta, config.calib_size, config.seed)
    to_ir = output.suffix.lower() == ".xml"
    if to_ir:
        ov = require("openvino", "openvino")
        model: Any = ov.Core().read_model(str(source))
    else:
        onnx = require("onnx", "quantize")
        model = onnx.load(str(source))
    from edgekit.quantize.onnxruntime import quiet

    # quiet: NNCF's rich progress bars go to stdout (its logger's level is the application's to set)
    quantized = quiet(nncf.quantize)(
        model, nncf.Dataset(batches), subset_size=len(batches),
        preset=nncf.QuantizationPreset.PERFORMANCE, ignored_scope=_ignored(nncf, config.exclude),
        advanced_parameters=_advanced(config),
    )
    info = recipe(config, source, "openvino", tool=f"nncf {nncf.__version__}", activations="nncf performance preset",
                  range_estimator=RANGE_ESTIMATORS[config.method], calib_batches=len(batches))
    save = _save_ir if to_ir else _save_onnx
    info["check"] = _check(quantized, save, source, config, meta.with_(precision=precision_of(config.mode)),
                           "openvino" if to_ir else "ort-cpu", output.suffix)
    new_meta = meta.with_(precision=precision_of(config.mode), recipe=info)
    save(quantized, output, new_meta)
    return QuantizeResult(output, config, new_meta, _node_types(quantized, to_ir))


def _check(model: Any, save, source: Path, config: QuantizeConfig, meta: ModelMeta, runtime: str,
           suffix: str) -> dict[str, Any]:
    """The ``check`` every quantizer records, of a scratch copy of the quantized model run on ``runtime``."""
    from edgekit.quantize.onnxruntime import recorded_check

    with tempfile.TemporaryDirectory(prefix="edgekit-nncf-check-") as folder:
        scratch = Path(folder) / f"quantized{suffix}"
        save(model, scratch, meta)
        return recorded_check(source, scratch, meta, config, runtime)


def _ignored(nncf: Any, exclude: tuple[str, ...]):
    if not exclude:
        return None
    if any(item.startswith("@") for item in exclude):
        raise BadInputError("nncf excludes nodes by name only (@first/@last are for the ort backend)")
    return nncf.IgnoredScope(names=list(exclude))


def _advanced(config: QuantizeConfig):
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    estimator = getattr(RangeEstimatorParametersSet, RANGE_ESTIMATORS[config.method])
    weights = None if config.per_channel else QuantizationParameters(per_channel=False)
    return AdvancedQuantizationParameters(activations_range_estimator_params=estimator,
                                          weights_quantization_params=weights)


def _save_ir(model: Any, output: Path, meta: ModelMeta) -> None:
    """Write .xml and .bin beside each other: both to a temporary folder, then renamed (.bin first)."""
    import openvino as ov

    from edgekit.exporters.metadata import set_ir_metadata

    set_ir_metadata(model, meta)
    if not output.parent.is_dir():
        raise BadInputError(f"output directory {output.parent} does not exist")
    with tempfile.TemporaryDirectory(prefix=f".{output.stem}.", dir=output.parent) as folder:
        staged = Path(folder) / output.name
        ov.save_model(model, str(staged), compress_to_fp16=False)
        replace_file(staged.with_suffix(".bin"), output.with_suffix(".bin"))
        replace_file(staged, output)


def _save_onnx(model: Any, output: Path, meta: ModelMeta) -> None:
    import onnx

    from edgekit.exporters.metadata import set_metadata
    from edgekit.fileio import atomic_path

    set_metadata(model, meta)
    with atomic_path(output) as temporary:
        onnx.save(model, str(temporary))


def _node_types(model: Any, is_ov: bool) -> dict[str, int]:
    from collections import Counter

    if is_ov:
        types = Counter(op.get_type_name() for op in model.get_ops())
    else:
        types = Counter(node.op_type for node in model.graph.node)
    return dict(types.most_common())


def read_ir_meta(xml: str | Path) -> ModelMeta:
    """edgekit metadata from an IR's ``rt_info`` (see edgekit.meta.read_meta)."""
    return read_meta(Path(xml))


def bf16_available() -> bool:
    """Whether OpenVINO's CPU plugin can run in bf16 here (AVX512-BF16 or AMX)."""
    try:
        import openvino as ov

        capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # openvino missing or the CPU plugin not loadable
        return False
    return "BF16" in capabilities


