"""RetinaFace as biubug6/Pytorch_Retinaface builds and exports it, decoded on a real photo (scikit-image's
astronaut) to the faces of its own ``detect.py``: IoU ≥ 0.99, scores within 1e-3, landmarks within 1e-3 px,
on ort-cpu and OpenVINO.

- The model: feature maps at strides 8, 16 and 32 (a small backbone in place of its MobileNet/ResNet + FPN
  + SSH), per level ``BboxHead``/``ClassHead``/``LandmarkHead`` 1×1 convolutions of 2 anchors,
  ``permute(0, 2, 3, 1).view(N, -1, k)``, concatenated over the levels: ``loc`` [1, A, 4], ``conf``
  [1, A, 2] (softmax in its test phase), ``landms`` [1, A, 10]. Random weights, BatchNorm statistics from
  the photo and score biases set so a few dozen anchors pass 0.5 (tests/foreign_yolo.py's ``calibrate``
  and ``spread_logits``).
- Two exports: the test phase at a non-square input whose sides no step divides (300×420: ceil grids),
  with the names its ``convert_to_onnx.py`` leaves (``output0`` and torch's numbers: found by shape);
  and raw logits (``decoder.score_activation: softmax``) named loc/conf/landms at 320×320.
- Its input: BGR pixels minus (104, 117, 123), no scaling: edgekit's ``color: BGR``, mean (104, 117,
  123)/255, std 1/255. The photo is stretched to the input (cv2.resize), and the reference runs
  ``detect.py`` on the image as the model sees it (``resize`` 1: ``PriorBox`` of the input size,
  ``decode``/``decode_landm`` × the input size, confidence > 0.5, ``top_k`` 5000, ``py_cpu_nms`` at 0.4,
  ``keep_top_k`` 750), then maps boxes and landmarks to the frame.
"""

from __future__ import annotations

from itertools import product
from math import ceil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from conftest import assert_one_line_error, run_cli  # noqa: E402
from foreign_yolo import RUNTIMES, Backbone, agreement, calibrate, photo, run_edgekit, spread_logits  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from edgekit.errors import BadInputError  # noqa: E402
from edgekit.meta import ModelMeta, read_meta  # noqa: E402
from edgekit.tasks.decoders import DECODERS, decoder_settings  # noqa: E402

CFG = {"min_sizes": [[16, 32], [64, 128], [256, 512]], "steps": [8, 16, 32], "variance": [0.1, 0.2], "clip": False}
BGR_MEAN = (104, 117, 123)
CONFIDENCE, NMS_THRESHOLD, TOP_K, KEEP_TOP_K = 0.5, 0.4, 5000, 750
VARIANTS = {  # name: (input height, width, softmax in the graph, output names)
    "test-phase": (300, 420, True, ("output0", "592", "591")),
    "logits": (320, 320, False, ("loc", "conf", "landms")),
}


class RetinaFaceLike(nn.Module):
    """biubug6's RetinaFace after its FPN + SSH: per level BboxHead, ClassHead and LandmarkHead (1×1
    convolutions of ``num_anchors`` 2), rows concatenated over the levels; softmax on conf in test phase."""

    def __init__(self, phase: str = "test") -> None:
        super().__init__()
        self.phase = phase
        self.body = Backbone()
        self.heads = nn.ModuleList(nn.ModuleList(nn.Conv2d(c, 2 * k, 1) for c in (16, 32, 64)) for k in (4, 2, 10))

    def forward(self, x):
        features = self.body(x)
        loc, conf, landms = (torch.cat([_rows(head(feature), k) for head, feature in zip(heads, features)], dim=1)
                             for heads, k in zip(self.heads, (4, 2, 10)))
        return loc, F.softmax(conf, dim=-1) if self.phase == "test" else conf, landms


def _rows(out: torch.Tensor, k: int) -> torch.Tensor:
    out = out.permute(0, 2, 3, 1).contiguous()
    return out.view(out.shape[0], -1, k)


def astronaut_bgr() -> np.ndarray:
    return np.ascontiguousarray(photo("astronaut")[..., ::-1])


def blob(bgr: np.ndarray, height: int, width: int) -> np.ndarray:
    """detect.py's input on the stretched photo: float32 BGR minus its means, CHW, batch of one."""
    import cv2

    image = np.float32(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR))
    image -= BGR_MEAN
    return image.transpose(2, 0, 1)[None]


def retinaface_file(folder, variant: str):
    """The calibrated model exported with edgekit's export_module (checked against torch on ORT)."""
    from edgekit.exporters.torch_onnx import export_module

    height, width, softmax, names = VARIANTS[variant]
    torch.manual_seed(0)
    model = RetinaFaceLike("test" if softmax else "train")
    batch = torch.from_numpy(blob(astronaut_bgr(), height, width))
    calibrate(model, batch)
    box_heads, class_heads, landmark_heads = (list(heads) for heads in model.heads)
    spread_logits(model, class_heads, 1.5, -4.5, slice(1, None, 2), batch=batch)  # face: a few per cent
    spread_logits(model, class_heads, 0.3, 0.0, slice(0, None, 2), batch=batch)  # background
    spread_logits(model, box_heads, 1.0, 0.0, batch=batch)
    spread_logits(model, landmark_heads, 1.0, 0.0, batch=batch)
    decoder = {"type": "retinaface", "score_threshold": CONFIDENCE, "max_detections": KEEP_TOP_K,
               **({} if softmax else {"score_activation": "softmax", "outputs": list(names)})}
    meta = ModelMeta(task="detection", model_name=f"retinaface-{variant}", input_size=(height, width), color="BGR",
                     mean=tuple(m / 255 for m in BGR_MEAN), std=(1 / 255,) * 3, resize="stretch", labels=("face",),
                     extra={"decoder": decoder})
    torch_names = tuple(name if name.isidentifier() else f"t{name}" for name in names)  # torch sets no "592"
    path = export_module(model, meta, folder / f"{variant}.onnx", output_names=torch_names).path
    return rename_outputs(path, dict(zip(torch_names, names)))


def rename_outputs(path, names: dict):
    """The graph's outputs renamed (to the bare numbers torch.onnx gives an output left unnamed)."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
        node.output[:] = [names.get(name, name) for name in node.output]
    for output in model.graph.output:
        output.name = names.get(output.name, output.name)
    onnx.save(model, str(path))
    return path


# ---- biubug6/Pytorch_Retinaface, transcribed (layers/functions/prior_box.py, utils/box_utils.py,
# utils/nms/py_cpu_nms.py, detect.py) ----

class PriorBox:
    def __init__(self, cfg, image_size=None):
        self.min_sizes = cfg["min_sizes"]
        self.steps = cfg["steps"]
        self.clip = cfg["clip"]
        self.image_size = image_size
        self.feature_maps = [[ceil(self.image_size[0] / step), ceil(self.image_size[1] / step)] for step in self.steps]

    def forward(self):
        anchors = []
        for k, f in enumerate(self.feature_maps):
            min_sizes = self.min_sizes[k]
            for i, j in product(range(f[0]), range(f[1])):
                for min_size in min_sizes:
                    s_kx = min_size / self.image_size[1]
                    s_ky = min_size / self.image_size[0]
                    dense_cx = [x * self.steps[k] / self.image_size[1] for x in [j + 0.5]]
                    dense_cy = [y * self.steps[k] / self.image_size[0] for y in [i + 0.5]]
                    for cy, cx in product(dense_cy, dense_cx):
                        anchors += [cx, cy, s_kx, s_ky]
        output = torch.Tensor(anchors).view(-1, 4)
        if self.clip:
            output.clamp_(max=1, min=0)
        return output


def decode(loc, priors, variances):
    boxes = torch.cat((priors[:, :2] + loc[:, :2] * variances[0] * priors[:, 2:],
                       priors[:, 2:] * torch.exp(loc[:, 2:] * variances[1])), 1)
    boxes[:, :2] -= boxes[:, 2:] / 2
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def decode_landm(pre, priors, variances):
    return torch.cat([priors[:, :2] + pre[:, 2 * p:2 * p + 2] * variances[0] * priors[:, 2:] for p in range(5)],
                     dim=1)


def py_cpu_nms(dets, thresh):
    x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        xx1, yy1 = np.maximum(x1[i], x1[order[1:]]), np.maximum(y1[i], y1[order[1:]])
        xx2, yy2 = np.minimum(x2[i], x2[order[1:]]), np.minimum(y2[i], y2[order[1:]])
        w, h = np.maximum(0.0, xx2 - xx1 + 1), np.maximum(0.0, yy2 - yy1 + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        inds = np.where(ovr <= thresh)[0]
        order = order[inds + 1]
    return keep


def biubug6_detect(outputs: list[np.ndarray], input_size: tuple[int, int], frame: tuple[int, int],
                   softmax: bool) -> tuple[np.ndarray, np.ndarray]:
    """detect.py after ``loc, conf, landms = net(img)`` on the input image (resize 1), then the stretch
    undone: rows (k, 6) x1 y1 x2 y2 score class and landmarks (k, 5, 2) in frame pixels."""
    loc, conf, landms = (torch.from_numpy(np.asarray(a)) for a in outputs)
    if not softmax:  # the test-phase graph's F.softmax(classifications, dim=-1)
        conf = F.softmax(conf, dim=-1)
    im_height, im_width = input_size
    scale = torch.Tensor([im_width, im_height, im_width, im_height])
    prior_data = PriorBox(CFG, image_size=(im_height, im_width)).forward()
    boxes = decode(loc.data.squeeze(0), prior_data, CFG["variance"])
    boxes = (boxes * scale).numpy()
    scores = conf.squeeze(0).data.numpy()[:, 1]
    landms = decode_landm(landms.data.squeeze(0), prior_data, CFG["variance"])
    scale1 = torch.Tensor([im_width, im_height] * 5)
    landms = (landms * scale1).numpy()
    inds = np.where(scores > CONFIDENCE)[0]
    boxes, landms, scores = boxes[inds], landms[inds], scores[inds]
    order = scores.argsort()[::-1][:TOP_K]
    boxes, landms, scores = boxes[order], landms[order], scores[order]
    dets = np.hstack((boxes, scores[:, np.newaxis])).astype(np.float32, copy=False)
    keep = py_cpu_nms(dets, NMS_THRESHOLD)
    dets, landms = dets[keep, :][:KEEP_TOP_K], landms[keep][:KEEP_TOP_K]
    gain = np.array([im_width / frame[1], im_height / frame[0]], np.float32)
    rows = np.hstack([dets[:, :4] / np.tile(gain, 2), dets[:, 4:5], np.zeros((len(dets), 1), np.float32)])
    return rows, landms.reshape(-1, 5, 2) / gain


@pytest.fixture(scope="module")
def retinaface_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("retinaface")
    return {variant: retinaface_file(folder, variant) for variant in VARIANTS}


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_retinaface_decodes_as_biubug6_detect(retinaface_files, variant, runtime):
    height, width, softmax, names = VARIANTS[variant]
    bgr = astronaut_bgr()
    tensor, outputs, detection = run_edgekit(retinaface_files[variant], bgr, runtime)
    assert np.abs(tensor - blob(bgr, height, width)).max() < 1e-3  # BGR minus (104, 117, 123), unscaled
    assert sorted(outputs) == sorted(names) and outputs[names[0]].shape == (1, len(priors_of(height, width)), 4)
    reference, points = biubug6_detect([outputs[name] for name in names], (height, width), bgr.shape[:2], softmax)
    assert 5 <= len(reference) < 200, len(reference)  # scores spread: some faces, not every anchor
    worst = agreement(f"retinaface {variant} {runtime}", reference, detection, bgr.shape[:2], points)
    assert worst["max_point_px"] <= 1e-3 and worst["max_score_diff"] <= 1e-3 and worst["min_iou"] >= 0.99, worst


def test_predictor_runs_the_retinaface_file(retinaface_files):
    from edgekit.predictor import Predictor

    bgr = astronaut_bgr()
    _, _, expected = run_edgekit(retinaface_files["test-phase"], bgr, "ort-cpu")
    with Predictor(retinaface_files["test-phase"], "ort-cpu", color="BGR", route="opencv-uint8") as predictor:
        detection = predictor(bgr)
    assert len(detection) > 5 and detection.names == ("face",) * len(detection)
    assert detection.keypoints.shape == (len(detection), 5, 2)
    np.testing.assert_allclose(detection.boxes, expected.boxes, atol=1e-3)
    np.testing.assert_allclose(detection.keypoints, expected.keypoints, atol=1e-3)


def priors_of(height: int, width: int, clip: bool = False) -> np.ndarray:
    from edgekit.tasks.decoders.retinaface import retinaface_priors

    return retinaface_priors(height, width, tuple(CFG["steps"]), tuple(map(tuple, CFG["min_sizes"])), clip)


@pytest.mark.parametrize("height,width,clip", [(300, 420, False), (640, 640, False), (97, 250, True)])
def test_priors_are_prior_box(height, width, clip):
    expected = PriorBox({**CFG, "clip": clip}, image_size=(height, width)).forward().numpy()
    assert np.array_equal(priors_of(height, width, clip), expected)


def _settings(**given):
    return decoder_settings(DECODERS.get("retinaface"), {"input_size": [320, 320], "score_threshold": 0.5, **given})


def _outputs(rows: int = 4200, names=("loc", "conf", "landms")) -> dict:
    return {name: np.zeros((1, rows, k), np.float32) for name, k in zip(names, (4, 2, 10))}


def test_one_prior_decodes_by_hand():
    outputs = _outputs(names=("a", "b", "c"))  # other names: found by shape
    outputs["b"][0, 3, 1] = 0.9  # stride 8, row 0, column 1, min size 32: centre (12, 4), size 32
    outputs["a"][0, 3] = [1.0, -1.0, np.log(2) / 0.2, 0.0]  # centre + (3.2, -3.2), width × 2
    outputs["c"][0, 3] = np.tile([1.0, 2.0], 5)
    ((boxes, scores, labels, points),) = DECODERS.get("retinaface")().decode(outputs, _settings())
    np.testing.assert_allclose(boxes, [[15.2 - 32, 0.8 - 16, 15.2 + 32, 0.8 + 16]], atol=1e-4)
    assert scores.tolist() == pytest.approx([0.9]) and labels.tolist() == [0]
    np.testing.assert_allclose(points, [[[15.2, 10.4]] * 5], atol=1e-4)


@pytest.mark.parametrize("given,fragments", [
    ({"steps": [8, 16, 64]}, ["4050 priors", "decoder.steps", "decoder.min_sizes"]),
    ({"min_sizes": [[16], [64], [256]]}, ["2100 priors", "decoder.steps", "decoder.min_sizes"]),
])
def test_rows_that_are_not_the_priors_name_steps_and_min_sizes(given, fragments):
    with pytest.raises(BadInputError) as error:
        DECODERS.get("retinaface")().decode(_outputs(), _settings(**given))
    assert "\n" not in str(error.value) and "4200 rows" in str(error.value)
    assert all(fragment in str(error.value) for fragment in fragments), str(error.value)


def test_outputs_found_by_shape_or_named():
    decoder = DECODERS.get("retinaface")()
    with pytest.raises(BadInputError, match=r"one each of .* among x \(1x4200x4\), y \(1x4200x4\), .*decoder.outputs"):
        decoder.decode({"x": np.zeros((1, 4200, 4)), **_outputs(names=("y", "conf", "landms"))}, _settings())
    with pytest.raises(BadInputError, match=r"lack \['boxes'\]"):
        decoder.decode(_outputs(), _settings(outputs=["boxes", "conf", "landms"]))
    with pytest.raises(BadInputError, match=r"expects loc \[N, A, 4\].*got landms 1x4200x10, conf"):
        decoder.decode(_outputs(), _settings(outputs=["landms", "conf", "loc"]))


@pytest.fixture()
def plain_retinaface(retinaface_files, tmp_path):
    import shutil

    import cv2

    path = shutil.copy(retinaface_files["test-phase"], tmp_path / "retinaface.onnx")
    cv2.imwrite(str(tmp_path / "astronaut.png"), astronaut_bgr())
    return path, tmp_path / "astronaut.png"


def test_wrong_steps_set_by_meta_set_is_one_line_at_predict(plain_retinaface):
    path, image = plain_retinaface
    assert run_cli("meta", "set", str(path), "decoder.steps=8,16,64").returncode == 0   # a comma list, as strides
    assert read_meta(path).extra["decoder"]["steps"] == [8, 16, 64]
    assert_one_line_error(run_cli("predict", str(path), str(image)), "5334 rows", "decoder.steps",
                          "decoder.min_sizes", "38x53×2, 19x27×2, 5x7×2")


@pytest.mark.parametrize("key,value,fragments", [
    ("steps", [8, "x", 32], ["'decoder.steps'", "positive integers"]),
    ("min_sizes", [[16, 32], [64, 128]], ["'decoder.min_sizes' and 'decoder.steps'", "2 lists", "3 steps"]),
    ("min_sizes", 16, ["'decoder.min_sizes'", "list of lists"]),
    ("variances", [0.1], ["'decoder.variances'", "two positive numbers"]),
    ("score_activation", "sigmoid", ["'decoder.score_activation'", "none, softmax"]),
])
def test_bad_settings_are_one_line_naming_the_key(plain_retinaface, key, value, fragments):
    import json

    path, image = plain_retinaface
    assert_one_line_error(run_cli("meta", "set", str(path), f"decoder.{key}={json.dumps(value)}"), *fragments)
    _rewrite_decoder(path, {key: value})  # as another tool might write it: caught when the model runs
    assert_one_line_error(run_cli("predict", str(path), str(image)), *fragments)


def _rewrite_decoder(path, changes: dict) -> None:
    import json

    import onnx

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    extra = json.loads(props.get("extra", "{}"))
    extra["decoder"] = {**extra.get("decoder", {}), **changes}
    props["extra"] = json.dumps(extra)
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))
