"""Metadata other tools write into an ONNX file, read as edgekit's defaults so that their files work
as they come: an Ultralytics export (``task``, ``names``, ``imgsz``, ``stride`` as Python text) gives
task, labels, input size, letterbox (centred, pad 114) and the ``yolo`` decoder.

Foreign keys never block a model: edgekit writes its values as JSON, so a key whose value is not JSON
was written by someone else and is kept as text, never validated as edgekit's. What edgekit itself
wrote (``edgekit meta set``) wins over a convention's defaults. Robot tier: standard library only.
"""

from __future__ import annotations

import ast
from typing import Any

from edgekit.errors import BadInputError

ULTRALYTICS_KEYS = {"names", "imgsz", "stride"}
ULTRALYTICS_TASKS = {"detect": "detection", "pose": "detection", "classify": "classification"}
# Ultralytics' predict defaults (conf 0.25, iou 0.7, max_det 300, class-wise NMS)
ULTRALYTICS_DECODER = {"type": "yolo", "score_threshold": 0.25, "iou_threshold": 0.7, "max_detections": 300,
                       "nms": "class"}
MAX_VALUE_CHARS = 1 << 20


def is_ultralytics(props: dict[str, str]) -> bool:
    return ULTRALYTICS_KEYS <= set(props) or str(props.get("author", "")).startswith("Ultralytics")


def convention_defaults(props: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(ModelMeta field defaults, extra entries) a known foreign convention in ``props`` gives; ({}, {})
    for a file that follows none."""
    if not is_ultralytics(props):
        return {}, {}
    fields: dict[str, Any] = {"model_name": _text(props, "description").split(" model")[0] or "ultralytics"}
    raw_task = _text(props, "task").strip().strip("'\"")
    task = ULTRALYTICS_TASKS.get(raw_task)
    if "names" in props:
        names = _literal(props, "names")
        if not isinstance(names, dict) or not all(isinstance(k, int) for k in names):
            raise BadInputError(f"metadata key 'names' (Ultralytics) must be a dict of class index → name, got "
                                f"{str(props['names'])[:60]!r}")
        fields["labels"] = tuple(str(names[index]) for index in sorted(names))
    if "imgsz" in props:
        size = _literal(props, "imgsz")
        size = [size, size] if isinstance(size, int) else size
        if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
            raise BadInputError(f"metadata key 'imgsz' (Ultralytics) must be an int or [height, width], got "
                                f"{str(props['imgsz'])[:60]!r}")
        fields["input_size"] = tuple(size)
    fields.update(color="RGB", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), input_name="images")   # pixels / 255
    extra: dict[str, Any] = {"convention": "ultralytics"}
    if task == "detection":
        fields.update(task=task, resize="letterbox")
        extra["letterbox"] = {"align": "center", "pad_value": 114, "scale_up": True}
        extra["decoder"] = dict(ULTRALYTICS_DECODER)
        if _text(props, "end2end").strip() == "True":   # YOLOv10/YOLO26: [1, 300, 6] boxes, no NMS on the host
            extra["decoder"] = {"type": "yolo-end2end", "score_threshold": 0.25, "max_detections": 300}
        if raw_task == "pose" and "kpt_shape" in props:
            extra["decoder"]["keypoints"] = list(_literal(props, "kpt_shape"))
    elif task == "classification":
        fields.update(task=task, resize="center-crop")
    return fields, extra


def _text(props: dict[str, str], key: str) -> str:
    value = props.get(key, "")
    return value if isinstance(value, str) else str(value)


def _literal(props: dict[str, str], key: str) -> Any:
    """A Python literal another tool wrote (``str(dict)``), read safely and boundedly."""
    text = _text(props, key)
    if len(text) > MAX_VALUE_CHARS:
        raise BadInputError(f"metadata key '{key}' is longer than {MAX_VALUE_CHARS} characters")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise BadInputError(f"metadata key '{key}' cannot be read (a foreign convention's value: "
                            f"{text[:60]!r})") from None
