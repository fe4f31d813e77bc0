"""Face detectors with 5 landmarks, built the way their sources build them, decode on a real photo
(scikit-image's astronaut) to the boxes and landmarks of the source's own decode: IoU ≥ 0.99, scores
within 1e-3, landmarks within 0.5 px, on ort-cpu and OpenVINO; and keypoints as part of a detection
(mapped back, kept through NMS, in JSON, drawn, box-matched).

- CenterFace (stride-4 heatmap, log (h, w) scale, (y, x) offset from the cell's middle, landmarks (y, x)
  relative to the box): the reference is CenterFace's own ``decode`` + ``nms`` + ``postprocess``.
- SCRFD (InsightFace: per stride 2 anchors per cell, ltrb distances × stride, keypoint offsets × stride,
  batch-less outputs, top-left letterbox on black): the reference is InsightFace's ``SCRFD.detect``.
- YuNet (per stride cls, obj, centre + log-size box, keypoints; outputs named as OpenCV expects them):
  the reference is OpenCV's own ``cv2.FaceDetectorYN`` running the same file.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn

from edgekit.exporters.metadata import update_file
from edgekit.tasks.detection import Detection
from foreign_yolo import (
    RUNTIMES,
    Backbone,
    agreement,
    calibrate,
    calibration_batch,
    conv,
    export,
    letterbox_reference,
    photo,
    run_edgekit,
    spread_logits,
)

SIZE = 320
BLOB_STD = 128 / 255  # cv2.dnn.blobFromImage(img, 1/128, mean 127.5): InsightFace's normalisation


def astronaut_bgr() -> np.ndarray:
    return np.ascontiguousarray(photo("astronaut")[..., ::-1])


class CenterFaceLike(nn.Module):
    """CenterFace's four stride-4 maps: heatmap (sigmoid), scale (log h, w), offset (y, x), landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(3, 16, 2), conv(16, 32, 2), conv(32, 32))
        self.heads = nn.ModuleList(nn.Conv2d(32, c, 1) for c in (1, 2, 2, 10))

    def forward(self, x):
        feat = self.body(x)
        heatmap, scale, offset, landmarks = (head(feat) for head in self.heads)
        return heatmap.sigmoid(), scale, offset, landmarks


def centerface_model(path, size: int = 256):
    torch.manual_seed(0)
    model = CenterFaceLike()
    batch = calibration_batch(size, "astronaut", letterbox=False) * 255  # CenterFace takes 0-255 pixels
    calibrate(model, batch)
    for head, gain, bias in zip(model.heads, (1.5, 0.1, 0.1, 0.1), (-6.0, 2.0, 0.3, 0.5)):
        spread_logits(model, [head], gain, bias, batch=batch)
    export(model, path, ["heatmap", "scale", "offset", "landmarks"], size, "input.1")
    decoder = {"type": "centernet", "outputs": ["heatmap", "scale", "offset", "landmarks"], "stride": 4,
               "size_order": "hw", "offset_order": "yx", "cell_offset": 0.5, "size_encoding": "log", "peaks": False,
               "landmark_order": "yx", "landmark_encoding": "box", "score_threshold": 0.5, "iou_threshold": 0.3,
               "nms": "agnostic", "max_detections": 1000}
    update_file(path, {"task": "detection", "input_name": "input.1", "input_size": size, "labels": "face",
                       "mean": "0,0,0", "std": ",".join([str(1 / 255)] * 3), "resize": "stretch", "decoder": decoder})
    return path


def centerface_reference(outputs: dict, frame: tuple[int, int], size: int, threshold: float = 0.5) -> tuple:
    """CenterFace's ``decode`` (threshold, scale · 4, (cell + offset + 0.5) · 4, landmarks from the clipped top
    left × box size), its ``nms`` (+1 pixel areas, IoU ≥ 0.3 suppresses) and ``postprocess`` (÷ scale)."""
    heatmap, scale, offset, landmark = (outputs[k] for k in ("heatmap", "scale", "offset", "landmarks"))
    heatmap = np.squeeze(heatmap)
    c0, c1 = np.where(heatmap > threshold)
    boxes, lms = [], []
    for i in range(len(c0)):
        s0, s1 = np.exp(scale[0, 0, c0[i], c1[i]]) * 4, np.exp(scale[0, 1, c0[i], c1[i]]) * 4
        o0, o1 = offset[0, 0, c0[i], c1[i]], offset[0, 1, c0[i], c1[i]]
        x1, y1 = max(0, (c1[i] + o1 + 0.5) * 4 - s1 / 2), max(0, (c0[i] + o0 + 0.5) * 4 - s0 / 2)
        x1, y1 = min(x1, size), min(y1, size)
        boxes.append([x1, y1, min(x1 + s1, size), min(y1 + s0, size), heatmap[c0[i], c1[i]]])
        lms.append([[landmark[0, j * 2 + 1, c0[i], c1[i]] * s1 + x1, landmark[0, j * 2, c0[i], c1[i]] * s0 + y1]
                    for j in range(5)])
    boxes, lms = np.asarray(boxes, np.float32).reshape(-1, 5), np.asarray(lms, np.float32).reshape(-1, 5, 2)
    keep = nms_plus_one(boxes[:, :4], boxes[:, 4], 0.3, suppress_equal=True)
    gain = np.array([size / frame[1], size / frame[0]], np.float32)
    boxes, lms = boxes[keep], lms[keep] / gain
    boxes[:, :4] /= np.tile(gain, 2)
    return np.hstack([boxes, np.zeros((len(boxes), 1), np.float32)]), lms


def nms_plus_one(boxes: np.ndarray, scores: np.ndarray, threshold: float, suppress_equal: bool = False) -> list:
    """The greedy NMS CenterFace and InsightFace ship: areas with +1 pixel, IoU above (CenterFace: at least)
    the threshold suppresses."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order, keep = scores.argsort()[::-1], []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]) + 1)
        overlap = w * h / (areas[i] + areas[order[1:]] - w * h)
        order = order[1:][overlap < threshold if suppress_equal else overlap <= threshold]
    return keep


class ScrfdLike(nn.Module):
    """SCRFD's head as InsightFace exports it: per stride 8, 16, 32 and 2 anchors per cell, batch-less rows
    of score (sigmoid), ltrb distance and 5 keypoint offsets, in stride units; scores, boxes, keypoints."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = Backbone()
        self.heads = nn.ModuleList(nn.ModuleList(nn.Conv2d(c, 2 * n, 1) for n in (1, 4, 10)) for c in (16, 32, 64))

    def forward(self, x):
        outs = [[], [], []]
        for feat, heads in zip(self.backbone(x), self.heads):
            for kind, (head, n) in enumerate(zip(heads, (1, 4, 10))):
                value = head(feat).permute(0, 2, 3, 1).reshape(-1, n)
                outs[kind].append(value.sigmoid() if kind == 0 else value)
        return (*outs[0], *outs[1], *outs[2])


def scrfd_model(path):
    torch.manual_seed(0)
    model = ScrfdLike()
    batch = (calibration_batch(SIZE, "astronaut", letterbox=False) - 0.5) / BLOB_STD
    calibrate(model, batch)
    for kind, gain, bias in ((0, 1.5, -5.0), (1, 0.4, 2.0), (2, 0.5, 0.0)):
        spread_logits(model, [heads[kind] for heads in model.heads], gain, bias, batch=batch)
    names = [f"{kind}_{stride}" for kind in ("score", "bbox", "kps") for stride in (8, 16, 32)]
    export(model, path, names, SIZE, "input.1")
    update_file(path, {"task": "detection", "input_name": "input.1", "input_size": SIZE, "labels": "face",
                       "mean": "0.5,0.5,0.5", "std": ",".join([str(BLOB_STD)] * 3), "resize": "letterbox",
                       "letterbox": {"align": "top-left", "pad_value": 0},
                       "decoder": {"type": "scrfd", "score_threshold": 0.5, "iou_threshold": 0.4}})
    return path


def scrfd_reference(outputs: list[np.ndarray], frame: tuple[int, int], threshold: float = 0.5) -> tuple:
    """InsightFace's SCRFD.detect after the forward pass: centres at cell · stride (2 per cell),
    distance2bbox/distance2kps × stride, scores ≥ threshold, ÷ det_scale, then its NMS at 0.4."""
    det_scale = SIZE / max(frame)  # the square photo: new_height / height
    scores_list, boxes_list, kps_list = [], [], []
    for idx, stride in enumerate((8, 16, 32)):
        scores, bbox, kps = outputs[idx], outputs[idx + 3] * stride, outputs[idx + 6] * stride
        height = width = SIZE // stride
        centres = (np.stack(np.mgrid[:height, :width][::-1], axis=-1).astype(np.float32) * stride).reshape(-1, 2)
        centres = np.stack([centres] * 2, axis=1).reshape(-1, 2)
        pos = np.where(scores >= threshold)[0]
        boxes = np.stack([centres[:, 0] - bbox[:, 0], centres[:, 1] - bbox[:, 1], centres[:, 0] + bbox[:, 2],
                          centres[:, 1] + bbox[:, 3]], axis=-1)
        points = np.stack([centres[:, i % 2] + kps[:, i] for i in range(10)], axis=-1).reshape(-1, 5, 2)
        scores_list.append(scores[pos])
        boxes_list.append(boxes[pos])
        kps_list.append(points[pos])
    scores = np.vstack(scores_list).ravel()
    order = scores.argsort()[::-1]
    boxes, points = (np.vstack(boxes_list) / det_scale)[order], (np.vstack(kps_list) / det_scale)[order]
    keep = nms_plus_one(boxes, scores[order], 0.4)
    rows = np.hstack([boxes[keep], scores[order][keep, None], np.zeros((len(keep), 1))]).astype(np.float32)
    return rows, points[keep]


class YunetLike(nn.Module):
    """YuNet's outputs as OpenCV's FaceDetectorYN reads them: per stride 8, 16, 32, one row per cell of
    cls and obj (sigmoid), bbox (dx, dy, log w, log h) and kps (5 × dx, dy), named cls_8 … kps_32."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = Backbone()
        self.heads = nn.ModuleList(nn.ModuleList(nn.Conv2d(c, n, 1) for n in (1, 1, 4, 10)) for c in (16, 32, 64))

    def forward(self, x):
        outs = [[], [], [], []]
        for feat, heads in zip(self.backbone(x), self.heads):
            for kind, head in enumerate(heads):
                value = head(feat).flatten(2).transpose(1, 2)
                outs[kind].append(value.sigmoid() if kind < 2 else value)
        return tuple(value for kind in outs for value in kind)


def yunet_model(path):
    torch.manual_seed(0)
    model = YunetLike()
    batch = calibration_batch(SIZE, "astronaut", letterbox=False)[:, [2, 1, 0]] * 255  # BGR 0-255, as OpenCV
    calibrate(model, batch)
    for kind, gain, bias in ((0, 1.5, -3.0), (1, 1.0, 1.0), (2, 0.3, 0.8), (3, 0.5, 0.0)):
        spread_logits(model, [heads[kind] for heads in model.heads], gain, bias, batch=batch)
    names = [f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in (8, 16, 32)]
    export(model, path, names, SIZE, "input")
    update_file(path, {"task": "detection", "input_name": "input", "input_size": SIZE, "labels": "face",
                       "color": "BGR", "mean": "0,0,0", "std": ",".join([str(1 / 255)] * 3), "resize": "stretch",
                       "decoder": {"type": "yunet", "score_threshold": 0.6, "iou_threshold": 0.3,
                                   "max_detections": 5000}})
    return path


def yunet_reference(path, bgr: np.ndarray) -> tuple:
    """OpenCV's own FaceDetectorYN on the photo resized to the input (its decode, NMSBoxes at 0.3),
    rows [x, y, w, h, 5 × (x, y), score] → frame pixels."""
    import cv2

    detector = cv2.FaceDetectorYN.create(str(path), "", (SIZE, SIZE), 0.6, 0.3, 5000)
    _, faces = detector.detect(cv2.resize(bgr, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR))
    faces = np.zeros((0, 15), np.float32) if faces is None else faces
    gain = np.array([bgr.shape[1] / SIZE, bgr.shape[0] / SIZE], np.float32)
    boxes = np.hstack([faces[:, :2], faces[:, :2] + faces[:, 2:4]]) * np.tile(gain, 2)
    rows = np.hstack([boxes, faces[:, 14:15], np.zeros((len(faces), 1), np.float32)])
    return rows, faces[:, 4:14].reshape(-1, 5, 2) * gain


@pytest.fixture(scope="module")
def face_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faces")
    return {name: build(folder / f"{name}.onnx") for name, build in
            (("centerface", centerface_model), ("scrfd", scrfd_model), ("yunet", yunet_model))}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_centerface_decodes_as_its_own_decode(face_files, runtime):
    import cv2

    bgr = astronaut_bgr()
    tensor, outputs, detection = run_edgekit(face_files["centerface"], bgr, runtime)
    # CenterFace's transform: cv2.resize to the input, blobFromImage(scale 1, swapRB)
    blob = cv2.dnn.blobFromImage(cv2.resize(bgr, (256, 256)), 1.0, (256, 256), (0, 0, 0), swapRB=True)
    assert np.abs(tensor - blob).max() < 1e-3
    reference, points = centerface_reference(outputs, bgr.shape[:2], 256)
    agreement(f"centerface {runtime}", reference, detection, bgr.shape[:2], points)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_scrfd_decodes_as_insightface(face_files, runtime):
    import cv2

    bgr = astronaut_bgr()
    tensor, outputs, detection = run_edgekit(face_files["scrfd"], bgr, runtime)
    resized = cv2.resize(bgr, (SIZE, SIZE))  # InsightFace's letterbox of a square photo: the whole input
    blob = cv2.dnn.blobFromImage(resized, 1.0 / 128, (SIZE, SIZE), (127.5, 127.5, 127.5), swapRB=True)
    assert np.abs(tensor - blob).max() < 1e-4
    assert all(outputs[f"score_{s}"].ndim == 2 for s in (8, 16, 32))  # batch-less, as InsightFace's export
    names = [f"{kind}_{stride}" for kind in ("score", "bbox", "kps") for stride in (8, 16, 32)]
    reference, points = scrfd_reference([outputs[n] for n in names], bgr.shape[:2])
    agreement(f"scrfd {runtime}", reference, detection, bgr.shape[:2], points)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_yunet_decodes_as_opencv_face_detector(face_files, runtime):
    bgr = astronaut_bgr()
    _, _, detection = run_edgekit(face_files["yunet"], bgr, runtime)
    reference, points = yunet_reference(face_files["yunet"], bgr)
    agreement(f"yunet {runtime}", reference, detection, bgr.shape[:2], points)


LETTERBOXES = [("center", 114, True, (300, 451)), ("top-left", 0, True, (300, 451)), ("top-left", 0, True, (451, 300)),
               ("center", 114, False, (100, 150)), ("top-left", 7, False, (100, 150))]


@pytest.mark.parametrize("route", ["numpy", "opencv", "opencv-uint8"])
@pytest.mark.parametrize("align,pad,scale_up,shape", LETTERBOXES)
def test_letterbox_variants_match_the_source_and_map_back_exactly(route, align, pad, scale_up, shape):
    import cv2

    from edgekit.meta import ModelMeta
    from edgekit.tasks.preprocess import preprocess_images

    image = cv2.resize(photo(), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    meta = ModelMeta(task="detection", input_size=(SIZE, SIZE), resize="letterbox", mean=(0, 0, 0), std=(1, 1, 1),
                     extra={"letterbox": {"align": align, "pad_value": pad, "scale_up": scale_up}})
    batch, (transform,) = preprocess_images([image], meta, route=route)
    expected = letterbox_reference(image, SIZE, pad, align == "center", scale_up).astype(np.float32)
    levels = batch[0].transpose(1, 2, 0) * 255
    # the same placement and padding everywhere; the pixels: whole levels on the uint8 route, else within 1 level
    assert np.abs(levels - expected).max() <= (1e-3 if route == "opencv-uint8" else 1.0)
    filled = np.all(expected == pad, axis=2)
    assert np.abs(levels[filled] - pad).max() < 1e-3
    ratio = min(SIZE / shape[0], SIZE / shape[1], 9.0 if scale_up else 1.0)
    new_h, new_w = (round(side * ratio) for side in shape)
    top, left = ((SIZE - new_h) // 2, (SIZE - new_w) // 2) if align == "center" else (0, 0)
    whole = transform.boxes_to_original(np.array([[left, top, left + new_w, top + new_h]], np.float32))
    np.testing.assert_allclose(whole, [[0, 0, shape[1], shape[0]]], atol=1e-3)
    points = transform.points_to_original(np.array([[[left, top], [left + new_w, top + new_h]]], np.float32))
    np.testing.assert_allclose(points, [[[0, 0], [shape[1], shape[0]]]], atol=1e-3)


def _faces():
    """Decoded faces in model-input pixels: box 1 overlaps box 0 (lower score, another class), box 2 apart;
    5 landmarks each, box 3 under the score threshold."""
    boxes = np.array([[10, 50, 50, 90], [12, 52, 50, 90], [100, 60, 140, 100], [0, 0, 5, 5]], np.float32)
    points = boxes[:, None, :2] + np.array([[10, 10], [30, 10], [20, 20], [12, 30], [28, 30]], np.float32)
    return boxes, np.array([0.9, 0.8, 0.7, 0.01], np.float32), np.array([0, 1, 0, 0]), points


@pytest.mark.parametrize("nms,kept", [("class", [0, 1, 2]), ("agnostic", [0, 2])])
def test_keypoints_follow_their_boxes_through_nms_and_the_letterbox(nms, kept):
    from edgekit.tasks.detection import DetectionTask
    from edgekit.tasks.preprocess import ImageTransform

    boxes, scores, labels, points = _faces()
    # a 200×400 frame letterboxed into 320×320 at the top left: model = frame × 0.8
    transform = ImageTransform(0.8, 0.8, 0.0, 0.0, (200, 400))
    settings = {"score_threshold": 0.05, "iou_threshold": 0.5, "max_detections": 100, "nms": nms}
    detection = DetectionTask._finish((boxes, scores, labels, points), transform, settings, ("face", "mask"), False)
    assert detection.scores.tolist() == pytest.approx(scores[kept].tolist())
    np.testing.assert_allclose(detection.boxes, boxes[kept] / 0.8, rtol=1e-6)
    np.testing.assert_allclose(detection.keypoints, points[kept] / 0.8, rtol=1e-6)
    assert detection.keypoints.shape == (len(kept), 5, 2) and detection.keypoints.dtype == np.float32
    centred = ImageTransform(0.8, 0.8, 0.0, 80.0, (200, 400))  # centred: 80 rows of padding above
    moved = DetectionTask._finish((boxes, scores, labels, points), centred, settings, ("face", "mask"), False)
    np.testing.assert_allclose(moved.keypoints[:, :, 1], (points[kept, :, 1] - 80) / 0.8, rtol=1e-6)


def test_keypoints_in_json_and_drawn():
    import json

    from edgekit.camera.draw import POINT_COLORS, annotate

    boxes, scores, labels, points = _faces()
    detection = Detection(boxes[:1], scores[:1], labels[:1], ("face",), points[:1])
    item = json.loads(json.dumps(detection.to_dict()))["detections"][0]
    assert item == {"box": [10.0, 50.0, 50.0, 90.0], "score": 0.9, "label": 0, "name": "face",
                    "keypoints": [[20.0, 60.0], [40.0, 60.0], [30.0, 70.0], [22.0, 80.0], [38.0, 80.0]]}
    assert "keypoints" not in Detection(boxes[:1], scores[:1], labels[:1]).to_dict()["detections"][0]
    canvas = annotate(np.zeros((120, 160, 3), np.uint8), detection, "BGR")
    for index, (x, y) in enumerate(points[0].astype(int)):
        assert tuple(canvas[y, x]) == POINT_COLORS[index]


def test_match_boxes_reports_the_mean_keypoint_distance():
    from edgekit.parity import match_boxes

    boxes, scores, labels, points = _faces()
    reference = Detection(boxes[:3], scores[:3], labels[:3], keypoints=points[:3])
    moved = Detection(boxes[:3], scores[:3], labels[:3], keypoints=points[:3] + np.float32([3, 4]))
    result = match_boxes([reference], [moved], 0.05)
    assert result.passed and result.mean_keypoint_distance == pytest.approx(5.0)
    assert "keypoints 5 px apart on average" in result.summary()
    plain = Detection(boxes[:3], scores[:3], labels[:3])
    assert match_boxes([plain], [plain], 0.05).mean_keypoint_distance is None


def test_face_decoders_find_their_outputs_by_shape_and_check_rows():
    from edgekit.tasks.decoders import DECODERS, decoder_settings

    decoder = DECODERS.get("scrfd")
    rows = {8: 2 * 40 * 40, 16: 2 * 20 * 20, 32: 2 * 10 * 10}
    outputs = {f"o{i}": np.zeros((rows[s], n), np.float32) for i, (n, s) in
               enumerate((n, s) for n in (10, 1, 4) for s in (32, 8, 16))}  # shuffled: told apart by shape
    outputs["o4"][5, 0] = 0.9  # stride 8, cell 2 (row 0, col 2), second anchor
    settings = decoder_settings(decoder, {"input_size": [SIZE, SIZE], "score_threshold": 0.5})
    ((boxes, scores, _, points),) = decoder().decode(outputs, settings)
    np.testing.assert_allclose(boxes, [[16, 0, 16, 0]])
    assert scores.tolist() == pytest.approx([0.9]) and points.shape == (1, 5, 2)
    outputs["o4"] = outputs["o4"][:-2]
    with pytest.raises(Exception, match="'o4' has 3198 rows, not a whole number per cell of the 40x40 cells of stride 8"):
        decoder().decode(outputs, settings)


def test_nms_mode_is_a_task_option():
    from edgekit.errors import BadInputError
    from edgekit.meta import ModelMeta
    from edgekit.tasks import get_task

    meta = ModelMeta(task="detection", labels=("face", "mask"), extra={"decoder": {"type": "yolo"}})
    assert get_task("detection", nms="agnostic").decoder(meta)[1]["nms"] == "agnostic"
    assert get_task("detection").decoder(meta)[1]["nms"] == "class"
    with pytest.raises(BadInputError, match="nms must be class or agnostic"):
        get_task("detection", nms="per-class")
