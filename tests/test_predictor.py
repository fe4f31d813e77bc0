"""The embedding API on a real model: preprocessing from metadata, predictions, no torch."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import block_imports
from edgekit import Predictor
from edgekit.errors import BadInputError


def test_predictor_matches_manual_preprocessing(zoo_onnx):
    path = zoo_onnx("lenet5").path
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 28), dtype=np.uint8) for _ in range(3)]  # any size, gray
    with Predictor(path) as predict:
        predictions = predict(images)
        # The same image through the runtime by hand: stretch to 32x32, (x/255 - 0.5)/0.5.
        from edgekit.tasks.preprocess import bilinear

        x = bilinear(images[0][:, :, None].astype(np.float32), 32, 32)[:, :, 0]
        x = ((x / 255.0 - 0.5) / 0.5).astype(np.float32)[None, None]
        logits = predict.runtime.run({"input": x})["output"][0]
    assert len(predictions) == 3
    assert predictions[0].label == int(np.argmax(logits))
    assert predictions[0].names[0] == str(predictions[0].label)
    assert predictions[0].probabilities == tuple(sorted(predictions[0].probabilities, reverse=True))


def test_predictor_needs_edgekit_metadata(tmp_path):
    import onnx

    node = onnx.helper.make_node("Relu", ["x"], ["y"])
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", 1, [1, 3])],
                                   [onnx.helper.make_tensor_value_info("y", 1, [1, 3])])
    onnx.save(onnx.helper.make_model(graph), str(tmp_path / "plain.onnx"))
    with pytest.raises(BadInputError, match="no edgekit task metadata"):
        Predictor(tmp_path / "plain.onnx")


def test_predictor_is_torch_free(zoo_onnx):
    path = zoo_onnx("lenet5").path
    script = block_imports("torch", "torchvision", "onnx") + f"""
import numpy as np
from edgekit import Predictor
with Predictor({str(path)!r}) as predict:
    result = predict([np.zeros((32, 32), np.uint8)])
assert len(result) == 1 and 0 <= result[0].label < 10
assert not [m for m in ('torch', 'onnx') if m in sys.modules]
print('ok')
"""
    result = subprocess.run([sys.executable, "-c", "import sys\n" + script], capture_output=True, text=True)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_opencv_threads_are_set_only_when_asked(zoo_onnx):
    """opencv_threads=N sets cv2's threads when the Predictor opens on the OpenCV route; the
    default and the numpy route leave OpenCV's setting alone."""
    cv2 = pytest.importorskip("cv2")
    path = zoo_onnx("lenet5").path
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        with Predictor(path, route="numpy", opencv_threads=0):
            assert cv2.getNumThreads() == 2
        with Predictor(path):
            assert cv2.getNumThreads() == 2
        with Predictor(path, route="opencv", opencv_threads=2) as predict:
            assert cv2.getNumThreads() == 2
            expected = predict(np.full((28, 28), 200, np.uint8))
        with Predictor(path, opencv_threads=0) as predict:   # the opencv route, OpenCV on the calling thread
            assert cv2.getNumThreads() == 1
            assert predict(np.full((28, 28), 200, np.uint8)).classes == expected.classes
        with pytest.raises(BadInputError, match="opencv_threads"):
            Predictor(path, opencv_threads=-1)
    finally:
        cv2.setNumThreads(before)


def test_postprocess_settings_belong_to_their_task(zoo_onnx):
    """top_k reaches a classifier; a detector's threshold on a classifier is a one-line error."""
    path = zoo_onnx("lenet5").path
    with Predictor(path, top_k=3) as predict:
        assert len(predict(np.zeros((28, 28), np.uint8)).classes) == 3
    with pytest.raises(BadInputError, match="score_threshold do\\(es\\) not apply to classification models"):
        Predictor(path, score_threshold=0.5)
    with pytest.raises(BadInputError, match="top_k must be a positive integer"):
        Predictor(path, top_k=0)
