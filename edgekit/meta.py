"""Model metadata that travels inside the ONNX file (``metadata_props``, JSON values).

Reading needs neither onnx nor torch: a few lines of protobuf decoding pull the
``metadata_props`` entries out of the file without loading the graph, so a robot
can read them with numpy and one runtime installed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, BinaryIO

from edgekit.errors import BadInputError

TASKS = ("classification", "detection", "embedding", "unknown")
COLORS = ("RGB", "BGR", "GRAY")
RESIZES = ("stretch", "letterbox", "center-crop")


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
        """Build from ``metadata_props``; unknown keys are kept in ``extra``."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, raw in props.items():
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            if key == "extra" and isinstance(value, dict):
                extra.update(value)
            elif key in known and key != "extra":
                values[key] = tuple(value) if isinstance(value, list) else value
            else:
                extra[key] = value
        return cls(**values, extra=extra)

    def with_(self, **changes: Any) -> ModelMeta:
        return replace(self, **changes)


IR_RT_INFO_KEY = "edgekit"  # OpenVINO IR: metadata lives in <rt_info><edgekit>…</edgekit>
ENGINE_SUFFIXES = (".engine", ".plan")  # TensorRT engines: metadata in a "<engine>.json" beside them


def read_meta(path: str | Path) -> ModelMeta:
    """Read edgekit metadata from a model file (defaults when it has none).

    ONNX keeps it in ``metadata_props``, an OpenVINO IR (.xml) in its ``rt_info``, a
    TensorRT engine in a ``.json`` beside it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return ModelMeta.from_props(read_ir_props(path))
    if suffix in ENGINE_SUFFIXES:
        if not path.is_file():
            raise BadInputError(f"model file not found: {path}")
        sidecar = path.with_suffix(path.suffix + ".json")
        return ModelMeta.from_props(json.loads(sidecar.read_text())) if sidecar.is_file() else ModelMeta()
    return ModelMeta.from_props(read_metadata_props(path))


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


def _read_varint(stream: BinaryIO) -> int:
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
        key = _read_varint(stream)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("invalid field number 0")
        if wire == 0:
            _read_varint(stream)
        elif wire == 1:
            stream.seek(8, 1)
        elif wire == 5:
            stream.seek(4, 1)
        elif wire == 2:
            length = _read_varint(stream)
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
