"""Model metadata that travels inside the ONNX file (``metadata_props``, JSON values).

Reading needs neither onnx nor torch: a few lines of protobuf decoding pull the
``metadata_props`` entries out of the file without loading the graph, so a robot
can read them with numpy and one runtime installed. Each JSON value is bounded in length
and depth (edgekit.limits) before it is parsed: a hostile file is one line naming the key.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from edgekit.errors import BadInputError, first_line
from edgekit.limits import MAX_JSON_CHARS, load_json

TASKS = ("classification", "detection", "embedding", "segmentation", "unknown")
COLORS = ("RGB", "BGR", "GRAY")
RESIZES = ("stretch", "letterbox", "center-crop")
LAYOUTS = ("NCHW", "NHWC")
MAX_SIDE = 65536
MAX_DISTANCE = 2.0  # Euclidean distance between unit vectors: an embedding threshold lies in [0, 2]


@dataclass(frozen=True)
class ModelMeta:
    """What a runtime, a task and a user need to know to feed and read a model."""

    task: str = "unknown"
    model_name: str = ""
    input_name: str = "input"
    input_layout: str = "NCHW"
    input_size: tuple[int, int] = (224, 224)
    color: str = "RGB"
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    resize: str = "stretch"
    labels: tuple[str, ...] = ()
    precision: str = "fp32"
    edgekit_version: str = ""
    recipe: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return 1 if self.color == "GRAY" else 3

    def to_props(self) -> dict[str, str]:
        """Serialize to ``metadata_props`` entries (each value JSON-encoded)."""
        return {key: json.dumps(value) for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMeta:
        """Build from ``metadata_props``: edgekit's keys (JSON values) checked, a known foreign convention
        (``edgekit.conventions``: Ultralytics) read as defaults, other keys kept in ``extra`` as they are.
        A key whose value is not JSON was written by another tool: kept as text, never checked."""
        from edgekit.conventions import convention_defaults

        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, raw in props.items():
            try:
                value = load_json(raw, f"metadata key '{key}'") if isinstance(raw, str) else raw
            except json.JSONDecodeError:
                extra[key] = raw    # not edgekit's (e.g. Ultralytics' task: detect)
                continue
            if key == "extra" and isinstance(value, dict):
                extra.update(value)
            elif key in known and key != "extra":
                values[key] = tuple(value) if isinstance(value, list) else value
            else:
                extra[key] = value
        defaults, foreign = convention_defaults(props)
        check_values(values, extra)
        merged_extra = {**foreign, **extra, **({"decoder": {**foreign["decoder"], **extra["decoder"]}}
                                               if "decoder" in foreign and isinstance(extra.get("decoder"), dict)
                                               else {})}
        if defaults:
            check_values({k: v for k, v in defaults.items() if k not in values}, {})
        return cls(**{**defaults, **values}, extra=merged_extra)

    def with_(self, **changes: Any) -> ModelMeta:
        return replace(self, **changes)


def _bad(key: str, problem: str, value: Any) -> BadInputError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return BadInputError(f"metadata key '{key}' {problem}, got {shown}")


def is_finite_number(value: Any) -> bool:
    """A real int or float (not a bool), finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@lru_cache(maxsize=1)
def _known_tasks() -> tuple[str, ...]:
    """edgekit's tasks plus those third-party packages register (entry points; nothing is imported)."""
    from importlib.metadata import entry_points

    return (*TASKS, *(entry.name for entry in entry_points(group="edgekit.tasks")))


def check_values(values: dict[str, Any], extra: dict[str, Any]) -> None:
    """Refuse malformed metadata read from a file in one line naming the key (plausible but bad
    values, e.g. std 0 or too few mean values, would otherwise give silently wrong answers)."""
    for key in ("model_name", "input_name", "precision", "edgekit_version"):
        if key in values and not isinstance(values[key], str):
            raise _bad(key, "must be a string", values[key])
    for key, choices in (("color", COLORS), ("resize", RESIZES), ("input_layout", LAYOUTS)):
        if key in values and values[key] not in choices:
            raise _bad(key, f"must be one of {', '.join(choices)}", values[key])
    if "task" in values and (not isinstance(values["task"], str) or values["task"] not in _known_tasks()):
        raise _bad("task", f"must be one of {', '.join(_known_tasks())}", values["task"])
    size = values.get("input_size", (1, 1))
    if not (isinstance(size, tuple) and len(size) == 2 and all(isinstance(s, int) and not isinstance(s, bool)
                                                                and 1 <= s <= MAX_SIDE for s in size)):
        raise _bad("input_size", f"must be [height, width], two integers from 1 to {MAX_SIDE}", size)
    channels = 1 if values.get("color", "RGB") == "GRAY" else 3
    for key in ("mean", "std"):
        if key in values:
            numbers = values[key]
            if not (isinstance(numbers, tuple) and len(numbers) == channels and all(map(is_finite_number, numbers))):
                raise _bad(key, f"must be {channels} finite numbers (one per channel)", values[key])
    if "std" in values and min(values["std"]) <= 0:
        raise _bad("std", "must be positive (it divides the pixels)", values["std"])
    labels = values.get("labels", ())
    if not (isinstance(labels, tuple) and all(isinstance(label, str) for label in labels)):
        raise _bad("labels", "must be a list of strings", labels)
    if values.get("recipe") is not None and not isinstance(values["recipe"], dict):
        raise _bad("recipe", "must be an object", values["recipe"])
    if "decoder" in extra:
        check_decoder(extra["decoder"])
    embedding = extra.get("embedding")  # an embedder's record (edgekit.gallery): its threshold is a distance
    if isinstance(embedding, dict) and embedding.get("threshold") is not None and not (
            is_finite_number(embedding["threshold"]) and 0 <= embedding["threshold"] <= MAX_DISTANCE):
        raise _bad("embedding.threshold", f"must be a distance from 0 to {MAX_DISTANCE:g} (between unit vectors)",
                   embedding["threshold"])
    if LETTERBOX_KEY in extra:   # checked when the file is read, not first at pre-processing
        letterbox_of(ModelMeta(extra={LETTERBOX_KEY: extra[LETTERBOX_KEY]}))


# detection decoder settings (tasks/detection.py): key → (check, what it must be)
_DECODER_RULES = {
    "type": (lambda v: isinstance(v, str), "a string"),
    # how many outputs a format reads is the decoder's to check (tasks/decoders)
    "outputs": (lambda v: isinstance(v, list) and len(v) >= 1 and all(isinstance(n, str) for n in v),
                "a list of output names"),
    "stride": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a positive integer"),
    "size_encoding": (lambda v: v in ("log", "linear"), "log or linear"),
    "score_threshold": (lambda v: is_finite_number(v) and 0 <= v <= 1, "a number from 0 to 1"),
    "iou_threshold": (lambda v: is_finite_number(v) and 0 <= v <= 1, "a number from 0 to 1"),
    "max_detections": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a positive integer"),
}


def check_decoder(decoder: Any) -> None:
    """The detection decoder entry: an object whose known keys have the right types."""
    if not isinstance(decoder, dict):
        raise _bad("decoder", "must be an object", decoder)
    for key, (valid, expected) in _DECODER_RULES.items():
        if key in decoder and not valid(decoder[key]):
            raise _bad(f"decoder.{key}", f"must be {expected}", decoder[key])


IR_RT_INFO_KEY = "edgekit"  # OpenVINO IR: metadata lives in <rt_info><edgekit>…</edgekit>
ENGINE_SUFFIXES = (".engine", ".plan")  # TensorRT engines: metadata in a "<engine>.json" beside them


def read_meta(path: str | Path) -> ModelMeta:
    """Read edgekit metadata from a model file (defaults when it has none).

    ONNX keeps it in ``metadata_props``, an OpenVINO IR (.xml) in its ``rt_info``, a
    TensorRT engine in a ``.json`` beside it.
    """
    path = Path(path)
    props = _read_props(path)
    try:
        return ModelMeta.from_props(props)
    except BadInputError as exc:
        raise BadInputError(f"{path}: {exc}") from None
    except TypeError as exc:  # a props mapping that is not str → str (hand-written engine sidecar)
        raise BadInputError(f"{path}: malformed metadata ({exc})") from None


def _read_props(path: Path) -> dict[str, str]:
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return read_ir_props(path)
    if suffix not in ENGINE_SUFFIXES:
        return read_metadata_props(path)
    if not path.is_file():
        raise BadInputError(f"model file not found: {path}")
    sidecar = path.with_suffix(path.suffix + ".json")
    if not sidecar.is_file():
        return {}
    if sidecar.stat().st_size > MAX_JSON_CHARS:
        raise BadInputError(f"engine metadata {sidecar} is over {MAX_JSON_CHARS} bytes")
    try:
        props = load_json(sidecar.read_text(encoding="utf-8"), f"engine metadata {sidecar}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"engine metadata {sidecar} is not JSON: {first_line(exc)}") from None
    if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
        raise BadInputError(f"engine metadata {sidecar} must map keys to JSON-encoded strings")
    return props


def read_ir_props(path: Path) -> dict[str, str]:
    """edgekit entries of an OpenVINO IR's ``rt_info`` (stdlib XML parsing; no openvino needed)."""
    import xml.etree.ElementTree as ElementTree

    if not path.is_file():
        raise BadInputError(f"model file not found: {path}")
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as exc:
        raise BadInputError(f"{path} is not an OpenVINO IR ({exc})") from None
    section = root.find(f"rt_info/{IR_RT_INFO_KEY}")
    return {entry.tag: entry.get("value", "") for entry in section} if section is not None else {}


def read_metadata_props(path: str | Path) -> dict[str, str]:
    """Return the ONNX ``ModelProto.metadata_props`` of ``path`` as a dict."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"model file not found: {path}")
    with path.open("rb") as stream:
        try:
            return _scan_model_proto(stream, path.stat().st_size)
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise BadInputError(f"{path} is not an ONNX model ({exc})") from None


_METADATA_PROPS = 14
_GRAPH = 7


def read_varint(stream: BinaryIO) -> int:
    """One protobuf varint from ``stream`` (ValueError when truncated or too long)."""
    result = shift = 0
    while True:
        byte = stream.read(1)
        if not byte:
            raise ValueError("truncated varint")
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _scan_model_proto(stream: BinaryIO, size: int) -> dict[str, str]:
    props: dict[str, str] = {}
    seen_graph = False
    while stream.tell() < size:
        key = read_varint(stream)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("invalid field number 0")
        if wire == 0:
            read_varint(stream)
        elif wire == 1:
            stream.seek(8, 1)
        elif wire == 5:
            stream.seek(4, 1)
        elif wire == 2:
            length = read_varint(stream)
            if stream.tell() + length > size:
                raise ValueError("field runs past the end of the file")
            if number == _METADATA_PROPS:
                entry = _parse_string_pair(stream.read(length))
                props[entry[0]] = entry[1]
            else:
                seen_graph |= number == _GRAPH
                stream.seek(length, 1)
        else:
            raise ValueError(f"unsupported wire type {wire}")
    if not seen_graph:
        raise ValueError("no graph found")
    return props


def _parse_string_pair(buffer: bytes) -> tuple[str, str]:
    pair = ["", ""]
    position = 0
    while position < len(buffer):
        key = buffer[position]
        position += 1
        length = shift = 0
        while True:
            byte = buffer[position]
            position += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        text = buffer[position : position + length].decode("utf-8")
        position += length
        if key >> 3 in (1, 2):
            pair[(key >> 3) - 1] = text
    return pair[0], pair[1]


# ---- the letterbox a model was trained with (meta.extra["letterbox"]): a typed record of an extra entry
LETTERBOX_FILL = 114
LETTERBOX_KEY = "letterbox"  # meta.extra entry: {align: center|top-left, pad_value: 0-255, scale_up: true|false}
ALIGNS = ("center", "top-left")


@dataclass(frozen=True)
class Letterbox:
    """How a letterboxed image is placed: centred (Ultralytics) or at the top left (SCRFD, YuNet), the
    padding's level, and whether a smaller image is scaled up to fit (Ultralytics' ``scaleup``)."""

    align: str = "center"
    pad_value: float = LETTERBOX_FILL
    scale_up: bool = True


DEFAULT_LETTERBOX = Letterbox()


def letterbox_of(meta: ModelMeta) -> Letterbox:
    """The model's letterbox settings (``meta.extra["letterbox"]``), checked: one line naming the key."""
    given = meta.extra.get(LETTERBOX_KEY)
    if given is None:
        return DEFAULT_LETTERBOX
    if not isinstance(given, dict):
        raise BadInputError(f"metadata key '{LETTERBOX_KEY}' must be an object (align, pad_value, scale_up), "
                            f"got {given!r}")
    unknown = sorted(set(given) - {"align", "pad_value", "scale_up"})
    if unknown:
        raise BadInputError(f"metadata key '{LETTERBOX_KEY}.{unknown[0]}' is not a letterbox setting "
                            "(align, pad_value, scale_up)")
    align, pad, scale_up = given.get("align", "center"), given.get("pad_value", LETTERBOX_FILL), \
        given.get("scale_up", True)
    if align not in ALIGNS:
        raise BadInputError(f"metadata key '{LETTERBOX_KEY}.align' must be center or top-left, got {align!r}")
    if isinstance(pad, bool) or not isinstance(pad, (int, float)) or not 0 <= pad <= 255:
        raise BadInputError(f"metadata key '{LETTERBOX_KEY}.pad_value' must be a level from 0 to 255, got {pad!r}")
    if not isinstance(scale_up, bool):
        raise BadInputError(f"metadata key '{LETTERBOX_KEY}.scale_up' must be true or false, got {scale_up!r}")
    return Letterbox(align, float(pad), scale_up)
