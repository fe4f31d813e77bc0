"""`edgekit compare FP32 INT8` on real inputs: a trained LeNet-5 and its INT8 model agree within the
budget on digits (also through golden outputs saved on real images), a deliberately broken INT8 model
does not, random inputs are refused for a reduced-precision judgement, and bad requests are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from edgekit.compare import RANDOM_NOTE, CompareInputs, compare
from edgekit.compare_files import Budget, judge_budget, precision_of
from edgekit.errors import BadInputError
from edgekit.parity import BoxAgreement, compare_outputs
from test_quantize_lenet import trained_lenet  # noqa: F401  (the session's trained LeNet-5)

pytestmark = pytest.mark.slow  # LeNet-5 is trained on digits and quantized first


@pytest.fixture(scope="module")
def models(trained_lenet, tmp_path_factory) -> dict[str, Path]:  # noqa: F811
    """fp32, its INT8 (digits calibration) and a broken INT8: the first convolution's weight scale ×4."""
    import onnx
    from onnx import numpy_helper

    from edgekit.quantize.base import QuantizeConfig, quantize

    folder = tmp_path_factory.mktemp("compare-files")
    int8 = quantize(trained_lenet, folder / "int8.onnx", QuantizeConfig(calib="digits", calib_size=128)).path
    model = onnx.load(str(int8))
    weights = {init.name: init for init in model.graph.initializer}
    node = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights
                and weights[n.input[0]].dims[1:2] == [1])  # the 1-channel input's 5×5 filters
    scale = weights[node.input[1]]
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * np.float32(4), scale.name))
    onnx.save(model, str(folder / "broken.onnx"))
    return {"fp32": trained_lenet, "int8": int8, "broken": folder / "broken.onnx"}


def test_int8_keeps_its_budget_on_digits_and_a_broken_one_does_not(models):
    record = compare(models["fp32"], ["ort-cpu"], candidate=models["int8"], io=CompareInputs(data="digits"))
    (result,) = record.results
    assert record.passed and record.precision == "fp32 vs int8" and record.budget == Budget()
    assert record.input_source == "256 test images of digits" and record.input_note == ""
    assert result.budget.top1 >= 0.98 and result.budget.cosine > 0.999 and result.budget.box_match is None
    assert result.summary().startswith("top-1 agreement ") and result.summary().endswith(": ok")
    broken = compare(models["fp32"], ["ort-cpu"], candidate=models["broken"], io=CompareInputs(data="digits"))
    (result,) = broken.results
    assert not broken.passed and result.budget.top1 < 0.95 and result.budget.cosine < 0.99
    assert result.summary().endswith(": FAILED")


def test_cli_fp32_int8_on_digits(models, tmp_path):
    passed = run_cli("compare", str(models["fp32"]), str(models["int8"]), "--data", "digits",
                     "--json", str(tmp_path / "c.json"))
    assert passed.returncode == 0, passed.stderr
    assert "ort-cpu: fp32 vs int8 — top-1 agreement" in passed.stdout.replace("\n", " ")
    assert "all runtimes pass" in passed.stdout and "random" not in passed.stdout
    record = json.loads((tmp_path / "c.json").read_text())
    assert record["passed"] and record["budget"] == {"min_top1": 0.98, "min_cosine": 0.99, "min_box_match": 0.9,
                                                     "score_tol": 0.05, "min_pixels": 0.99, "min_miou": 0.95}
    assert record["results"][0]["budget"]["passed"] and record["candidate_path"] == str(models["int8"])
    failed = run_cli("compare", str(models["fp32"]), str(models["broken"]), "--data", "digits")
    assert failed.returncode == 1
    (line,) = failed.stderr.strip().splitlines()
    assert line.startswith("error: compare failed against lenet5.onnx (fp32) — ort-cpu: top-1 agreement")
    strict = run_cli("compare", str(models["fp32"]), str(models["int8"]), "--data", "digits", "--min-top1", "100",
                     "--min-cosine", "0.99999")
    assert strict.returncode == 1 and "(budget ≥ 100%)" in strict.stderr


def test_random_inputs_are_refused_for_a_reduced_precision_judgement(models, tmp_path):
    saved = tmp_path / "golden.npz"
    with pytest.raises(BadInputError, match=r"comparing fp32 with int8 on random N\(0,1\) inputs measures noise, "
                                            "not accuracy: give real inputs with --images DIR or --data NAME"):
        compare(models["fp32"], ["ort-cpu"], candidate=models["int8"], io=CompareInputs(save_outputs=saved))
    assert not saved.exists()
    same = compare(models["fp32"], ["ort-cpu", "openvino"], candidate=models["fp32"])  # FP32 files: tolerance
    assert same.passed and same.budget is None and same.precision == "fp32" and same.input_note == RANDOM_NOTE
    assert same.results[0].parity.max_abs == 0.0


def test_golden_outputs_saved_on_real_images_judge_the_int8_model(models, tmp_path):
    golden, inputs = tmp_path / "golden.npz", tmp_path / "inputs.npz"
    saved = compare(models["fp32"], ["ort-cpu", "openvino"], io=CompareInputs(
        data="digits", samples=64, save_outputs=golden, save_inputs=inputs))
    assert saved.passed and saved.budget is None and golden.is_file() and inputs.is_file()
    record = compare(models["int8"], ["ort-cpu"], io=CompareInputs(inputs=inputs, load_outputs=golden))
    (result,) = record.results
    assert record.passed and record.precision == "saved vs int8" and result.budget.cosine > 0.999
    assert record.reference == "saved outputs golden.npz" and record.batches == 2
    broken = compare(models["broken"], ["ort-cpu"], io=CompareInputs(data="digits", samples=64, load_outputs=golden))
    assert not broken.passed and broken.results[0].budget.top1 < 0.95
    with pytest.raises(BadInputError, match="comparing an int8 model with saved outputs on random"):
        compare(models["int8"], ["ort-cpu"], io=CompareInputs(load_outputs=golden))


def test_images_folder_through_the_models_preprocessing(models, tmp_path):
    from PIL import Image

    from edgekit.datasets import load_split

    (tmp_path / "photos" / "more").mkdir(parents=True)
    for index, image in enumerate(load_split("digits", split="val").images[:20]):
        folder = tmp_path / "photos" / ("more" * (index % 2))
        Image.fromarray(image.squeeze()).convert("RGB").save(folder / f"{index}.png")
    record = compare(models["fp32"], ["ort-cpu"], candidate=models["int8"],
                     io=CompareInputs(images=tmp_path / "photos", samples=12))
    assert record.passed and record.input_source == f"12 images from {tmp_path / 'photos'}"
    assert record.inputs == {"input": [12, 1, 32, 32]}


def test_precision_from_quantization_nodes_without_metadata(models, tmp_path):
    import onnx

    model = onnx.load(str(models["int8"]))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    assert precision_of(tmp_path / "bare.onnx") == "int8" and precision_of(models["fp32"]) == "fp32"


def test_bad_requests_are_one_line_and_write_nothing(models, tmp_path):
    fp32, int8 = str(models["fp32"]), str(models["int8"])
    out = ["--save-outputs", str(tmp_path / "o.npz"), "--json", str(tmp_path / "o.json")]
    cases = [
        ((fp32, int8), "comparing fp32 with int8 on random N(0,1) inputs"),
        ((fp32, int8, "--images", str(tmp_path / "none")), "--images: folder not found"),
        ((fp32, int8, "--images", str(tmp_path), "--data", "digits"), "give one source of inputs, not --images and"),
        ((fp32, int8, "--data", "digitz"), "did you mean 'digits'"),
        ((fp32, int8, "--data", "digits", "--min-top1", "101"), "--min-top1 must be a percentage from 0 to 100"),
        ((fp32, int8, "--data", "digits", "--load-outputs", fp32), "--load-outputs takes one model"),
        (("lenet5", int8, "--data", "digits"), "takes two model files; 'lenet5' is a zoo model"),
    ]
    for args, fragment in cases:
        assert_one_line_error(run_cli("compare", *args, *out), fragment)
    assert not any(tmp_path.glob("o.*"))
    with pytest.raises(BadInputError, match="--samples must be at least 1"):
        compare(fp32, ["ort-cpu"], candidate=int8, io=CompareInputs(data="digits", samples=0))


@pytest.fixture(scope="module")
def detectors(tmp_path_factory) -> dict[str, Path]:
    """The shapes detector after a short training run, its INT8 and a broken INT8 (stem scale ×4)."""
    import onnx
    from onnx import numpy_helper

    pytest.importorskip("edgekit.train.detector")
    from edgekit.quantize.base import QuantizeConfig, quantize
    from edgekit.train import RECIPES, TrainConfig
    from test_quantize_detector import EPOCHS, SMALL

    folder = tmp_path_factory.mktemp("compare-detector")
    fp32 = RECIPES.get("detector")(TrainConfig(data="shapes", output_dir=folder, seed=0, epochs=EPOCHS, batch_size=16,
                                               options=SMALL, progress=False)).onnx
    int8 = quantize(fp32, folder / "int8.onnx", QuantizeConfig(calib="shapes", calib_size=32)).path
    model = onnx.load(str(int8))
    weights = {init.name: init for init in model.graph.initializer}
    node = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights
                and list(weights[n.input[0]].dims[1:2]) == [3])  # the RGB stem
    scale = weights[node.input[1]]
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * np.float32(4), scale.name))
    onnx.save(model, str(folder / "broken.onnx"))
    return {"fp32": fp32, "int8": int8, "broken": folder / "broken.onnx"}


def test_detector_int8_is_judged_by_box_match(detectors):
    record = compare(detectors["fp32"], ["ort-cpu"], candidate=detectors["int8"], io=CompareInputs(data="shapes"))
    (result,) = record.results
    assert record.passed and result.budget.box_match >= 0.9 and result.budget.top1 is None
    assert result.boxes.score_tol == Budget().score_tol and result.boxes.matched > 100
    assert result.summary().startswith("box match ") and record.input_source == "80 test images of shapes"
    broken = compare(detectors["fp32"], ["ort-cpu"], candidate=detectors["broken"], io=CompareInputs(data="shapes"))
    assert not broken.passed and broken.results[0].budget.box_match < 0.5


def test_budget_verdicts_without_models():
    budget = Budget()
    tiny = {"output": np.random.default_rng(0).standard_normal((8, 10)) * 1.9e-9}
    noise = judge_budget(compare_outputs(tiny, {"output": -tiny["output"]}), None, budget)  # random-weight INT8
    assert not noise.passed and noise.summary().startswith("nothing to compare: outputs have no spread (std ")
    boxes = BoxAgreement(10, 9, 9, 1, 0, 0.9, 0.05, 1.0, 0.5, 0.02)
    verdict = judge_budget(compare_outputs({}, {}), boxes, budget)
    assert verdict.box_match == 0.9 and verdict.passed and verdict.summary() == "box match 90.0% (budget ≥ 90%): ok"
    empty = BoxAgreement(0, 0, 0, 0, 0, 1.0, 0.0, 1.0, 0.5, 0.02, "no box above the score threshold 0.3 on either side")
    assert judge_budget(compare_outputs({}, {}), empty, budget).nothing_to_compare.endswith("on either side")
    with pytest.raises(BadInputError, match="--min-cosine must be between -1 and 1"):
        Budget(min_cosine=float("nan"))


def _linear(path: Path, columns: int, task: str | None) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, columns)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "linear",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, columns])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if task:
        model.metadata_props.add(key="task", value=json.dumps(task))
    onnx.save(model, str(path))
    return path


def test_outputs_of_another_shape_are_a_bad_input_only_where_the_task_fixes_them(tmp_path):
    """Embedders of 8 and 4 numbers are two models (exit 2); a file with no task, like a detector whose
    box lists vary, is judged output by output (a failed check, exit 1)."""
    from edgekit.meta import read_meta

    for task, code in (("embedding", 2), (None, 1)):
        a, b = _linear(tmp_path / f"a-{task}.onnx", 8, task), _linear(tmp_path / f"b-{task}.onnx", 4, task)
        assert read_meta(a).task == (task or "unknown")
        result = run_cli("compare", str(a), str(b), "-r", "ort-cpu")
        assert result.returncode == code, result.stdout + result.stderr
        assert ("are not two versions of one model" in result.stderr) == (code == 2)
