"""`edgekit fuse` and `export --fuse-preprocess`: uint8 NHWC frames in, checked against numpy, metadata
recorded, `compare` across runtimes, and one-line errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from edgekit.errors import BadInputError
from edgekit.meta import read_meta
from edgekit.tasks.fused import FusedPreprocess, stack_frames


@pytest.fixture(scope="module")
def lenet(zoo_onnx):
    return zoo_onnx("lenet5").path


@pytest.fixture(scope="module")
def fused_fixed(lenet, tmp_path_factory):
    from edgekit.exporters.config import FuseConfig
    from edgekit.exporters.fuse import fuse_model

    target = tmp_path_factory.mktemp("fused") / "lenet-480x640.onnx"
    return fuse_model(lenet, target, FuseConfig(frame=(480, 640), frame_color="BGR"))


def test_fuse_cli_writes_a_frame_model_with_its_record(lenet, tmp_path):
    target = tmp_path / "lenet-fused.onnx"
    result = run_cli("fuse", str(lenet), "-o", str(target), "--frame", "240x320", "--frame-color", "RGB")
    assert result.returncode == 0, result.stderr
    assert "RGB->GRAY" in result.stdout and "input tensor max abs diff" in result.stdout
    meta, plain = read_meta(target), read_meta(lenet)
    record = meta.extra["fused_preprocess"]
    assert record["frame"] == [240, 320] and record["color"] == "RGB" and record["dtype"] == "uint8"
    assert record["steps"][0].startswith("resize(32x32") and len(record["source_sha256"]) == 64
    assert (meta.input_name, meta.input_layout) == ("frame", "NHWC")
    assert (meta.task, meta.mean, meta.std, meta.input_size, meta.color) == (
        plain.task, plain.mean, plain.std, plain.input_size, plain.color)
    from edgekit.runtimes import open_runtime

    with open_runtime("ort-cpu", target) as runtime:
        spec = runtime.inputs["frame"]
    assert spec.shape == (1, 240, 320, 3) and np.dtype(spec.dtype) == np.uint8


def test_fused_model_predicts_like_the_plain_one(lenet, fused_fixed):
    from edgekit.predictor import Predictor

    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    with Predictor(lenet) as plain, Predictor(fused_fixed.path) as fused:
        expected = plain.task.preprocess([frame], plain.meta, route="numpy")[0]
        logits = plain.runtime.run(expected)["output"]
        # BGR-fused model: OpenCV frames go in as they are; RGB frames are reversed as a view
        got_bgr = fused.runtime.run(fused.task.preprocess([frame[:, :, ::-1]], fused.meta, color="BGR")[0])["output"]
        got_rgb = fused.runtime.run(fused.task.preprocess([frame], fused.meta)[0])["output"]
    np.testing.assert_allclose(got_bgr, logits, atol=1e-4)
    np.testing.assert_allclose(got_rgb, logits, atol=1e-4)


def test_stack_frames_checks_size_dtype_and_batches(fused_fixed):
    meta = fused_fixed.meta
    assert FusedPreprocess.of(meta).frame == (480, 640) and FusedPreprocess.of(meta).color == "BGR"
    frame = np.zeros((480, 640, 3), np.uint8)
    batch, transforms = stack_frames([frame], meta, color="BGR")
    assert batch.shape == (1, 480, 640, 3) and np.shares_memory(batch, frame)  # one frame: no copy
    assert transforms[0].original_size == (480, 640)
    with pytest.raises(BadInputError, match="takes 480x640 frames, got 480x639"):
        stack_frames([np.zeros((480, 639, 3), np.uint8)], meta)
    with pytest.raises(BadInputError, match="uint8"):
        stack_frames([frame.astype(np.float32)], meta)
    with pytest.raises(BadInputError, match="expected an HxW"):
        stack_frames([np.zeros((480, 640, 2), np.uint8)], meta)
    dynamic = meta.with_(extra={**meta.extra, "fused_preprocess": {"frame": None, "color": "RGB"}})
    assert stack_frames([frame, frame], dynamic)[0].shape == (2, 480, 640, 3)
    with pytest.raises(BadInputError, match="one at a time"):
        stack_frames([frame, np.zeros((48, 64, 3), np.uint8)], dynamic)
    gray = stack_frames([np.zeros((48, 64), np.uint8)], dynamic, color="GRAY")[0]
    assert gray.shape == (1, 48, 64, 3)


@pytest.mark.openvino
@pytest.mark.slow
def test_export_fuse_preprocess_passes_compare_across_runtimes(tmp_path):
    target = tmp_path / "mnv3.onnx"
    result = run_cli("export", "mobilenet_v3_small", "-o", str(target), "--input-size", "64",
                     "--fuse-preprocess", "--frame", "120x160", "--frame-color", "BGR")
    assert result.returncode == 0, result.stderr
    assert "fused preprocessing" in result.stdout and "crop(" in result.stdout
    assert read_meta(target).extra["fused_preprocess"]["color"] == "BGR"
    compared = run_cli("compare", str(target), "-r", "ort-cpu,openvino", "--atol", "1e-4")
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "all runtimes pass" in compared.stdout


@pytest.mark.slow
def test_bad_input_is_one_line_and_writes_nothing(lenet, fused_fixed, tmp_path):
    target = tmp_path / "out.onnx"
    cases = [
        (("fuse", str(lenet), "-o", str(target), "--frame", "480x"), "--frame must look like"),
        (("fuse", str(fused_fixed.path), "-o", str(target)), "already has fused preprocessing"),
        (("fuse", str(lenet), "-o", str(target), "--frame-color", "HSV"), "frame colour"),
        (("fuse", str(lenet), "-o", str(target), "--nms"), "--nms needs --postprocess"),
        (("fuse", str(lenet), "-o", str(target), "--postprocess"), "for detectors"),
        (("fuse", str(tmp_path / "missing.onnx"), "-o", str(target)), "not found"),
        (("export", "lenet5", "-o", str(target), "--fuse-preprocess", "--frame", "axb"), "--frame must look like"),
        (("fuse", str(lenet), "-o", str(target), "--mean", "0.5"), "only for models without it"),
        (("fuse", str(lenet), "-o", str(target), "--resize-op", "nearest"), "resize op must be one of"),
    ]
    for args, fragment in cases:
        assert_one_line_error(run_cli(*args), fragment)
    assert list(tmp_path.iterdir()) == []


def test_model_without_metadata_needs_settings(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "bare",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    bare = tmp_path / "bare.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(bare))
    target = tmp_path / "bare-fused.onnx"
    assert_one_line_error(run_cli("fuse", str(bare), "-o", str(target)), "no edgekit metadata")
    assert not target.exists()
    result = run_cli("fuse", str(bare), "-o", str(target), "--frame", "16x16", "--resize", "letterbox",
                     "--mean", "0.5", "--std", "0.25")
    assert result.returncode == 0, result.stderr
    from edgekit.runtimes import open_runtime

    with open_runtime("ort-cpu", target) as runtime:
        out = runtime.run({"frame": np.full((1, 16, 16, 3), 255, np.uint8)})["y"]
    np.testing.assert_allclose(out, (255 - 0.5 * 255) / (0.25 * 255), rtol=1e-6)


def test_robot_tier_runs_a_fused_model_without_torch_or_onnx(fused_fixed):
    import subprocess
    import sys

    from conftest import REPO, block_imports

    code = block_imports("torch", "torchvision", "onnx") + f"""
import sys
sys.path.insert(0, {str(REPO)!r})
import numpy as np
from edgekit.predictor import Predictor
with Predictor({str(fused_fixed.path)!r}) as predict:
    print(predict([np.zeros((480, 640, 3), np.uint8)])[0].label)
assert "torch" not in sys.modules and "onnx" not in sys.modules
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().isdigit()
