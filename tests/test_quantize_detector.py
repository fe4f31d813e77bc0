"""INT8 on the shapes detector (a short training run): ORT's pre-processing of its graph, NNCF's IR,
mAP kept on the test split through `edgekit eval`, drops in points in the report."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow  # every test here trains the shapes detector first

pytest.importorskip("edgekit.train.detector")

SMALL = {"train_size": 256, "val_size": 16, "test_size": 80, "eval_every": 4, "eval_size": 16}
EPOCHS = 4  # ~10 s; enough for a non-zero mAP whose drop can be measured


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    from edgekit.train import RECIPES, TrainConfig

    config = TrainConfig(data="shapes", output_dir=tmp_path_factory.mktemp("det"), seed=0, epochs=EPOCHS,
                         batch_size=16, options=SMALL, progress=False)
    return RECIPES.get("detector")(config).onnx


def _map(model, runtime: str) -> dict:
    """mAP on the model's own test split (rebuilt from the metadata, as `edgekit eval` does)."""
    from edgekit.evaluate.across_runtimes import compare_runtimes

    record = compare_runtimes(model, runtime, None, "test", None, 16, {}, False).records[0]
    assert record.dataset == "shapes" and record.count == SMALL["test_size"]
    return {"precision": record.precision, "metrics": record.metrics}


@pytest.mark.parametrize("backend,suffix,runtime", [
    ("ort", ".onnx", "ort-cpu"), pytest.param("nncf", ".xml", "openvino", marks=pytest.mark.openvino)])
def test_detector_int8_keeps_map(detector, tmp_path, backend, suffix, runtime):
    target = tmp_path / f"det-int8{suffix}"
    result = run_cli("quantize", str(detector), "-o", str(target), "--backend", backend, "--calib", "shapes",
                     "--calib-size", "32", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # only the output: ORT's failed symbolic shape inference leaves no temp files in the working directory
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({target.name, target.with_suffix(".bin").name}
                                                                if backend == "nncf" else {target.name})
    fp32, int8 = _map(detector, runtime), _map(target, runtime)
    assert fp32["metrics"]["map50"] > 0.05  # the short run learned something the drop can be measured on
    assert int8["precision"] == "int8"
    assert fp32["metrics"]["map50"] - int8["metrics"]["map50"] <= 0.05


def test_report_gives_map_drops_in_points(detector, tmp_path):
    report = tmp_path / "report.json"
    result = run_cli("quantize", str(detector), "-o", str(tmp_path / "best.onnx"), "--calib", "shapes",
                     "--calib-size", "16", "--report", "--runtime", "ort-cpu", "--threads", "1", "--duration", "0.2",
                     "--json", str(report))
    assert result.returncode == 0, result.stderr
    rows = {r["variant"]: r for r in json.loads(report.read_text())["rows"]}
    fp32, int8 = rows["fp32"], rows["ort-int8-static"]
    assert fp32["metric"] == "map50_95" and fp32["metrics"]["count"] == SMALL["test_size"]
    assert 5 < fp32["metrics"]["map50"] <= 100  # points, as --max-drop reads them
    assert int8["accuracy_drop"] == pytest.approx(fp32["accuracy"] - int8["accuracy"])
    assert int8["accuracy"] == pytest.approx(int8["metrics"]["map50_95"])
