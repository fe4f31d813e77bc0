"""The precision table and --max-drop selection on real measurements; NNCF/OpenVINO and TensorRT paths."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.datasets.base import Split
from edgekit.matrix.cells import Timing
from edgekit.matrix.choice import TIE
from edgekit.meta import read_meta
from edgekit.quantize.base import QuantizeConfig
from edgekit.quantize.report import MeasureConfig, PrecisionReport, PrecisionRow, measure
from edgekit.quantize.select import MIN_SPEEDUP, build_variants, choose, select
from edgekit.runtimes import open_runtime

QUICK = MeasureConfig(runtimes=("ort-cpu",), threads=1,
                      timing=Timing(warmup=2, min_runs=10, min_duration_s=0.2, rounds=1))


def _images(count: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, size // 4, size // 4, 1))
    return coarse.repeat(4, axis=1).repeat(4, axis=2).astype(np.uint8)


@pytest.fixture(scope="module")
def lenet(zoo_onnx):
    return zoo_onnx("lenet5", dynamic_batch=True).path


@pytest.fixture(scope="module")
def labelled(lenet, tmp_path_factory):
    """Images labelled by the FP32 model itself: FP32 scores 100 %, a variant's drop is its disagreement."""
    from edgekit.quantize.calibration import preprocess

    images = _images(64, 32, seed=5)
    with open_runtime("ort-cpu", lenet) as runtime:
        logits = runtime.run(preprocess(list(images), read_meta(lenet)))["output"]
    split = Split("test", "classification", images, logits.argmax(axis=1), tuple(map(str, range(10))),
                  {"dataset": "fp32-labelled"})
    calib = tmp_path_factory.mktemp("cal") / "c.npz"
    np.savez(calib, images=_images(32, 32, seed=6))
    return split, calib


def _row(variant, speedup, drop, runtime="ort-cpu"):
    return PrecisionRow(variant, runtime, "int8", 1.0, 1.0 / speedup, 1.0, speedup, "top1", 100 - drop, drop,
                        0.99, 0.99, f"/x/{variant}.onnx")


def test_select_never_keeps_a_slower_or_over_budget_variant():
    report = PrecisionReport("m", "d", 2, (
        _row("fp32", 1.0, 0.0), _row("slow-but-exact", 0.7, 0.0), _row("noise-fast", 1.02, 0.0),
        _row("fast-but-wrong", 3.5, 2.0), _row("good", 2.5, 0.8), _row("better", 2.9, 0.9),
        _row("other-runtime", 9.0, 0.0, runtime="openvino"),
    ))
    selection = select(report, 1.0, "ort-cpu")
    assert selection.kept.variant == "better" and "2.90x faster" in selection.summary
    verdicts = {variant: verdict for variant, _, verdict in selection.reasons}
    assert verdicts["slow-but-exact"].startswith("not faster") and verdicts["noise-fast"].startswith("not faster")
    assert "over budget" in verdicts["fast-but-wrong"] and verdicts["good"] == "within budget, not the fastest"
    assert select(report, 0.5, "ort-cpu").kept is None  # nothing both faster and within 0.5 pt
    assert select(report, 0.5, "ort-cpu").summary.startswith("kept FP32: no quantized variant is both faster on "
                                                             "ort-cpu and within the accuracy budget (the first")


def test_measure_builds_the_precision_table(lenet, labelled, tmp_path):
    split, calib = labelled
    configs = [QuantizeConfig(calib=str(calib)), QuantizeConfig(mode="int8-dynamic"), QuantizeConfig(mode="fp16")]
    variants = build_variants(lenet, configs)
    from edgekit.quantize.calibration import calibration_batches

    parity = calibration_batches(str(calib), lenet, read_meta(lenet), 16)
    report = measure(variants, read_meta(lenet), QUICK, split, parity)
    rows = {row.variant: row for row in report.rows}
    assert list(rows) == ["fp32", "ort-int8-static", "ort-int8-dynamic", "ort-fp16"]
    fp32 = rows["fp32"]
    assert fp32.accuracy == 100.0 and fp32.accuracy_drop == 0.0 and fp32.speedup == 1.0 and fp32.cosine > 0.9999
    for row in rows.values():
        assert row.p50_ms > 0 and row.p90_ms >= row.p50_ms and row.metric == "top1"
        assert row.speedup == pytest.approx(fp32.p50_ms / row.p50_ms)
        assert row.accuracy_drop == pytest.approx(100.0 - row.accuracy)
        assert row.cosine >= 0.98 and row.top1_agreement_pct >= 80
    assert rows["ort-int8-static"].size_mb < fp32.size_mb / 2.5  # int8 weights: about a quarter
    assert rows["ort-fp16"].size_mb < fp32.size_mb * 0.6


def test_choose_keeps_the_fastest_within_budget_or_fp32(lenet, labelled, tmp_path):
    split, calib = labelled
    meta = read_meta(lenet)
    configs = [QuantizeConfig(calib=str(calib)), QuantizeConfig(mode="fp16")]
    out = tmp_path / "kept.onnx"
    report, selection, kept = choose(lenet, out, configs, 100.0, "ort-cpu",
                                     lambda variants: measure(variants, meta, QUICK, split))
    assert kept == out and out.is_file()
    if selection.kept is None:  # a tiny LeNet may not get faster: then FP32 is what was kept
        assert all((r.speedup or 0) < MIN_SPEEDUP for r in report.rows if r.variant != "fp32")
        assert read_meta(out).precision == "fp32"
    else:
        assert selection.kept.speedup >= MIN_SPEEDUP
        fastest = max(r.speedup for r in report.rows if r.variant != "fp32")  # within TIE: the smaller file
        assert selection.kept.speedup * (1 + TIE) >= fastest
        assert read_meta(out).precision == selection.kept.precision


def test_choose_retries_without_sensitive_layers_when_nothing_fits(lenet, labelled, tmp_path):
    split, calib = labelled
    meta = read_meta(lenet)
    configs = [QuantizeConfig(calib=str(calib), calib_size=4)]
    # A negative budget can never be met: the retry must run, and FP32 must be kept.
    report, selection, kept = choose(lenet, tmp_path / "k.onnx", configs, -1.0, "ort-cpu",
                                     lambda variants: measure(variants, meta, QUICK, split))
    assert [r.variant for r in report.rows] == ["fp32", "ort-int8-static", "fp32-rerun", "ort-int8-static-excl"]
    rows = {r.variant: r for r in report.rows}  # the retry's speedup is over the baseline shown beside it
    assert rows["ort-int8-static-excl"].speedup == pytest.approx(rows["fp32-rerun"].p50_ms
                                                                 / rows["ort-int8-static-excl"].p50_ms)
    assert "fp32-rerun" not in [v for v, _, _ in selection.reasons]
    assert selection.kept is None and read_meta(kept).precision == "fp32"


@pytest.mark.openvino
def test_nncf_writes_an_ir_that_openvino_runs_with_the_recipe(lenet, labelled, tmp_path):
    import openvino as ov

    from edgekit.parity import compare_outputs
    from edgekit.quantize.base import quantize
    from edgekit.quantize.calibration import preprocess
    from edgekit.quantize.openvino import read_ir_meta

    _, calib = labelled
    out = tmp_path / "q.xml"
    result = quantize(lenet, out, QuantizeConfig(backend="nncf", calib=str(calib), calib_size=16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.bin", "q.xml"]
    assert result.node_types.get("FakeQuantize", 0) >= 4
    meta = read_ir_meta(out)
    assert meta.precision == "int8" and meta.input_size == (32, 32) and meta.color == "GRAY"
    assert meta.recipe["backend"] == "nncf" and meta.recipe["calib_size"] == 16
    assert meta.recipe["range_estimator"] == "MINMAX"
    # Images like the calibration's (INT8 ranges hold for them, not for N(0,1) noise). A working INT8
    # model agrees with FP32 in top-1 and closely in cosine; wrong scales or layouts give ~0. CPUs
    # without VNNI saturate u8·s8 products in 16 bits (oneDNN capped at AVX2: cosine 0.979 on noise),
    # so the bound is 0.95, with every top-1 kept.
    split, _ = labelled
    feeds = preprocess(list(split.images[:16]), read_meta(lenet))
    compiled = ov.Core().compile_model(str(out), "CPU")
    actual = {"output": compiled(feeds)[0]}
    with open_runtime("ort-cpu", lenet) as runtime:
        expected = runtime.run(feeds)
    with open_runtime("openvino", out) as runtime:
        through_edgekit = runtime.run(feeds)
    for outputs in (actual, through_edgekit):
        parity = compare_outputs(expected, outputs).outputs[0]
        assert parity.cosine >= 0.95 and parity.top1_agreement >= 0.9, parity


@pytest.mark.tensorrt
def test_tensorrt_fp16_and_int8_engines_build(lenet, labelled, tmp_path):
    import json

    from edgekit.quantize.base import quantize

    _, calib = labelled
    for mode, config in (("fp16", QuantizeConfig(mode="fp16", backend="trt")),
                         ("int8", QuantizeConfig(backend="trt", calib=str(calib), calib_size=16))):
        out = tmp_path / f"{mode}.engine"
        result = quantize(lenet, out, config)
        assert out.stat().st_size > 0 and result.meta.precision == mode
        recorded = json.loads(json.loads(out.with_suffix(".engine.json").read_text())["recipe"])
        assert recorded["runtime_target"] == "trt"
        # the built engine was run once against FP32 and the agreement recorded
        assert recorded["check"]["samples"] > 0 and recorded["check"]["cosine"] > 0.98


def test_metrics_are_in_points_by_the_evaluators_own_unit(lenet, labelled):
    """An evaluator reporting fractions says so (points_per_unit = 100); the report shows points."""
    import json

    from edgekit.evaluate.metrics import EVALUATORS, CocoEvaluator, TopKEvaluator
    from edgekit.matrix.variants import Variant
    from edgekit.tasks import TASKS
    from edgekit.tasks.classification import ClassificationTask

    assert CocoEvaluator.points_per_unit == 100.0 and TopKEvaluator.points_per_unit == 1.0

    class FractionTopK(TopKEvaluator):
        points_per_unit = 100.0

        def compute(self):
            return {k: v if k == "count" else v / 100.0 for k, v in super().compute().items()}

    class FractionTask(ClassificationTask):
        name = "fraction-classification"

    TASKS.add(FractionTask.name, FractionTask)
    EVALUATORS.add(FractionTask.name, FractionTopK)
    try:
        split, _ = labelled
        meta = read_meta(lenet).with_(task=FractionTask.name)
        # varied inputs: zeros would give one output for every sample, which is nothing to compare
        feeds = [{"input": np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)}]
        report = measure([Variant(lenet)], meta, QUICK, split, feeds)
    finally:
        TASKS._targets.pop(FractionTask.name)
        EVALUATORS._targets.pop(FractionTask.name)
    (row,) = report.rows
    assert row.accuracy == 100.0 and row.metrics["top1"] == 100.0 and row.metrics["count"] == 64
    data = json.loads(json.dumps(report.to_dict()))
    assert data["rows"][0]["top1_agreement_pct"] == 100.0 and "percent" in data["units"]["top1_agreement_pct"]
