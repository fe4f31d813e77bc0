"""A CenterNet detector's decoding as ONNX nodes behind its raw outputs (workstation tier: onnx).

Peak extraction (3×3 MaxPool equality mask), TopK over the flattened heatmap, size/offset gathered
at the peaks and decoded to x1 y1 x2 y2 boxes in model-input pixels — the graph then outputs
``boxes`` N×K×4, ``scores`` N×K, ``labels`` N×K (decoder type ``boxes``). With ``nms``, class-wise
ONNX ``NonMaxSuppression`` (class offset trick) follows and suppressed boxes get score −1
(decoder ``boxes-nms``: the host only thresholds and truncates). Same maths as
``edgekit.tasks.decoders.centernet.decode_centernet`` and ``edgekit.tasks.boxes.batched_nms``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.errors import BadInputError
from edgekit.exporters.graph_ops import Nodes, append
from edgekit.meta import ModelMeta

OUTPUTS = ("boxes", "scores", "labels")
SUPPRESSED_SCORE = -1.0


def append_postprocess(model, meta: ModelMeta, nms: bool) -> tuple[ModelMeta, list[str]]:
    """Append the decoding (and NMS) to ``model`` in place — a segmenter's argmax, see ``fuse_segmentation``;
    returns the new metadata and the steps."""
    from onnx import TensorProto, helper

    from edgekit.tasks.detection import DetectionTask

    if meta.task == "segmentation":
        if nms:
            raise BadInputError("--nms is for detectors; a segmenter's --postprocess is its argmax")
        from edgekit.exporters.fuse_segmentation import append_class_map

        return append_class_map(model, meta)
    if meta.task != "detection":
        raise BadInputError(f"--postprocess is for detectors and segmenters, this model's task is '{meta.task}'")
    decoder, settings = DetectionTask().decoder(meta)
    if decoder.name != "centernet":
        raise BadInputError(f"--postprocess supports CenterNet-style outputs, this model's decoder is '{decoder.name}'")
    from edgekit.tasks.decoders.centernet import EDGEKIT_CONVENTIONS

    changed = [key for key, value in EDGEKIT_CONVENTIONS.items() if key != "size_encoding" and settings[key] != value]
    if changed or len(settings["outputs"]) != 3:
        what = f"conventions {', '.join(changed)}" if changed else "a landmarks output"
        raise BadInputError(f"--postprocess builds edgekit's CenterNet head in the graph; this decoder has {what}: "
                            "decode on the host instead (fuse without --postprocess)")
    names = list(settings["outputs"])
    present = {value.name for value in model.graph.output}
    if set(OUTPUTS) & present or not set(names) <= present:
        raise BadInputError(f"model outputs {sorted(present)} do not fit: need {names}, none of {list(OUTPUTS)}")
    nodes = Nodes("edgekit_postprocess")
    steps = decode_nodes(nodes, names, settings, "scores_raw" if nms else "scores")
    if nms:
        steps += nms_nodes(nodes, settings)
    batch = [None, None]
    added = [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [*batch, 4]),
             helper.make_tensor_value_info("scores", TensorProto.FLOAT, batch),
             helper.make_tensor_value_info("labels", TensorProto.INT64, batch)]
    append(model, nodes, names, added)
    kept = {k: v for k, v in settings.items() if k not in ("outputs", "stride", "size_encoding", "type")}
    new_decoder = {**kept, "type": "boxes-nms" if nms else "boxes", "outputs": list(OUTPUTS), "in_graph_steps": steps,
                   "in_graph_from": {k: settings[k] for k in ("type", "outputs", "stride", "size_encoding")}}
    return meta.with_(extra={**meta.extra, "decoder": new_decoder}), steps


def decode_nodes(nodes: Nodes, names: list[str], settings: dict[str, Any], scores_name: str) -> list[str]:
    """heatmap, size, offset → ``boxes``, ``scores_name`` and ``labels``."""
    heatmap, size, offset = names
    c, op = nodes.const, nodes.op
    pooled = op("MaxPool", [heatmap], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    peaks = op("Where", [op("Equal", [heatmap, pooled]), heatmap, c(0.0, np.float32)])
    shape = op("Shape", [heatmap])
    batch = op("Slice", [shape, c([0]), c([1])])
    width = op("Slice", [shape, c([3]), c([4])])
    cells = op("Mul", [op("Slice", [shape, c([2]), c([3])]), width])
    flat = op("Reshape", [peaks, op("Concat", [batch, c([-1])], axis=0)])
    k = op("Min", [c([int(settings["max_detections"])]), op("Slice", [op("Shape", [flat]), c([1]), c([2])])])
    scores, index = nodes.op_n("TopK", [flat, k], 2, axis=1, largest=1, sorted=1)
    labels = op("Div", [index, cells])
    cell = op("Mod", [index, cells])
    row = op("Cast", [op("Unsqueeze", [op("Div", [cell, width]), c([1])])], to=1)  # N×1×K
    col = op("Cast", [op("Unsqueeze", [op("Mod", [cell, width]), c([1])])], to=1)
    maps_shape = op("Concat", [batch, c([2, -1])], axis=0)
    at = op("Unsqueeze", [cell, c([1])])
    at = op("Concat", [at, at], axis=1)  # N×2×K
    wh = op("GatherElements", [op("Reshape", [size, maps_shape]), at], axis=2)
    if settings["size_encoding"] == "log":
        wh = op("Exp", [wh])
    shift = op("GatherElements", [op("Reshape", [offset, maps_shape]), at], axis=2)
    centre_x = op("Add", [col, op("Slice", [shift, c([0]), c([1]), c([1])])])
    centre_y = op("Add", [row, op("Slice", [shift, c([1]), c([2]), c([1])])])
    half_w = op("Div", [op("Slice", [wh, c([0]), c([1]), c([1])]), c(2.0, np.float32)])
    half_h = op("Div", [op("Slice", [wh, c([1]), c([2]), c([1])]), c(2.0, np.float32)])
    corners = op("Concat", [op("Sub", [centre_x, half_w]), op("Sub", [centre_y, half_h]),
                            op("Add", [centre_x, half_w]), op("Add", [centre_y, half_h])], axis=1)
    corners = op("Mul", [corners, c(float(settings["stride"]), np.float32)])
    op("Transpose", [corners], "boxes", perm=[0, 2, 1])
    op("Identity", [scores], scores_name)
    op("Identity", [labels], "labels")
    return ["peaks(maxpool 3x3 == heatmap)", f"topk({settings['max_detections']})",
            f"gather size/offset, boxes x{settings['stride']}"]


def nms_nodes(nodes: Nodes, settings: dict[str, Any]) -> list[str]:
    """Class-wise NonMaxSuppression on ``boxes``/``scores_raw``/``labels``; suppressed → score −1."""
    c, op = nodes.const, nodes.op
    span = op("Add", [op("Sub", [op("ReduceMax", ["boxes"], keepdims=0), op("ReduceMin", ["boxes"], keepdims=0)]),
                      c(1.0, np.float32)])
    shift = op("Unsqueeze", [op("Mul", [op("Cast", ["labels"], to=1), span]), c([2])])
    shifted = op("Add", ["boxes", shift])
    k = op("Slice", [op("Shape", ["scores_raw"]), c([1]), c([2])])
    # no score threshold here: a box is only ever suppressed by a higher-scoring one, so
    # thresholding on the host afterwards keeps exactly what threshold-then-NMS keeps, and a
    # threshold given at run time still applies
    selected = op("NonMaxSuppression", [shifted, op("Unsqueeze", ["scores_raw", c([1])]), k,
                                        c([float(settings["iou_threshold"])], np.float32)])
    pairs = op("Gather", [selected, c([0, 2])], axis=1)
    ones = op("ConstantOfShape", [op("Slice", [op("Shape", [selected]), c([0]), c([1])])],
              value=_tensor(np.ones(1, np.bool_)))
    mask = op("ScatterND", [op("ConstantOfShape", [op("Shape", ["scores_raw"])], value=_tensor(np.zeros(1, np.bool_))),
                            pairs, ones])
    op("Where", [mask, "scores_raw", c(SUPPRESSED_SCORE, np.float32)], "scores")
    return [f"class-wise NonMaxSuppression(iou {settings['iou_threshold']})"]


def _tensor(array: np.ndarray):
    from onnx import numpy_helper

    return numpy_helper.from_array(array)
