"""`edgekit compare`: pass and fail paths, torch reference, --inputs, one-line errors, exit codes."""

import json

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from edgekit.compare import RANDOM_NOTE, CompareInputs, compare
from edgekit.errors import BadInputError, RuntimeUnavailableError

pytestmark = pytest.mark.openvino


def test_zoo_model_passes_against_torch(tmp_path):
    result = run_cli("compare", "lenet5", "--runtimes", "ort-cpu,ov", "--batch", "2",
                     "--json", str(tmp_path / "c.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "c.json").read_text())
    assert record["reference"] == "torch" and record["passed"]
    assert record["inputs"] == {"input": [2, 1, 32, 32]} and record["input_source"] == "random(seed=0)"
    assert [r["runtime"] for r in record["results"]] == ["ort-cpu", "openvino"]
    for row in record["results"]:
        (output,) = row["parity"]["outputs"]
        assert output["name"] == "output" and output["top1_agreement"] == 1.0
        assert 0 <= output["max_abs"] < 1e-4 and output["cosine"] > 0.9999
    assert "all runtimes pass" in result.stdout
    assert record["input_note"] == RANDOM_NOTE and RANDOM_NOTE in result.stdout.replace("\n", " ")


def test_zoo_model_against_torch_on_a_data_set():
    record = compare("lenet5", ["ort-cpu"], io=CompareInputs(data="digits", samples=40))
    assert record.passed and record.input_source == "40 test images of digits" and record.input_note == ""
    assert record.inputs == {"input": [1, 1, 32, 32]} and record.batches == 40   # the export's fixed batch 1
    assert record.results[0].parity.outputs[0].top1_agreement == 1.0


def test_onnx_file_uses_the_first_runtime_as_reference(zoo_onnx):
    record = compare(zoo_onnx("mobilenet_v3_small").path, ["ort-cpu", "openvino"], seed=3)
    assert record.reference == "ort-cpu" and [r.runtime for r in record.results] == ["openvino"]
    assert record.passed and record.results[0].parity.outputs[0].top1_agreement == 1.0
    assert record.results[0].version and record.results[0].device


def test_verdict_follows_the_tolerance(zoo_onnx):
    path = zoo_onnx("resnet18").path
    exact = compare(path, ["ort-cpu", "openvino"], atol=0.0, rtol=0.0)
    (output,) = exact.results[0].parity.outputs
    assert exact.passed == (output.max_abs == 0.0)
    loose = compare(path, ["ort-cpu", "openvino"], atol=max(output.max_abs, 1e-6) * 2, rtol=0.0)
    assert loose.passed


@pytest.mark.slow
def test_failure_prints_writes_json_and_exits_1(tmp_path):
    """No tolerance at all: a runtime's float sums (other kernels, other order) differ from torch's in
    the last bits on any CPU."""
    result = run_cli("compare", "resnet18", "--input-size", "64", "-r", "ort-cpu,openvino", "--atol", "0",
                     "--rtol", "0", "--min-cosine", "1", "--json", str(tmp_path / "c.json"))
    assert result.returncode == 1, result.stderr
    record = json.loads((tmp_path / "c.json").read_text())
    failed = [row["runtime"] for row in record["results"] if not row["passed"]]
    assert failed and record["passed"] is False
    assert "FAIL" in result.stdout and f"failed: {', '.join(failed)}" in result.stdout
    assert result.stderr.strip().startswith(f"error: compare failed against torch — {failed[0]}:")


def test_a_reduced_precision_runtime_option_is_judged_against_the_budget_on_real_inputs(zoo_onnx, tmp_path):
    """-O openvino.precision=bf16 computes below FP32 by design: FP32's 1e-4 tolerance said FAIL; it is
    judged like an INT8 file (top-1 agreement, cosine), which needs real inputs, not noise."""
    import openvino as ov

    path = zoo_onnx("lenet5", dynamic_batch=True).path
    noise = run_cli("compare", str(path), "-r", "ort-cpu,openvino", "-O", "openvino.precision=bf16")
    assert_one_line_error(noise, "comparing openvino at precision=bf16 on random N(0,1) inputs measures noise")
    x = np.random.default_rng(7).random((8, 1, 32, 32)).astype(np.float32)
    np.savez(tmp_path / "in.npz", input=x)
    result = run_cli("compare", str(path), "-r", "ort-cpu,openvino", "-O", "openvino.precision=bf16",
                     "--inputs", str(tmp_path / "in.npz"), "--json", str(tmp_path / "c.json"))
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):   # or capped: --isa avx2
        assert_one_line_error(result, "cannot run bf16")
        return
    record = json.loads((tmp_path / "c.json").read_text())
    assert record["precision"] == "fp32 vs openvino at precision=bf16" and record["budget"], record


def test_inputs_from_npz(zoo_onnx, tmp_path):
    path = zoo_onnx("lenet5", dynamic_batch=True).path
    x = np.random.default_rng(7).standard_normal((3, 1, 32, 32)).astype(np.float32)
    np.savez(tmp_path / "in.npz", input=x)
    record = compare(path, ["ort-cpu", "openvino"], inputs=tmp_path / "in.npz")
    assert record.inputs == {"input": [3, 1, 32, 32]} and record.input_source.endswith("in.npz")
    assert record.passed

    np.savez(tmp_path / "wrong.npz", images=x)
    result = run_cli("compare", str(path), "-r", "ort-cpu,openvino", "--inputs", str(tmp_path / "wrong.npz"))
    assert_one_line_error(result, "wrong.npz holds arrays ['images']",
                          "expects inputs input: float32[batch, 1, 32, 32]")
    np.savez(tmp_path / "f64.npz", input=x.astype(np.float64))
    result = run_cli("compare", str(path), "-r", "ort-cpu,openvino", "--inputs", str(tmp_path / "f64.npz"))
    assert_one_line_error(result, "input 'input' has dtype float64")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(BadInputError, match="is not an .npz archive"):
        compare(path, ["ort-cpu", "openvino"], inputs=tmp_path / "bad.npz")


def test_bad_requests_are_one_line_errors(zoo_onnx, tmp_path):
    path = str(zoo_onnx("lenet5").path)
    assert_one_line_error(run_cli("compare", path, "-r", "ort-cpu"), "needs at least two runtimes")
    assert_one_line_error(run_cli("compare", path, "-r", "ort-cpu,openvno"), "did you mean 'openvino'")
    assert_one_line_error(run_cli("compare", path, "-r", "ort-cpu,ov,openvino"), "runtime listed twice: openvino")
    assert_one_line_error(run_cli("compare", path, "-O", "precision=bf16"), "RUNTIME.KEY=VALUE")
    assert_one_line_error(run_cli("compare", path, "-O", "trt.fp16=true"), "options given for runtime trt")
    assert_one_line_error(run_cli("compare", path, "-O", "openvino.speed=1"), "has no option speed")


def test_missing_runtime_fails_before_exporting(tmp_path):
    from edgekit.runtimes import get_runtime

    if get_runtime("trt").probe().available:
        pytest.skip("TensorRT is available here")
    result = run_cli("compare", "resnet50", "-r", "ort-cpu,trt", env={"EDGEKIT_CACHE_DIR": str(tmp_path)})
    assert_one_line_error(result, "runtime 'trt' is not available", "pip install 'edgekit[tensorrt]'")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    with pytest.raises(RuntimeUnavailableError):
        compare("resnet50", ["ort-cpu", "trt"])
