"""Preprocessing from metadata (colour, resize modes, normalization) and classification post-processing."""

import numpy as np
import pytest

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.tasks import get_task
from edgekit.evaluate.metrics import TopKEvaluator, make_evaluator
from edgekit.tasks.preprocess import bilinear, convert_color, preprocess_images, resize


def test_normalization_and_layout_follow_the_metadata():
    meta = ModelMeta(input_size=(4, 6), color="RGB", mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    image = np.zeros((4, 6, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 255, 0, 51
    batch, transforms = preprocess_images([image, image], meta)
    assert batch.shape == (2, 3, 4, 6) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0, :, 0, 0], [1.0, -1.0, 0.2], atol=1e-6)
    assert transforms[0].original_size == (4, 6) and transforms[0].scale_x == 1.0


def test_colour_conversions():
    rgb = np.array([[[255, 0, 0], [0, 255, 0]]], dtype=np.uint8)
    np.testing.assert_allclose(convert_color(rgb, "GRAY")[0, :, 0], [0.299 * 255, 0.587 * 255], rtol=1e-5)
    np.testing.assert_array_equal(convert_color(rgb, "BGR")[0, 0], [0, 0, 255])
    gray = np.array([[7]], dtype=np.uint8)
    np.testing.assert_array_equal(convert_color(gray[:, :, None], "RGB")[0, 0], [7, 7, 7])
    with pytest.raises(BadInputError, match="unknown colour order"):
        convert_color(rgb, "HSV")


def test_bilinear_is_half_pixel_and_exact_on_constants():
    ramp = np.arange(4, dtype=np.float32).reshape(1, 4, 1)
    np.testing.assert_allclose(bilinear(ramp, 1, 8)[0, :, 0], [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])
    np.testing.assert_allclose(bilinear(np.full((5, 7, 1), 9.0, np.float32), 13, 3), 9.0)
    np.testing.assert_allclose(bilinear(ramp.reshape(2, 2, 1), 1, 1)[0, 0, 0], 1.5)


def test_letterbox_pads_and_maps_boxes_back():
    image = np.full((50, 100, 3), 200, dtype=np.float32)
    out, transform = resize(image, (64, 64), "letterbox")
    assert out.shape == (64, 64, 3)
    assert out[0, 0, 0] == 114 and out[32, 32, 0] == 200 and out[15, 32, 0] == 114 and out[16, 32, 0] == 200
    model_box = np.array([[16.0, 16.0, 48.0, 48.0]])  # 0.64 scale, 16 px top padding
    np.testing.assert_allclose(transform.boxes_to_original(model_box), [[25.0, 0.0, 75.0, 50.0]], atol=1e-4)


def test_center_crop_keeps_the_middle():
    image = np.zeros((100, 200, 1), dtype=np.float32)
    image[:, 90:110] = 255  # a bright vertical bar in the middle
    out, transform = resize(image, (32, 32), "center-crop")
    assert out.shape == (32, 32, 1) and out[:, 16].min() > 200 and out[:, 0].max() == 0
    assert transform.offset_x < 0 and transform.scale_x == pytest.approx(transform.scale_y, rel=0.02)  # rounded sizes


def test_stretch_scales_each_axis():
    out, transform = resize(np.zeros((10, 40, 1), np.float32), (20, 20), "stretch")
    assert out.shape == (20, 20, 1) and (transform.scale_x, transform.scale_y) == (0.5, 2.0)


@pytest.mark.parametrize("meta, images, fragment", [
    (ModelMeta(input_layout="NHWC"), [np.zeros((4, 4, 3), np.uint8)], "only NCHW"),
    (ModelMeta(), [], "no images"),
    (ModelMeta(), [np.zeros((4, 4, 2), np.uint8)], "expected an HxW"),
    (ModelMeta(resize="squash"), [np.zeros((4, 4, 3), np.uint8)], "unknown resize mode"),
])
def test_bad_inputs_raise_clear_errors(meta, images, fragment):
    with pytest.raises(BadInputError, match=fragment):
        preprocess_images(images, meta)


def test_classification_postprocess_ranks_by_score_and_names_classes():
    task = get_task("classification")
    meta = ModelMeta(task="classification", labels=("a", "b", "c"))
    logits = np.array([[0.0, 3.0, 1.0], [5.0, 0.0, 0.0]], dtype=np.float32)
    first, second = task.postprocess({"output": logits}, meta, [])
    assert first.classes == (1, 2, 0) and first.names == ("b", "c", "a") and first.label == 1
    assert first.probabilities[0] > first.probabilities[1] > first.probabilities[2]
    assert abs(sum(first.probabilities) - 1) < 1e-6 and second.label == 0
    with pytest.raises(BadInputError, match="batch, classes"):
        task.postprocess({"output": logits[None]}, meta, [])


def test_topk_accuracy():
    task = get_task("classification")
    meta = ModelMeta(task="classification")
    logits = np.tile(np.arange(10, dtype=np.float32), (4, 1))  # every image predicts 9, 8, 7, 6, 5, ...
    evaluator = make_evaluator(meta)
    evaluator.update(task.postprocess({"o": logits}, meta, []), [9, 5, 4, 0])
    assert evaluator.compute() == {"top1": 25.0, "top5": 50.0, "count": 4.0}
    assert TopKEvaluator.primary_metric == "top1"
    with pytest.raises(BadInputError, match="no samples"):
        TopKEvaluator().compute()
