"""Predictor input forms and checks, settings for a model without metadata, chunked batches,
and per-stage timing — on a real exported LeNet-5 and ONNX Runtime."""

import numpy as np
import pytest

from edgekit import Predictor
from edgekit.errors import BadInputError
from edgekit.tasks.run import DEFAULT_BATCH, StageTiming


@pytest.fixture(scope="module")
def lenet(zoo_onnx):
    return zoo_onnx("lenet5").path


def _images(count, seed=0, shape=(40, 36, 3)):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(count)]


def _probabilities(predictions):
    return [p.probabilities for p in predictions]


def test_single_image_list_and_array_batch_agree(lenet):
    images = _images(3)
    with Predictor(lenet) as predict:
        listed = predict(images)
        stacked = predict(np.stack(images))
        singles = [predict(image) for image in images]
    assert _probabilities(listed) == _probabilities(stacked) == [s.probabilities for s in singles]
    assert not isinstance(singles[0], list)


def test_bgr_frames_match_rgb_frames_without_copying(lenet):
    rgb = _images(2, seed=1)
    bgr = [np.ascontiguousarray(image[:, :, ::-1]) for image in rgb]
    with Predictor(lenet) as predict, Predictor(lenet, color="BGR") as predict_bgr:
        expected = _probabilities(predict(rgb))
        # BGR→gray weighs the channels in another order on the OpenCV route: equal up to float rounding
        np.testing.assert_allclose(_probabilities(predict_bgr(bgr)), expected, rtol=1e-5)
        np.testing.assert_allclose(_probabilities(predict(bgr, color="BGR")), expected, rtol=1e-5)
        assert _probabilities(predict(rgb)) == expected  # the call-level colour did not stick


def test_gray_alpha_path_and_pil_forms(lenet, tmp_path):
    from PIL import Image

    gray = _images(1, seed=2, shape=(30, 30))[0]
    with Predictor(lenet) as predict:
        reference = predict(gray).probabilities
        assert predict(gray[:, :, None]).probabilities == reference
        assert predict(np.repeat(gray[:, :, None], 3, axis=2)).probabilities == pytest.approx(reference, abs=1e-5)
        rgba = np.dstack([np.repeat(gray[:, :, None], 3, axis=2), np.full((30, 30), 7, np.uint8)])
        assert predict(rgba).probabilities == pytest.approx(reference, abs=1e-5)
        Image.fromarray(gray).save(tmp_path / "g.png")
        assert predict(tmp_path / "g.png").probabilities == reference
        assert predict(str(tmp_path / "g.png")).probabilities == reference
        assert predict(Image.fromarray(gray)).probabilities == reference


@pytest.mark.parametrize("image, fragment", [
    (np.zeros((28, 28), np.float64), "dtype float64"),
    (np.zeros((28, 28), np.float32) * np.nan, "dtype float32"),
    (np.zeros((28, 28), np.uint16), "dtype uint16"),
    (np.zeros((28, 28), bool), "dtype bool"),
    (np.zeros((28, 28), np.complex64), "dtype complex64"),
    (np.zeros((28, 28, 2), np.uint8), "2 channels"),
    (np.zeros((0, 28), np.uint8), "shape"),
    ("missing.png", "image file not found"),
    (42, "int"),
])
def test_undocumented_inputs_are_refused_in_one_line(lenet, image, fragment):
    with Predictor(lenet) as predict:
        with pytest.raises(BadInputError, match=fragment) as info:
            predict(image)
    message = str(info.value)
    assert "\n" not in message and "uint8" in message or "not found" in message


def test_unreadable_image_file(lenet, tmp_path):
    (tmp_path / "bad.png").write_text("not a png")
    with Predictor(lenet) as predict, pytest.raises(BadInputError, match="cannot read image"):
        predict(tmp_path / "bad.png")


def test_model_without_metadata_runs_with_explicit_settings(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    # logits = mean of each channel: a hand-checkable "classifier" with no edgekit metadata
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["pixels"], ["m"], axes=[2, 3], keepdims=0)], "g",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("m", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "plain.onnx"))
    with pytest.raises(BadInputError, match="no edgekit task metadata.*task="):
        Predictor(tmp_path / "plain.onnx")
    image = np.zeros((16, 16, 3), np.uint8)
    image[:, :, 1] = 200
    with Predictor(tmp_path / "plain.onnx", task="classification", mean=(0, 0, 0), std=(1, 1, 1),
                   labels=("red", "green", "blue")) as predict:
        assert predict.meta.input_name == "pixels" and predict.meta.input_size == (8, 8)
        assert predict(image).names[0] == "green"
    for bad, fragment in [({"std": (0, 1, 1)}, "std must not contain 0"), ({"mean": (0, 0)}, "mean must be 3"),
                          ({"task": "segmentashun"}, "unknown task"), ({"input_size": (0, 8)}, "input_size")]:
        settings = {"task": "classification", **bad}
        with pytest.raises(BadInputError, match=fragment):
            Predictor(tmp_path / "plain.onnx", **settings)


def test_dynamic_batch_model_is_fed_in_chunks(zoo_onnx):
    path = zoo_onnx("lenet5", dynamic_batch=True).path
    images = _images(21, seed=3, shape=(32, 32))
    with Predictor(path) as predict:
        batches = []
        run = predict.runtime.run
        predict.runtime.run = lambda feeds: (batches.append(feeds["input"].shape[0]), run(feeds))[1]
        chunked = predict(images)
        assert batches == [DEFAULT_BATCH, DEFAULT_BATCH, 21 - 2 * DEFAULT_BATCH]
    with Predictor(path, batch_size=5) as predict:
        assert predict.images_per_call == 5
        assert [p.label for p in predict(images)] == [p.label for p in chunked]
    with pytest.raises(BadInputError, match="batch_size"):
        Predictor(path, batch_size=0)


def test_stage_timing_of_each_call(lenet):
    with Predictor(lenet) as predict:
        assert predict.last_timing is None
        predict(_images(3))
        timing = predict.last_timing
    assert isinstance(timing, StageTiming) and timing.images == 3
    assert timing.preprocess_ns > 0 and timing.inference_ns > 0 and timing.postprocess_ns > 0
    assert timing.total_ns == timing.preprocess_ns + timing.inference_ns + timing.postprocess_ns
    per_image = timing.per_image_ms()
    assert per_image["inference"] == pytest.approx(timing.inference_ns / 3e6)
    assert timing.line().endswith("ms postprocess per image") and "ms inference" in timing.line()


def test_onnxruntime_spinning_is_the_callers_choice(lenet):
    with Predictor(lenet) as predict:  # ONNX Runtime's own default
        assert predict.runtime.options.spinning is None
    with Predictor(lenet, spinning=False) as predict:
        assert predict.runtime.options.spinning is False
        entry = predict.runtime._session.get_session_options().get_session_config_entry(
            "session.intra_op.allow_spinning")
        assert entry == "0"
    with pytest.raises(BadInputError, match="option spinning must be bool"):
        Predictor(lenet, spinning="fast")


def test_decompression_bomb_image_is_one_line(lenet, tmp_path, monkeypatch):
    """Pillow raises DecompressionBombError (not an OSError) for an image past its pixel limit."""
    from PIL import Image

    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64×64 is then over twice the limit
    with Predictor(lenet) as predict, pytest.raises(BadInputError, match="cannot read image"):
        predict(str(path))
