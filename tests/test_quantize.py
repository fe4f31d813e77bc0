"""Real quantization runs on small models: INT8 static (QDQ), dynamic (integer kernels), FP16,
the recipe in the metadata, calibration sources and the CLI's error paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli

from edgekit.errors import BadInputError
from edgekit.meta import read_meta
from edgekit.parity import compare_outputs
from edgekit.quantize.base import QuantizeConfig, file_sha256, quantize
from edgekit.runtimes import open_runtime


def _images(count: int, size: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth random images (blurred noise + gradients), closer to photos than white noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, size // 8, size // 8, channels))
    images = coarse.repeat(8, axis=1).repeat(8, axis=2)
    images += np.linspace(0, 40, size)[None, None, :, None]
    return images.clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def resnet(zoo_onnx):
    return zoo_onnx("resnet18", dynamic_batch=True).path


@pytest.fixture(scope="module")
def lenet(zoo_onnx):
    return zoo_onnx("lenet5", dynamic_batch=True).path


@pytest.fixture(scope="module")
def calib_npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "images.npz"
    np.savez(path, images=_images(32, 72))
    return path


def _feeds(model: Path, count: int = 16, seed: int = 1) -> dict[str, np.ndarray]:
    from edgekit.quantize.calibration import preprocess

    return preprocess(list(_images(count, 72, seed=seed)), read_meta(model))


def _agreement(reference: Path, candidate: Path, feeds):
    outputs = []
    for path in (reference, candidate):
        with open_runtime("ort-cpu", path) as runtime:
            outputs.append(runtime.run(feeds))
    return compare_outputs(outputs[0], outputs[1]).outputs[0]


def _op_types(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_static_int8_is_qdq_close_to_fp32_and_records_its_recipe(resnet, calib_npz, tmp_path):
    out = tmp_path / "int8.onnx"
    result = quantize(resnet, out, QuantizeConfig(calib=str(calib_npz), calib_size=24))
    assert {"QuantizeLinear", "DequantizeLinear"} <= _op_types(out)
    assert result.node_types["QuantizeLinear"] >= 20  # every conv input, not a token few
    parity = _agreement(resnet, out, _feeds(resnet))
    assert parity.cosine >= 0.98, parity
    meta = read_meta(out)
    assert meta.precision == "int8" and meta.input_size == (64, 64) and meta.model_name == "resnet18"
    recipe = meta.recipe
    assert recipe["mode"] == "int8-static" and recipe["method"] == "minmax" and recipe["per_channel"] is True
    assert recipe["activations"] == "u8" and recipe["calib_size"] == 24 and recipe["calib_samples"] == 24
    assert recipe["source_sha256"] == file_sha256(resnet) and recipe["runtime_target"] == "ort-cpu"
    assert recipe["check"]["cosine"] >= 0.98 and 0 <= recipe["check"]["top1_agreement_pct"] <= 100  # percent
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8.onnx"]  # no helper files left beside it


def test_dynamic_int8_uses_integer_kernels(resnet, tmp_path):
    out = tmp_path / "dyn.onnx"
    quantize(resnet, out, QuantizeConfig(mode="int8-dynamic"))
    assert "ConvInteger" in _op_types(out) and "DynamicQuantizeLinear" in _op_types(out)
    assert _agreement(resnet, out, _feeds(resnet)).cosine >= 0.98
    recipe = read_meta(out).recipe
    assert recipe["mode"] == "int8-dynamic" and recipe["calib_size"] is None


def test_fp16_runs_with_float32_io_and_agrees(lenet, tmp_path):
    import onnx

    out = tmp_path / "fp16.onnx"
    quantize(lenet, out, QuantizeConfig(mode="fp16"))
    model = onnx.load(str(out))
    assert {init.data_type for init in model.graph.initializer} == {onnx.TensorProto.FLOAT16}
    with open_runtime("ort-cpu", out) as runtime:
        assert [spec.dtype for spec in [*runtime.inputs.values(), *runtime.outputs.values()]] == ["float32"] * 2
    parity = _agreement(lenet, out, _feeds(lenet))
    assert parity.cosine >= 0.999 and parity.top1_agreement == 1.0
    assert read_meta(out).precision == "fp16"


def test_image_folder_calibration_with_entropy_per_tensor(lenet, tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs" / "sub"
    folder.mkdir(parents=True)
    for index, image in enumerate(_images(12, 40, seed=3)):
        Image.fromarray(image).save(folder / f"{index}.png")
    out = tmp_path / "q.onnx"
    quantize(lenet, out, QuantizeConfig(calib=str(tmp_path / "imgs"), calib_size=10, method="entropy",
                                        per_channel=False))
    recipe = read_meta(out).recipe
    assert recipe["method"] == "entropy" and recipe["per_channel"] is False and recipe["calib_samples"] == 10
    assert _agreement(lenet, out, _feeds(lenet)).cosine >= 0.98


def test_preprocessed_npz_inputs_and_sensitive_layer_exclusion(lenet, tmp_path):
    import onnx

    npz = tmp_path / "inputs.npz"
    np.savez(npz, input=_feeds(lenet, 16)["input"])
    out = tmp_path / "q.onnx"
    quantize(lenet, out, QuantizeConfig(calib=str(npz), method="percentile", exclude=("@first", "@last")))
    excluded = read_meta(out).recipe["excluded_nodes"]
    assert len(excluded) == 2
    graph = onnx.load(str(out)).graph
    dequantized = {o for node in graph.node if node.op_type == "DequantizeLinear" for o in node.output}
    by_name = {node.name: node for node in graph.node}
    for name in excluded:  # the kept-float layers read float weights, the others dequantized ones
        assert by_name[name].input[1] not in dequantized
    weighted = [n for n in graph.node if n.op_type in ("Conv", "Gemm") and n.name not in excluded]
    assert weighted and all(n.input[1] in dequantized for n in weighted)


def test_library_errors_are_bad_input(lenet, tmp_path):
    with pytest.raises(BadInputError, match="needs calibration data"):
        QuantizeConfig(mode="int8-static")
    with pytest.raises(BadInputError, match="unknown quantization mode"):
        QuantizeConfig(mode="int4")
    with pytest.raises(BadInputError, match="no node named"):
        quantize(lenet, tmp_path / "x.onnx", QuantizeConfig(mode="int8-dynamic", exclude=("nope",)))
    fp16 = tmp_path / "h.onnx"
    quantize(lenet, fp16, QuantizeConfig(mode="fp16"))
    with pytest.raises(BadInputError, match="already fp16"):
        quantize(fp16, tmp_path / "y.onnx", QuantizeConfig(mode="int8-dynamic"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.onnx"]


def test_cli_quantizes_and_reports_what_it_wrote(lenet, calib_npz, tmp_path):
    out = tmp_path / "q.onnx"
    result = run_cli("quantize", str(lenet), "-o", str(out), "--calib", str(calib_npz), "--calib-size", "16")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "QuantizeLinear" in result.stdout and "cosine" in result.stdout
    assert read_meta(out).recipe["calib_size"] == 16


@pytest.mark.slow
def test_cli_error_paths_leave_no_file(lenet, tmp_path):
    out = tmp_path / "out.onnx"
    empty = tmp_path / "empty"
    empty.mkdir()
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, pixels=np.zeros((4, 1, 32, 32), np.float32))
    bad_shape = tmp_path / "shape.npz"
    np.savez(bad_shape, input=np.zeros((4, 3, 32, 32), np.float32))
    cases = [
        (["--mode", "int4", "--calib", str(wrong)], "unknown quantization mode 'int4'"),
        (["--calib", str(empty)], "no calibration images"),
        (["--calib", str(wrong)], "has arrays [pixels] but the model expects inputs [input]"),
        (["--calib", str(bad_shape)], "model expects [batch, 1, 32, 32]"),
        (["--calib", str(tmp_path / "missing.npz")], "calibration file not found"),
        ([], "int8-static needs calibration data"),
        (["--calib", "digitz"], "unknown dataset 'digitz'"),
        (["--mode", "int8-dynamic", "--method", "kl"], "unknown calibration method 'kl'"),
        (["--mode", "int8-dynamic", "--report", "--max-drop", "1"], "--max-drop needs labelled data"),
        (["--mode", "fp16", "--calib", "digits"], "--calib: only int8-static uses calibration"),
        (["-m", "fp16", "-m", "int8-dynamic", "--calib-size", "8", "--method", "entropy"],
         "--calib-size, --method: only int8-static uses calibration, and no selected mode (fp16, int8-dynamic) does"),
    ]
    for args, message in cases:
        assert_one_line_error(run_cli("quantize", str(lenet), "-o", str(out), *args), message)
    assert_one_line_error(run_cli("quantize", str(tmp_path / "nope.onnx"), "-o", str(out), "--mode", "fp16"),
                    "model file not found")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "shape.npz", "wrong.npz"]


@pytest.mark.slow
def test_cli_report_sweeps_modes_and_writes_each_variant(lenet, calib_npz, tmp_path):
    import json

    out = tmp_path / "lenet.onnx"
    result = run_cli("quantize", str(lenet), "-o", str(out), "-m", "int8-static", "-m", "fp16", "--calib",
                     str(calib_npz), "--calib-size", "8", "--report", "-r", "ort-cpu", "--threads", "1",
                     "--duration", "0.2", "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    assert "speedup" in result.stdout and "cosine" in result.stdout
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert [(r["variant"], r["runtime"]) for r in rows] == [
        ("fp32", "ort-cpu"), ("ort-int8-static", "ort-cpu"), ("ort-fp16", "ort-cpu")]
    assert all(r["p50_ms"] > 0 and r["cosine"] > 0.98 for r in rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet.ort-fp16.onnx", "lenet.ort-int8-static.onnx", "r.json"]
    assert read_meta(tmp_path / "lenet.ort-fp16.onnx").precision == "fp16"


@pytest.mark.slow
def test_agreement_check_uses_many_samples_beyond_calibration(zoo_onnx, calib_npz, tmp_path):
    fixed = zoo_onnx("lenet5").path  # batch fixed at 1: the check runs the samples one by one
    out = tmp_path / "q.onnx"
    result = run_cli("quantize", str(fixed), "-o", str(out), "--calib", "digits", "--calib-size", "8")
    assert result.returncode == 0, result.stderr
    assert "vs FP32 on 32 samples (digits val split)" in result.stdout.replace("\n", " ")
    check = read_meta(out).recipe["check"]
    assert check["samples"] == 32 and check["data"] == "digits val split" and check["cosine"] > 0.9
    quantize(fixed, tmp_path / "h.onnx", QuantizeConfig(mode="fp16"))
    assert read_meta(tmp_path / "h.onnx").recipe["check"]["samples"] == 32
    quantize(fixed, tmp_path / "n.onnx", QuantizeConfig(calib=str(calib_npz), calib_size=4))
    check = read_meta(tmp_path / "n.onnx").recipe["check"]  # an .npz is all there is: its 32 images
    assert check["samples"] == 32 and "calibration data" in check["data"]


@pytest.mark.slow
def test_calibration_data_must_fit_the_models_task_and_labels(lenet, resnet, tmp_path):
    from PIL import Image

    out = tmp_path / "q.onnx"
    assert_one_line_error(run_cli("quantize", str(resnet), "-o", str(out), "--calib", "digits"),
                          "differ from the classes of digits", "calibrate on the data it was trained for")
    assert_one_line_error(run_cli("quantize", str(lenet), "-o", str(out), "--calib", "shapes"),
                          "'shapes' is detection data, the model is a classification model")
    folder = tmp_path / "pets"
    for index, name in enumerate(("cat", "dog")):
        (folder / name).mkdir(parents=True)
        Image.fromarray(_images(1, 72, seed=index)[0]).save(folder / name / "a.png")
    assert_one_line_error(run_cli("quantize", str(lenet), "-o", str(out), "--calib", str(folder)),
                          "differ from the classes of")
    assert not out.exists()
    # an ImageNet model on one's own image folder is legitimate: a warning, and the model is written
    result = run_cli("quantize", str(resnet), "-o", str(out), "--calib", str(folder), "--calib-size", "2")
    assert result.returncode == 0 and out.is_file(), result.stderr
    assert "warning: the model's labels" in result.stderr
