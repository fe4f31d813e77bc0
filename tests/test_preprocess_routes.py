"""Every preprocessing route agrees with the numpy reference: numpy, OpenCV, and the graph-fused
nodes on ONNX Runtime and OpenVINO — pixel tensors, top-1 on real photos and on digits."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.tasks.preprocess import ROUTES, bilinear, plan_geometry, preprocess_images

pytest.importorskip("cv2")
skdata = pytest.importorskip("skimage.data")

MODES = ("stretch", "letterbox", "center-crop")


def photos() -> list[np.ndarray]:
    """Real photos at several sizes and aspect ratios (scikit-image's samples, resized by numpy)."""
    images = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()]
    sizes = [(480, 640), (300, 451), (640, 360), (97, 203)]
    return [bilinear(img.astype(np.float32), h, w).round().astype(np.uint8) for img, (h, w) in zip(images, sizes)]


def _meta(mode: str, color: str = "RGB", size=(64, 64)) -> ModelMeta:
    channels = 1 if color == "GRAY" else 3
    return ModelMeta(task="classification", input_size=size, color=color, resize=mode,
                     mean=(0.485, 0.456, 0.406)[:channels], std=(0.229, 0.224, 0.225)[:channels])


def test_routes_are_registered_and_unknown_ones_suggest():
    assert ROUTES.names() == ["numpy", "opencv", "opencv-uint8"]
    with pytest.raises(BadInputError, match="did you mean 'opencv'"):
        preprocess_images([np.zeros((4, 4, 3), np.uint8)], _meta("stretch"), route="opencvv")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("color", ["RGB", "BGR", "GRAY"])
def test_opencv_route_matches_numpy(mode, color):
    meta = _meta(mode, color)
    images = photos()
    reference, transforms = preprocess_images(images, meta, route="numpy")
    candidate, cv_transforms = preprocess_images(images, meta, route="opencv")
    diff = float(np.abs(candidate - reference).max())
    assert diff < 1e-3, f"max abs tensor diff opencv vs numpy {diff:.4g} ({mode}, {color})"
    assert cv_transforms == transforms


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("color", ["RGB", "BGR", "GRAY"])
def test_opencv_uint8_route_is_within_one_level_of_numpy(mode, color):
    """Resizing the uint8 pixels rounds each to a whole level: within one level of the reference."""
    meta = _meta(mode, color)
    reference, transforms = preprocess_images(photos(), meta, route="numpy")
    candidate, uint8_transforms = preprocess_images(photos(), meta, route="opencv-uint8")
    levels = np.abs(candidate - reference) * np.float32(meta.std).reshape(1, -1, 1, 1) * 255
    assert 0.3 < levels.max() < 1.0 and levels.mean() < 0.35, (mode, color, levels.max(), levels.mean())
    assert uint8_transforms == transforms


@pytest.mark.parametrize("route", ["numpy", "opencv", "opencv-uint8"])
def test_bgr_frames_give_the_rgb_result(route):
    meta = _meta("letterbox")
    rgb = photos()
    expected, _ = preprocess_images(rgb, meta, route=route)
    bgr = [image[:, :, ::-1] for image in rgb]  # OpenCV's order, passed as a view
    actual, _ = preprocess_images(bgr, meta, color="BGR", route=route)
    np.testing.assert_array_equal(actual, expected)
    gray = [image[:, :, 1] for image in rgb]
    as_gray, _ = preprocess_images(gray, meta, color="GRAY", route=route)
    as_rgb, _ = preprocess_images([np.repeat(g[:, :, None], 3, axis=2) for g in gray], meta, route=route)
    np.testing.assert_array_equal(as_gray, as_rgb)
    with pytest.raises(BadInputError, match="GRAY"):
        preprocess_images(rgb, meta, color="GRAY", route=route)
    with pytest.raises(BadInputError, match="colour order"):
        preprocess_images(rgb, meta, color="HSV", route=route)


def test_geometry_is_integer_and_center_crop_cuts_the_source_first():
    crop = plan_geometry((480, 640), (224, 224), "center-crop")
    assert crop.crop == (30, 110, 420, 420) and crop.resized == (224, 224)  # 7/8 of the shorter side
    box = plan_geometry((427, 640), (128, 128), "letterbox")
    assert box.resized == (85, 128) and box.pad == (21, 0)  # 427·128/640 = 85.4 → 85
    assert plan_geometry((3, 640), (128, 128), "letterbox").resized == (1, 128)
    t = crop.transform
    assert (t.scale_x, t.offset_x) == pytest.approx((224 / 420, -110 * 224 / 420))


@pytest.fixture(scope="module")
def classifiers(zoo_onnx):
    return {name: zoo_onnx(name, input_size=(64, 64)).path for name in ("mobilenet_v3_small", "resnet18")}


def _fused_copy(source, folder, mode, frame=None, frame_color="RGB"):
    """``source`` with its resize mode set to ``mode`` (metadata only), then fused."""
    import onnx

    from edgekit.exporters.config import FuseConfig
    from edgekit.exporters.fuse import fuse_model
    from edgekit.exporters.metadata import set_metadata
    from edgekit.meta import read_meta

    plain = folder / f"{source.stem}-{mode}.onnx"
    model = onnx.load(str(source))
    set_metadata(model, read_meta(source).with_(resize=mode))
    onnx.save(model, str(plain))
    fused = folder / f"{source.stem}-{mode}-{frame_color}-fused.onnx"
    fuse_model(plain, fused, FuseConfig(frame=frame, frame_color=frame_color))
    return plain, fused


@pytest.mark.openvino
@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_zoo_classifiers_top1_agree_on_every_route(classifiers, tmp_path, mode):
    from edgekit.predictor import Predictor

    images = photos()
    for name, source in classifiers.items():
        plain, fused = _fused_copy(source, tmp_path, mode)
        tops = {}
        for route in ("numpy", "opencv", "opencv-uint8"):
            with Predictor(plain, runtime="ort-cpu") as predict:
                tops[route] = [predict.runtime.run(predict.task.preprocess([image], predict.meta, route=route)[0])
                               for image in images]
        for runtime in ("ort-cpu", "openvino"):
            with Predictor(fused, runtime=runtime) as predict:
                tops[f"fused-{runtime}"] = [predict.runtime.run(predict.task.preprocess([image], predict.meta)[0])
                                            for image in images]
        labels = {route: [int(next(iter(out.values())).argmax()) for out in outs] for route, outs in tops.items()}
        assert all(found == labels["numpy"] for found in labels.values()), (name, mode, labels)
        logits = {route: np.concatenate([next(iter(o.values())) for o in outs]) for route, outs in tops.items()}
        diffs = {route: float(np.abs(v - logits["numpy"]).max()) for route, v in logits.items()}
        assert max(diffs[route] for route in ("opencv", "fused-ort-cpu", "fused-openvino")) < 1e-3, (name, mode, diffs)


@pytest.mark.openvino
@pytest.mark.parametrize("resize_op", ["resize", "gather"])
@pytest.mark.parametrize("mode", MODES)
def test_fused_pixels_match_numpy_on_both_runtimes(tmp_path, mode, resize_op):
    """The fused nodes alone (an identity 'model') on ORT and OpenVINO vs the numpy tensor."""
    import onnx
    from onnx import TensorProto, helper

    from edgekit.exporters.config import FuseConfig
    from edgekit.exporters.fuse import fuse_model
    from edgekit.exporters.metadata import set_metadata
    from edgekit.runtimes import open_runtime

    meta = _meta(mode, size=(48, 80))
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "identity",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 48, 80])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 48, 80])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    set_metadata(model, meta)
    onnx.save(model, str(tmp_path / "identity.onnx"))
    diffs = {}
    for frame in (None, (480, 640)):
        fused = tmp_path / f"identity-{frame is None}.onnx"
        fuse_model(tmp_path / "identity.onnx", fused, FuseConfig(frame=frame, frame_color="BGR", resize_op=resize_op))
        images = [photos()[0]] if frame else photos()
        for runtime in ("ort-cpu", "openvino"):
            with open_runtime(runtime, fused) as rt:
                for index, image in enumerate(images):
                    expected, _ = preprocess_images([image], meta, route="numpy")
                    actual = rt.run({"frame": np.ascontiguousarray(image[None, :, :, ::-1])})["output"]
                    diffs[(runtime, frame, index)] = float(np.abs(actual - expected).max())
    assert max(diffs.values()) < 1e-3, f"max abs tensor diff fused ({resize_op}) vs numpy: {diffs}"


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    from edgekit.train import RECIPES, TrainConfig

    config = TrainConfig(data="digits", output_dir=tmp_path_factory.mktemp("lenet"), epochs=3, progress=False)
    return RECIPES.get("lenet5")(config).onnx


@pytest.mark.slow
def test_digits_top1_is_identical_on_every_route(lenet, tmp_path):
    """The 270 test digits shown as 45x37 RGB frames: numpy, OpenCV and fused graphs give the same top-1."""
    from edgekit.datasets import load_split
    from edgekit.exporters.config import FuseConfig
    from edgekit.exporters.fuse import fuse_model
    from edgekit.predictor import Predictor

    split = load_split("digits", "test", seed=0)
    shown = [bilinear(np.asarray(img, np.float32).reshape(*img.shape[:2], 1), 45, 37) for img in split.images]
    frames = [np.repeat(image.round().astype(np.uint8), 3, axis=2) for image in shown]
    fused = {}
    for name, frame in (("fixed", (45, 37)), ("dynamic", None)):
        fused[name] = tmp_path / f"lenet-{name}.onnx"
        fuse_model(lenet, fused[name], FuseConfig(frame=frame, frame_color="RGB"))
    labels, tensors = {}, {}
    for route in ("numpy", "opencv", "opencv-uint8"):
        with Predictor(lenet) as predict:
            feeds, _ = predict.task.preprocess(frames, predict.meta, route=route)
            tensors[route] = feeds["input"]
            labels[route] = predict.runtime.run(feeds)["output"].argmax(1)
    for name, path in fused.items():
        with Predictor(path) as predict:
            labels[name] = np.array([p.label for p in predict(frames[:1]) + predict(frames[1:2])] +
                                    [p.label for frame in frames[2:] for p in predict([frame])])
    diff = float(np.abs(tensors["opencv"] - tensors["numpy"]).max())
    agree = {route: float((found == labels["numpy"]).mean()) for route, found in labels.items()}
    assert all(value == 1.0 for value in agree.values()), f"top-1 agreement {agree}, opencv tensor diff {diff:.3g}"
    accuracy = float((labels["numpy"] == np.asarray(split.targets)).mean())
    assert accuracy > 0.8, accuracy


@pytest.mark.parametrize("source, size", [((480, 640), (96, 128)), ((480, 640), (100, 77)), ((301, 53), (30, 7)),
                                          ((480, 640), (240, 320)), ((7, 9), (20, 3)), ((420, 420), (224, 224)),
                                          ((480, 640), (300, 300))])
@pytest.mark.parametrize("channels", [1, 3])
def test_opencv_resize_matches_numpy_to_a_fiftieth_of_a_level(source, size, channels):
    """On uniform noise (the worst case for rounding), every factor — whole, fractional, up, and a
    strong downscale that widens only the rows it reads — gives the float reference's pixels to
    0.02 of a level (OpenCV's 16-bit filter: 0.0196 at 640 → 300), where a uint8 resize is up to
    0.8 levels off."""
    import cv2

    from edgekit.tasks.preprocess_opencv import resize

    image = np.random.default_rng(1).integers(0, 256, (*source, channels), dtype=np.uint8)
    expected = bilinear(image.astype(np.float32), *size)
    pixels, unit = resize(cv2, image, size)
    levels = pixels.astype(np.float32) * unit
    assert levels.shape == (*size, channels)
    np.testing.assert_allclose(levels, expected, atol=0.02)
    if (source, size) == ((480, 640), (96, 128)):  # a whole odd factor samples pixels: nothing to round
        assert pixels.dtype == np.uint8 and unit == 1
    else:
        assert pixels.dtype != np.uint8 and unit == 1 / 256
        as_uint8 = cv2.resize(image, size[::-1], interpolation=cv2.INTER_LINEAR).reshape(levels.shape)
        assert np.abs(as_uint8 - expected).max() > 0.25  # the test tells the two apart


@pytest.mark.parametrize("route", ["opencv", "opencv-uint8"])
def test_opencv_routes_take_what_the_numpy_route_takes(route):
    """Not only uint8: bool, int64 and float64 images are resized in float32, as by numpy."""
    meta = _meta("letterbox", size=(16, 16))
    image = np.random.default_rng(2).integers(0, 256, (24, 40, 3))
    for dtype in (bool, np.int64, np.float64):
        given = [image.astype(dtype), image[:16, :16].astype(dtype)]  # resized, and an exact fit
        expected, _ = preprocess_images(given, meta, route="numpy")
        actual, _ = preprocess_images(given, meta, route=route)
        np.testing.assert_allclose(actual, expected, atol=1e-3, err_msg=str(dtype))


def test_each_task_picks_its_default_route():
    """Classifiers round resized pixels to whole levels (top-1 is the same), detectors get the
    reference's pixels; an explicit route wins."""
    from edgekit.tasks import get_task

    meta = _meta("center-crop")
    images = photos()
    for task, route in (("classification", "opencv-uint8"), ("detection", "opencv")):
        feeds, _ = get_task(task).preprocess(images, meta.with_(task=task))
        expected, _ = preprocess_images(images, meta, route=route)
        np.testing.assert_array_equal(feeds[meta.input_name], expected)
    feeds, _ = get_task("classification").preprocess(images, meta, route="opencv")
    np.testing.assert_array_equal(feeds[meta.input_name], preprocess_images(images, meta, route="opencv")[0])
    assert not np.array_equal(feeds[meta.input_name], preprocess_images(images, meta, route="opencv-uint8")[0])
