"""End to end on a trained model: LeNet-5 trained briefly on digits, quantized to INT8 with
digits calibration through the CLI, evaluated on the digits test split on ONNX Runtime and
OpenVINO (the NNCF IR), and chosen with --report --max-drop."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from conftest import run_cli

from edgekit.datasets import load_split
from edgekit.evaluate.runner import evaluate
from edgekit.meta import read_meta

pytestmark = pytest.mark.slow  # every test here trains LeNet-5 on digits first (or quantizes it)

EPOCHS = 6          # ~2 s on one thread; test top-1 is already > 90 %
BUDGET_PT = 2.0     # INT8 may cost at most this many points of test top-1


def train_lenet(folder: Path, epochs: int = EPOCHS, seed: int = 0) -> Path:
    """A briefly trained LeNet-5 on digits; returns its ONNX file."""
    from edgekit.train.base import RECIPES, TrainConfig

    result = RECIPES.get("lenet5")(TrainConfig(data="digits", output_dir=folder, seed=seed, epochs=epochs,
                                               progress=False))
    return result.onnx


@pytest.fixture(scope="session")
def trained_lenet(tmp_path_factory) -> Path:
    """One trained LeNet-5 shared by this file's tests (and by any test module that imports it)."""
    return train_lenet(tmp_path_factory.mktemp("trained-lenet"))


@pytest.fixture(scope="module")
def digits_test():
    return load_split("digits", split="test", seed=0)


@pytest.fixture(scope="module")
def quantized(trained_lenet, tmp_path_factory):
    """The ORT QDQ model and the NNCF IR, written by `edgekit quantize --calib digits`."""
    folder = tmp_path_factory.mktemp("quantized")
    made = {}
    for backend, suffix in (("ort", ".onnx"), ("nncf", ".xml")):
        if backend == "nncf" and importlib.util.find_spec("nncf") is None:
            continue
        target = folder / f"lenet-int8-{backend}{suffix}"
        result = run_cli("quantize", str(trained_lenet), "-o", str(target), "--backend", backend,
                         "--calib", "digits", "--calib-size", "128")
        assert result.returncode == 0, result.stderr
        assert f"wrote {target}" in result.stdout.replace("\n", "")
        made[backend] = target
    return made


def _top1(model: Path, split, runtime: str) -> float:
    return evaluate(model, split, runtime=runtime).metrics["top1"]


def test_trained_lenet_learns(trained_lenet, digits_test):
    assert _top1(trained_lenet, digits_test, "ort-cpu") > 90


def test_int8_static_keeps_top1_on_onnx_runtime(trained_lenet, quantized, digits_test):
    meta = read_meta(quantized["ort"])
    assert meta.precision == "int8" and meta.recipe["calib_data"] == "digits"
    assert meta.recipe["calib_samples"] == 128
    fp32 = _top1(trained_lenet, digits_test, "ort-cpu")
    int8 = _top1(quantized["ort"], digits_test, "ort-cpu")
    assert fp32 - int8 <= BUDGET_PT, (fp32, int8)


@pytest.mark.openvino
def test_nncf_ir_keeps_top1_on_openvino(trained_lenet, quantized, digits_test):
    ir = quantized["nncf"]
    assert ir.with_suffix(".bin").is_file()
    meta = read_meta(ir)  # from the IR's rt_info
    assert meta.precision == "int8" and meta.task == "classification" and len(meta.labels) == 10
    fp32 = _top1(trained_lenet, digits_test, "openvino")
    int8 = _top1(ir, digits_test, "openvino")
    assert fp32 - int8 <= BUDGET_PT, (fp32, int8)
    # the ORT QDQ model also runs on OpenVINO, within the same budget
    assert fp32 - _top1(quantized["ort"], digits_test, "openvino") <= BUDGET_PT


@pytest.mark.parametrize("backend,runtime", [("ort", "ort-cpu"), pytest.param("nncf", "openvino",
                                                                              marks=pytest.mark.openvino)])
def test_edgekit_eval_reads_the_quantized_model(quantized, backend, runtime, tmp_path):
    out = tmp_path / "eval.json"
    result = run_cli("eval", str(quantized[backend]), "--runtime", runtime, "--no-torch", "--json", str(out))
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())["records"][0]
    assert record["dataset"] == "digits" and record["precision"] == "int8" and record["count"] == 270
    assert record["metrics"]["top1"] > 88


def test_max_drop_keeps_a_faster_variant_or_fp32(trained_lenet, tmp_path):
    """The kept variant is named, fits the budget and beats FP32; slower variants stay in the table."""
    output = tmp_path / "best.onnx"
    report = tmp_path / "report.json"
    result = run_cli("quantize", str(trained_lenet), "-o", str(output), "--calib", "digits", "--calib-size", "64",
                     "--mode", "int8-static", "--mode", "int8-dynamic", "--report", "--max-drop", str(BUDGET_PT),
                     "--runtime", "ort-cpu", "--threads", "1", "--duration", "0.2", "--json", str(report))
    assert result.returncode == 0, result.stderr
    rows = json.loads(report.read_text())["rows"]
    quantized_rows = [r for r in rows if r["variant"] != "fp32"]
    assert {r["variant"] for r in quantized_rows} >= {"ort-int8-static", "ort-int8-dynamic"}
    assert all(r["accuracy"] is not None and r["speedup"] is not None for r in rows)
    text = " ".join(result.stdout.split())
    kept_line = next(line for line in result.stdout.splitlines() if line.startswith("kept "))
    if kept_line.startswith("kept FP32"):
        kept_path = output
        assert read_meta(kept_path).precision == "fp32"
    else:
        name = kept_line.split()[1]
        row = next(r for r in rows if r["variant"] == name and r["runtime"] == "ort-cpu")
        assert row["speedup"] >= 1.0 and row["accuracy_drop"] <= BUDGET_PT
        assert read_meta(output).precision == "int8"
        assert "◀ kept" in text
    for row in quantized_rows:  # a slower variant is shown as slower, with why it was not kept
        if row["speedup"] < 1 and row["variant"] != "fp32-rerun":
            assert f"{row['variant']} on ort-cpu: not faster than FP32 by 5% ({row['speedup']:.2f}x)" in text \
                or f"{row['variant']} on ort-cpu: drop" in text
            assert "(slower)" in text


def test_calibration_and_report_use_the_models_own_split(tmp_path):
    """A LeNet trained on digits 0-4 with split seed 3: the report calibrates and evaluates on that
    model's own train/test split (its 5 classes, none of its training images in the test)."""
    from edgekit.train.base import RECIPES, TrainConfig

    model = RECIPES.get("lenet5")(TrainConfig(data="digits", output_dir=tmp_path / "m", seed=3, epochs=3,
                                              options={"classes": "0-4"}, progress=False)).onnx
    report = tmp_path / "report.json"
    result = run_cli("quantize", str(model), "-o", str(tmp_path / "q.onnx"), "--calib", "digits", "--calib-size", "32",
                     "--report", "--runtime", "ort-cpu", "--duration", "0.1", "--json", str(report))
    assert result.returncode == 0, result.stderr
    rows = json.loads(report.read_text())["rows"]
    expected = len(load_split("digits", split="test", seed=3, classes="0-4"))
    assert all(r["metrics"]["count"] == expected for r in rows)
    assert rows[0]["accuracy"] > 80  # its own labels: a 5-class model scored on 10 classes would be far lower
