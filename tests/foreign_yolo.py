"""YOLO-style detectors built the way their sources build them (Ultralytics' v8/v11 Detect head, v5's
anchor head), and the sources' own decode (NMS, letterbox, scale_boxes) written in torch/numpy: the
references tests/test_decoders_foreign.py holds edgekit's decode to."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgekit.meta import read_meta
from edgekit.tasks.detection import DetectionTask

SIZE = 320
CONF, IOU = 0.25, 0.7  # Ultralytics' predict defaults
COCO = [f"class{i}" for i in range(80)]
RUNTIMES = ["ort-cpu", pytest.param("openvino", marks=pytest.mark.openvino)]
V5_ANCHORS = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))


def photo(name: str = "chelsea") -> np.ndarray:
    """An RGB photo scikit-image ships (chelsea 300×451, astronaut 512×512, coffee, rocket)."""
    import skimage.data

    return getattr(skimage.data, name)()


def calibration_batch(size: int = SIZE, name: str = "chelsea", letterbox: bool = True) -> torch.Tensor:
    """The photo as the test feeds it (letterboxed or stretched to ``size``, RGB in [0, 1]): the BatchNorm
    statistics of the random networks. A random network's scores move with the whole image more than
    within it, so statistics from other photos would leave this one with no box or every box."""
    import cv2

    image = letterbox_reference(photo(name), size) if letterbox else cv2.resize(photo(name), (size, size))
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255


def calibrate(model: nn.Module, batch: torch.Tensor | None = None) -> nn.Module:
    """BatchNorm statistics from ``batch`` (default: ``calibration_batch()``), then eval mode."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum, module.track_running_stats = None, True
            module.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(calibration_batch() if batch is None else batch)
    return model.eval()


def spread_logits(model: nn.Module, convs: list[nn.Conv2d], gain: float = 1.5, bias: float = -7.0,
                  channels: slice = slice(None), batch: torch.Tensor | None = None) -> None:
    """Rescale the score convolutions (``channels`` of their outputs) so their logits on the photos are
    N(``bias``, ``gain``): at -7 ± 1.5 a few per cent of the anchors score above 0.25 on a photo."""
    seen: dict[int, torch.Tensor] = {}
    hooks = [c.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o)) for k, c in enumerate(convs)]
    with torch.no_grad():
        model(calibration_batch() if batch is None else batch)
        for k, c in enumerate(convs):
            logits = seen[k].transpose(0, 1).flatten(1)[channels]
            mean, std = logits.mean(1), logits.std(1).clamp_min(1e-6)
            c.weight[channels] *= (gain / std).view(-1, 1, 1, 1)
            c.bias[channels] = (c.bias[channels] - mean) * gain / std + bias
    for hook in hooks:
        hook.remove()


def conv(c_in: int, c_out: int, stride: int = 1, k: int = 3) -> nn.Module:
    """Ultralytics' Conv: convolution, BatchNorm, SiLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.SiLU())


class Backbone(nn.Module):
    """Feature maps at strides 8, 16 and 32 (16, 32, 64 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv(3, 8, 2), conv(8, 16, 2), conv(16, 16, 2))
        self.p4, self.p5 = conv(16, 32, 2), conv(32, 64, 2)

    def forward(self, x):
        p3 = self.stem(x)
        p4 = self.p4(p3)
        return [p3, p4, self.p5(p4)]


class V8Head(nn.Module):
    """Ultralytics' Detect (v8/v11) as exported: DFL box distances from the cell centres × stride as
    centre-xywh, sigmoid class scores, [N, 4 + C, anchors]."""

    def __init__(self, classes: int, reg_max: int = 16, channels=(16, 32, 64), strides=(8, 16, 32)) -> None:
        super().__init__()
        self.reg_max, self.strides = reg_max, strides
        self.box = nn.ModuleList(nn.Sequential(conv(c, 32), nn.Conv2d(32, 4 * reg_max, 1)) for c in channels)
        self.cls = nn.ModuleList(nn.Sequential(conv(c, 32), nn.Conv2d(32, classes, 1)) for c in channels)

    def forward(self, feats):
        boxes, scores, anchors, strides = [], [], [], []
        for feat, box, cls, stride in zip(feats, self.box, self.cls, self.strides):
            _, _, h, w = feat.shape
            boxes.append(box(feat).flatten(2))
            scores.append(cls(feat).flatten(2))
            ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
            anchors.append(torch.stack([xs, ys]).flatten(1))
            strides.append(torch.full((1, h * w), float(stride)))
        box = torch.cat(boxes, 2)
        n, _, count = box.shape
        bins = torch.arange(self.reg_max, dtype=torch.float32).view(1, 1, -1, 1)
        dist = (box.view(n, 4, self.reg_max, count).softmax(2) * bins).sum(2)  # DFL: expected distance
        anchor, stride = torch.cat(anchors, 1), torch.cat(strides, 1)
        left_top, right_bottom = dist[:, :2], dist[:, 2:]
        xywh = torch.cat([anchor + (right_bottom - left_top) / 2, left_top + right_bottom], 1) * stride
        return torch.cat([xywh, torch.cat(scores, 2).sigmoid()], 1)


class V5Head(nn.Module):
    """YOLOv5's Detect as exported: 3 anchor boxes per cell, sigmoid everything, xy = (2σ − 0.5 + cell) ×
    stride, wh = (2σ)² × anchor, rows [N, anchors, 5 + C] (objectness after the box)."""

    def __init__(self, classes: int, channels=(16, 32, 64), strides=(8, 16, 32)) -> None:
        super().__init__()
        self.values, self.strides = 5 + classes, strides
        self.heads = nn.ModuleList(nn.Conv2d(c, 3 * self.values, 1) for c in channels)

    def forward(self, feats):
        rows = []
        for feat, head, stride, anchors in zip(feats, self.heads, self.strides, V5_ANCHORS):
            n, _, h, w = feat.shape
            x = head(feat).view(n, 3, self.values, h, w).permute(0, 1, 3, 4, 2).sigmoid()
            ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            grid = torch.stack([xs, ys], -1).view(1, 1, h, w, 2).float() - 0.5
            anchor_grid = torch.tensor(anchors, dtype=torch.float32).view(1, 3, 1, 1, 2)
            xy = (x[..., :2] * 2 + grid) * stride
            wh = (x[..., 2:4] * 2) ** 2 * anchor_grid
            rows.append(torch.cat([xy, wh, x[..., 4:]], -1).view(n, -1, self.values))
        return torch.cat(rows, 1)


def yolo_like(head: str, classes: int = 80) -> nn.Module:
    """A calibrated backbone + v8 or v5 head, class biases set so a few dozen boxes pass 0.25."""
    torch.manual_seed(0)
    model = nn.Sequential(Backbone(), V8Head(classes) if head == "v8" else V5Head(classes))
    calibrate(model)
    if head == "v8":
        spread_logits(model, [branch[-1] for branch in model[1].cls])
    else:  # objectness around 0.8, classes as v8's
        heads = list(model[1].heads)
        spread_logits(model, heads, 0.5, 1.5, slice(4, None, 5 + classes))
        for anchor in range(3):
            first = anchor * (5 + classes) + 5
            spread_logits(model, heads, bias=-8.0, channels=slice(first, first + classes))
    return model


def export(model: nn.Module, path, outputs: list[str], size: int = SIZE, input_name: str = "images"):
    """torch.onnx (TorchScript exporter, opset 17), as the sources' own export scripts call it."""
    with torch.no_grad():
        torch.onnx.export(model.eval(), (torch.zeros(1, 3, size, size),), str(path), dynamo=False, opset_version=17,
                          input_names=[input_name], output_names=outputs)
    return path


def ultralytics_meta(decoder: dict | None = None, **changes) -> dict:
    """What an Ultralytics export means in edgekit's metadata: letterbox 114 centred, RGB in [0, 1]."""
    return {"task": "detection", "input_name": "images", "input_size": SIZE, "labels": COCO, "mean": "0,0,0",
            "std": "1,1,1", "resize": "letterbox", "letterbox": {"align": "center", "pad_value": 114},
            "decoder": {"type": "yolo", "score_threshold": CONF, "iou_threshold": IOU, "max_detections": 300,
                        **(decoder or {})}, **changes}


def letterbox_reference(image: np.ndarray, size: int, pad: int = 114, center: bool = True,
                        scaleup: bool = True) -> np.ndarray:
    """Ultralytics' LetterBox(auto=False) on an HWC uint8 image (their code, transcribed)."""
    import cv2

    h, w = image.shape[:2]
    ratio = min(size / h, size / w)
    if not scaleup:
        ratio = min(ratio, 1.0)
    new_w, new_h = round(w * ratio), round(h * ratio)
    dw, dh = size - new_w, size - new_h
    if center:
        dw, dh = dw / 2, dh / 2
    if (w, h) != (new_w, new_h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = (round(dh - 0.1), round(dh + 0.1)) if center else (0, round(dh + 0.1))
    left, right = (round(dw - 0.1), round(dw + 0.1)) if center else (0, round(dw + 0.1))
    return cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(pad, pad, pad))


def letterbox_ultralytics(image: np.ndarray, size: int) -> np.ndarray:
    """Ultralytics' own LetterBox when it is installed, else its transcription."""
    if not _ultralytics():
        return letterbox_reference(image, size)
    from ultralytics.data.augment import LetterBox

    return LetterBox((size, size), auto=False, scale_fill=False, scaleup=True, center=True)(image=image)


def nms_reference(raw: np.ndarray, objectness: bool, agnostic: bool = False) -> np.ndarray:
    """Ultralytics' non_max_suppression (YOLOv5's with objectness) → (k, 6) x1 y1 x2 y2 score class.

    Ultralytics' own function when installed (v8 layout), else the same steps in torch/torchvision."""
    import torchvision

    if _ultralytics() and not objectness:
        from ultralytics.utils.nms import non_max_suppression

        return non_max_suppression(torch.from_numpy(raw), CONF, IOU, agnostic=agnostic, max_det=300)[0].numpy()
    rows = torch.from_numpy(raw[0] if objectness else raw[0].T)  # [anchors, values]
    if objectness:
        rows = rows[rows[:, 4] > CONF]
        rows = torch.cat([rows[:, :4], rows[:, 5:] * rows[:, 4:5]], 1)
    xy, half = rows[:, :2], rows[:, 2:4] / 2
    conf, label = rows[:, 4:].max(1)
    keep = conf > CONF
    boxes, conf, label = torch.cat([xy - half, xy + half], 1)[keep], conf[keep], label[keep]
    order = conf.argsort(descending=True)[:30000]
    boxes, conf, label = boxes[order], conf[order], label[order]
    offset = label[:, None].float() * (0 if agnostic else 7680)
    kept = torchvision.ops.nms(boxes + offset, conf, IOU)[:300]
    return torch.cat([boxes[kept], conf[kept, None], label[kept, None].float()], 1).numpy()


def scale_boxes_reference(boxes: np.ndarray, shape: tuple[int, int], size: int = SIZE) -> np.ndarray:
    """Ultralytics' scale_boxes (per-axis gain of LetterBox's rounded size, centred padding), clipped."""
    gain = min(size / shape[0], size / shape[1])
    new_h, new_w = (max(round(x * gain), 1) for x in shape)
    pad_x, pad_y = round((size - new_w) / 2 - 0.1), round((size - new_h) / 2 - 0.1)
    gain_x, gain_y = new_w / shape[1], new_h / shape[0]
    boxes = (boxes - [pad_x, pad_y, pad_x, pad_y]) / [gain_x, gain_y, gain_x, gain_y]
    return np.clip(boxes, 0, [shape[1], shape[0]] * 2)


def _ultralytics() -> bool:
    import importlib.util

    return importlib.util.find_spec("ultralytics") is not None


def run_edgekit(path, image: np.ndarray, runtime: str, color: str = "BGR", task: DetectionTask | None = None):
    """edgekit's path on one image (the OpenCV uint8 route: the sources' own cv2.resize pixels):
    (the input tensor, the raw outputs, the Detection)."""
    from edgekit.runtimes import open_runtime

    meta, task = read_meta(path), task or DetectionTask()
    feeds, transforms = task.preprocess([image], meta, color=color, route="opencv-uint8")
    with open_runtime(runtime, path) as session:
        outputs = session.run(feeds)
    return feeds[meta.input_name], outputs, task.postprocess(outputs, meta, transforms)[0]


def agreement(name: str, reference: np.ndarray, detection, frame: tuple[int, int],
              points: np.ndarray | None = None) -> dict:
    """Every reference box (k, 6: x1 y1 x2 y2 score class, frame pixels) matched to edgekit's box of its
    class with the best IoU, one to one; asserts the same count, IoU ≥ 0.99 and scores within 1e-3
    (keypoints within 0.5 px when given) and prints the worst of each."""
    from edgekit.tasks.boxes import box_iou

    assert len(reference) > 0, f"{name}: the reference found no box: nothing to compare"
    # edgekit clips boxes to the frame (as Ultralytics' scale_boxes; YuNet's detector does not) and drops
    # a box that clips to nothing (wholly in the letterbox padding or off the frame; Ultralytics keeps it
    # with no width or height): not a detection, left out of the comparison and counted
    reference = reference.copy()
    reference[:, :4] = np.clip(reference[:, :4], 0, [frame[1], frame[0]] * 2)
    empty = (reference[:, 2] <= reference[:, 0]) | (reference[:, 3] <= reference[:, 1])
    reference, points = reference[~empty], None if points is None else points[~empty]
    assert len(detection) == len(reference), f"{name}: {len(detection)} boxes, the reference {len(reference)}"
    iou, taken = box_iou(reference[:, :4], detection.boxes), set()
    worst = {"boxes": len(reference), "empty": int(empty.sum()), "min_iou": 1.0, "max_score_diff": 0.0,
             "max_point_px": 0.0}
    for i in np.argsort(-reference[:, 4], kind="stable"):
        free = [j for j in range(len(detection)) if j not in taken and detection.labels[j] == int(reference[i, 5])]
        assert free, f"{name}: reference box {reference[i]} has no box of its class"
        j = max(free, key=lambda j: iou[i, j])
        taken.add(j)
        worst["min_iou"] = min(worst["min_iou"], float(iou[i, j]))
        worst["max_score_diff"] = max(worst["max_score_diff"], abs(float(reference[i, 4] - detection.scores[j])))
        if points is not None:
            distance = float(np.linalg.norm(points[i] - detection.keypoints[j], axis=-1).max())
            worst["max_point_px"] = max(worst["max_point_px"], distance)
    print(f"agreement {name}: {worst}")
    assert worst["min_iou"] >= 0.99 and worst["max_score_diff"] <= 1e-3 and worst["max_point_px"] <= 0.5, worst
    return worst


def check_ultralytics_input(tensor: np.ndarray, bgr: np.ndarray) -> None:
    """edgekit's letterboxed input equals Ultralytics' (LetterBox on the BGR frame, RGB, / 255)."""
    expected = letterbox_ultralytics(bgr, SIZE)[..., ::-1].transpose(2, 0, 1)[None] / np.float32(255)
    assert tensor.shape == expected.shape and np.abs(tensor - expected).max() < 1e-6


LAYOUTS = {  # name: (head, output transposed to anchors-first, NMS agnostic)
    "v8-anchors-last": ("v8", False, False), "v8-anchors-first": ("v8", True, False),
    "v8-agnostic": ("v8", False, True), "v5-objectness": ("v5", False, False)}


class AnchorsFirst(nn.Module):
    """An export that transposes Ultralytics' output to [N, anchors, 4 + C] (some conversion scripts do)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).transpose(1, 2)
