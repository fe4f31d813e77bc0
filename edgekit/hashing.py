"""File hashes: one helper for every place that keys or records a file by its content.

A model's identity includes its external-data files (weights saved beside the ``.onnx``), so
``model_sha256`` hashes them too. They are found by a small protobuf scan of the graph's
initializers, without onnx: the robot tier (engine caches) uses this.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from edgekit.meta import read_varint

_BLOCK = 1 << 20
_GRAPH, _INITIALIZER, _EXTERNAL_DATA = 7, 5, 13  # ModelProto.graph, GraphProto.initializer, TensorProto.external_data


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    _update(digest, Path(path))
    return digest.hexdigest()


def weights_digest(path: str | Path) -> str:
    """How an export records the weights file it was made from: 'sha256:' and 16 hex digits."""
    return f"sha256:{file_sha256(path)[:16]}"


def model_sha256(path: str | Path) -> str:
    """Hex SHA-256 of an ONNX model with its external-data files (names and bytes), so a model
    retrained into the same file names gets a new hash. Other files hash as ``file_sha256``."""
    path = Path(path)
    digest = hashlib.sha256()
    _update(digest, path)
    for name in external_data_files(path) if path.suffix.lower() == ".onnx" else ():
        digest.update(b"\0" + name.encode() + b"\0")
        data = path.parent / name
        if data.is_file():
            _update(digest, data)
    return digest.hexdigest()


def model_files(path: str | Path) -> list[Path]:
    """The model file and the weights beside it: an ONNX model's external data, an OpenVINO IR's .bin."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return [path, *(path.parent / name for name in external_data_files(path))]
    if path.suffix.lower() == ".xml":
        return [path, path.with_suffix(".bin")]
    return [path]


def files_stamp(path: str | Path) -> str:
    """16 hex digits naming this version of a model's files (``model_files``) by name, size and
    modification time: cheap (nothing is read but the file list), for caches keyed by the model's path."""
    digest = hashlib.sha256()
    for file in model_files(path):
        try:
            stat = file.stat()
            digest.update(f"{file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        except OSError:  # a missing file: the runtime's own error names it
            digest.update(f"{file.name}\0missing\0".encode())
    return digest.hexdigest()[:16]


def _update(digest, path: Path) -> None:
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(_BLOCK), b""):
            digest.update(block)


def external_data_files(path: str | Path) -> tuple[str, ...]:
    """The ``location`` of every external-data initializer of the main graph, sorted and unique
    (relative to the model's folder). A file that is not a readable ONNX model gives ()."""
    path = Path(path)
    found: set[str] = set()
    try:
        with open(path, "rb") as stream:
            size = path.stat().st_size
            for field, start, length in _fields(stream, 0, size):
                if field == _GRAPH:
                    for sub, at, n in _fields(stream, start, start + length):
                        if sub == _INITIALIZER:
                            found.update(_tensor_locations(stream, at, at + n))
    except (OSError, ValueError, UnicodeDecodeError):
        return ()
    return tuple(sorted(found))


def _tensor_locations(stream: BinaryIO, start: int, end: int) -> list[str]:
    locations = []
    for field, at, length in _fields(stream, start, end):
        if field != _EXTERNAL_DATA:
            continue
        entry = {key: value for key, value in _string_pairs(stream, at, at + length)}
        if entry.get(1) == "location" and entry.get(2):
            locations.append(entry[2])
    return locations


def _string_pairs(stream: BinaryIO, start: int, end: int):
    """(field number, decoded string) of the length-delimited fields of a StringStringEntryProto."""
    for field, at, length in _fields(stream, start, end):
        stream.seek(at)
        yield field, stream.read(length).decode()


def _fields(stream: BinaryIO, start: int, end: int):
    """(field number, payload offset, payload length) of every length-delimited field in
    [start, end); varint and fixed-width fields are skipped. Positions are re-sought on each step,
    so callers may read payloads between steps."""
    position = start
    while position < end:
        stream.seek(position)
        key = read_varint(stream)
        field, wire = key >> 3, key & 7
        if wire == 0:
            read_varint(stream)
            position = stream.tell()
        elif wire == 1:
            position = stream.tell() + 8
        elif wire == 5:
            position = stream.tell() + 4
        elif wire == 2:
            length = read_varint(stream)
            at = stream.tell()
            if at + length > end:
                raise ValueError("truncated field")
            position = at + length
            yield field, at, length
        else:
            raise ValueError(f"unsupported wire type {wire}")
