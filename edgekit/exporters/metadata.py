"""Set a model's edgekit metadata from ``key=value`` pairs or a small YAML file (``edgekit meta set``).

Values are checked before anything is written, and the file is replaced atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from edgekit.errors import BadInputError
from edgekit.limits import data_problem, json_problem, load_json, load_yaml
from edgekit.meta import COLORS, RESIZES, TASKS, ModelMeta

FIELDS = ("task", "model_name", "input_name", "input_layout", "input_size", "color", "mean", "std", "resize",
          "labels", "precision", "decoder")


class Section(dict):
    """Keys given as ``RECORD.KEY=VALUE``: merged into the record the metadata holds, not replacing it."""


def parse_pairs(pairs: Iterable[str]) -> dict[str, Any]:
    """``['task=detection', 'decoder.type=yolo', 'labels=@labels.txt']`` → nested changes (``Section``)."""
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInputError(f"metadata must look like KEY=VALUE, got '{pair}'")
        value = _read_at_file(raw.strip()) if raw.strip().startswith("@") else raw.strip()
        head, dot, sub = key.partition(".")
        if dot:
            section = changes.setdefault(head, Section())
            if not isinstance(section, dict):
                raise BadInputError(f"metadata key {head} is given both whole and as {key}")
            section[sub] = _scalar(value, key) if isinstance(value, str) else value
            if head == "decoder":
                section[sub] = _decoder_value(sub, section[sub])
        else:
            changes[key] = value
    return changes


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping of the same keys (lists and nested mappings allowed), read safely and boundedly
    (edgekit.limits: depth, aliases expanded, plain tags only; errors name the file and line)."""
    from edgekit.deps import require

    yaml = require("yaml", "torch")
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"metadata file not found: {path}")
    data = load_yaml(yaml, path)
    if not isinstance(data, dict):
        raise BadInputError(f"metadata file {path} must hold a mapping of keys to values")
    return {str(k): v for k, v in data.items()}


def _read_at_file(raw: str) -> list[str]:
    path = Path(raw[1:])
    if not path.is_file():
        raise BadInputError(f"file not found: {path}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _scalar(raw: str, key: str) -> Any:
    """A value given as text: its JSON (bounded in length and depth) when it is JSON, else the text."""
    try:
        return load_json(raw, f"metadata {key}")
    except json.JSONDecodeError:
        return raw


def apply_changes(meta: ModelMeta, changes: Mapping[str, Any]) -> ModelMeta:
    """``meta`` with ``changes`` applied and checked; keys that are not fields go to ``extra``, a
    ``Section`` (``embedding.threshold=0.7``) merged into the record there."""
    values: dict[str, Any] = {}
    extra = dict(meta.extra)
    for key, value in changes.items():
        problem = data_problem(value)
        if problem:
            raise BadInputError(f"metadata {key} {problem}")
        if key == "decoder":
            extra["decoder"] = {**extra.get("decoder", {}), **_decoder(value)}
        elif key in FIELDS:
            values[key] = _FIELD_PARSERS.get(key, _text)(key, value)
        elif isinstance(value, Section):
            held = extra.get(key)
            extra[key] = {**(held if isinstance(held, dict) else {}), **value}
        else:
            extra[key] = _scalar(value, key) if isinstance(value, str) else value
    updated = meta.with_(**values, extra=extra)
    _check(updated)
    return updated


def _text(key: str, value: Any) -> str:
    if not isinstance(value, (str, int, float)):
        raise BadInputError(f"metadata {key} must be text, got {value!r}")
    return str(value)


def _choice(options: tuple[str, ...]):
    def parse(key: str, value: Any) -> str:
        text = _text(key, value)
        matched = [o for o in options if o.lower() == text.lower()]
        if not matched:
            raise BadInputError(f"metadata {key} must be one of {', '.join(options)}, got '{text}'")
        return matched[0]
    return parse


def _floats(key: str, value: Any) -> tuple[float, ...]:
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    try:
        numbers = tuple(float(item) for item in items)
    except (TypeError, ValueError):
        raise BadInputError(f"metadata {key} must be numbers like 0.5,0.5,0.5, got {value!r}") from None
    if not numbers or not all(math.isfinite(n) for n in numbers):
        raise BadInputError(f"metadata {key} must be finite numbers, got {value!r}")
    return numbers


def _size(key: str, value: Any) -> tuple[int, int]:
    from edgekit.exporters.config import parse_input_size

    if isinstance(value, (list, tuple)) and len(value) == 2:
        value = f"{value[0]}x{value[1]}"
    return parse_input_size(str(value))


def _labels(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(","))
    if isinstance(value, (list, tuple)):
        return tuple(str(item) for item in value)
    raise BadInputError(f"metadata labels must be a comma list, a YAML list or @file.txt, got {value!r}")


#: decoder settings that are lists: ``decoder.outputs=output0`` and ``decoder.strides=8,16,32`` are read as lists
DECODER_LISTS = ("outputs", "strides", "steps", "variances")


def _decoder_value(key: str, value: Any) -> Any:
    """A list-valued decoder setting given as plain text (``a`` or ``a,b``) → the list (numbers as numbers)."""
    if key not in DECODER_LISTS or not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return value
    items = [item.strip() for item in str(value).split(",") if item.strip()]
    return items if key == "outputs" else [_scalar(item, f"decoder.{key}") for item in items]


def _decoder(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {str(k): _decoder_value(str(k), v) for k, v in value.items()}
    parsed = _scalar(value, "decoder") if isinstance(value, str) else value
    if isinstance(parsed, dict):
        return {str(k): _decoder_value(str(k), v) for k, v in parsed.items()}
    if isinstance(parsed, str):
        return {"type": parsed}
    raise BadInputError(f"metadata decoder must be a decoder name or a JSON object, got {value!r}")


_FIELD_PARSERS = {"task": _choice(TASKS), "color": _choice(COLORS), "resize": _choice(RESIZES),
                  "mean": _floats, "std": _floats, "input_size": _size, "labels": _labels}


def _check(meta: ModelMeta) -> None:
    for key, text in meta.to_props().items():  # what is written must be readable back (edgekit.meta)
        problem = json_problem(text)
        if problem:
            raise BadInputError(f"metadata {key} {problem}")
    channels = meta.channels
    for key in ("mean", "std"):
        values = getattr(meta, key)
        if len(values) not in (1, channels):
            raise BadInputError(f"metadata {key} has {len(values)} values "
                                f"but color {meta.color} has {channels} channels")
    if any(s <= 0 for s in meta.std):
        raise BadInputError(f"metadata std must be positive, got {','.join(map(str, meta.std))}")
    decoder = meta.extra.get("decoder")
    if decoder is not None:
        from edgekit.tasks.decoders import DECODERS

        if "type" not in decoder:
            raise BadInputError("metadata decoder needs a type (e.g. decoder=yolo)")
        DECODERS.get(str(decoder["type"])).check_settings(decoder)  # "unknown detection decoder ... did you mean"
    if "letterbox" in meta.extra:
        from edgekit.tasks.preprocess import letterbox_of

        letterbox_of(meta)  # align, pad_value, scale_up: one line naming the key


def _delete_raw(model, delete: tuple[str, ...]) -> None:
    """Remove metadata keys as stored (a prop of their own, or a key of edgekit's ``extra`` JSON)
    without reading the rest: deleting never needs the other keys to be valid."""
    import json

    props = [(entry.key, entry.value) for entry in model.metadata_props]
    extra_value = dict(props).get("extra")
    try:
        extra = json.loads(extra_value) if extra_value else {}
    except json.JSONDecodeError:
        extra = {}
    extra = extra if isinstance(extra, dict) else {}
    present = {key for key, _ in props} | set(extra) | set(_foreign_keys(model))
    missing = [key for key in delete if key not in present]
    if missing:
        raise BadInputError(f"--delete {missing[0]}: the model has no metadata key '{missing[0]}'")
    kept_extra = {key: value for key, value in extra.items() if key not in delete}
    del model.metadata_props[:]
    for key, value in props:
        if key in delete:
            continue
        if key == "extra" and kept_extra != extra:
            value = json.dumps(kept_extra)
        model.metadata_props.add(key=key, value=value)


def _foreign_keys(model) -> list[str]:
    """Keys a known foreign convention adds to ``extra`` when read (e.g. Ultralytics' decoder)."""
    from edgekit.conventions import convention_defaults

    try:
        return list(convention_defaults({entry.key: entry.value for entry in model.metadata_props})[1])
    except BadInputError:
        return []


def _meta_of(model) -> ModelMeta:
    """The metadata a loaded ModelProto holds (as read_meta reads it from a file)."""
    return ModelMeta.from_props({entry.key: entry.value for entry in model.metadata_props})


def graph_input_facts(model) -> dict[str, Any]:
    """What a foreign file's graph says of its image input and its metadata does not record yet: the
    input's name and its fixed height × width, so a first ``meta set task=...`` does not leave edgekit's
    defaults ('input', 224×224) in place of the graph's."""
    from edgekit.exporters.graph_ops import dims

    recorded = {entry.key for entry in model.metadata_props}
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    if len(inputs) != 1:
        return {}
    facts: dict[str, Any] = {} if "input_name" in recorded else {"input_name": inputs[0].name}
    shape = dims(inputs[0])
    if len(shape) == 4 and "input_size" not in recorded:
        height, width = shape[2:] if _meta_of(model).input_layout == "NCHW" else shape[1:3]
        if isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0:
            facts["input_size"] = [height, width]
    return facts


def update_file(path: str | Path, changes: Mapping[str, Any], delete: tuple[str, ...] = ()) -> ModelMeta:
    """Apply ``changes`` to the metadata of the ONNX file ``path`` and rewrite it atomically; ``delete``
    removes keys (edgekit's, whose defaults then apply, or another tool's) before anything is read, so a
    record edgekit refuses (a hand-edited threshold) can be deleted and set again."""
    from edgekit.deps import require
    from edgekit.fileio import atomic_path

    onnx = require("onnx", "torch")
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise BadInputError(f"meta set writes .onnx files, not {path.name}")
    model = onnx.load(str(path), load_external_data=False)
    if delete:
        _delete_raw(model, delete)
    changes = {**graph_input_facts(model), **changes}
    meta = apply_changes(_meta_of(model), changes)
    meta = meta.with_(extra={k: v for k, v in meta.extra.items() if k not in delete})
    set_metadata(model, meta)
    with atomic_path(path) as temporary:
        onnx.save(model, str(temporary))
    return meta


# ---- the one writer, mirroring edgekit.meta's reader (ONNX metadata_props, an IR's rt_info, an engine's
# JSON sidecar): what it writes is what the reader accepts.

def set_metadata(model, meta: ModelMeta) -> None:
    """Replace edgekit's entries in an ``onnx.ModelProto``'s metadata_props, after the checks every
    reader makes: a file edgekit writes is one it reads back (one-line BadInputError otherwise)."""
    props = meta.to_props()
    ModelMeta.from_props(props)   # the reader's checks: input_size sides, mean/std, task, decoder...
    _check_labels_fit(model, meta)
    _check_decoder_outputs(model, meta)
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def _check_labels_fit(model, meta: ModelMeta) -> None:
    """A classifier whose (batch, classes) output has more classes than ``labels`` names is refused, as
    the Predictor would refuse it."""
    from edgekit.tasks.base import check_label_count

    if meta.task != "classification" or not meta.labels or not model.graph.output:
        return
    dims = model.graph.output[0].type.tensor_type.shape.dim
    if len(dims) == 2 and dims[1].HasField("dim_value"):
        check_label_count(meta, dims[1].dim_value)


def _check_decoder_outputs(model, meta: ModelMeta) -> None:
    """A detector's decoder must find the outputs it reads among the graph's (a classifier given
    task=detection would otherwise ship, and fail at its first prediction)."""
    if meta.task != "detection":
        return
    from edgekit.tasks.detection import DetectionTask

    _, settings = DetectionTask().decoder(meta)
    wanted, present = settings.get("outputs"), [output.name for output in model.graph.output]
    missing = [name for name in wanted if name not in present] if isinstance(wanted, (list, tuple)) else []
    if missing:
        raise BadInputError(f"the {settings['type']} decoder reads outputs {', '.join(missing)}, which the model "
                            f"lacks (it has {', '.join(present)}): set decoder.outputs, or check the task")


def set_ir_metadata(model, meta: ModelMeta) -> None:
    """Write ``meta`` into an OpenVINO ``Model``'s rt_info (``<rt_info><edgekit>…``), as the reader reads it."""
    from edgekit.meta import IR_RT_INFO_KEY

    props = meta.to_props()
    ModelMeta.from_props(props)
    for key, value in props.items():
        model.set_rt_info(value, [IR_RT_INFO_KEY, key])


def write_engine_metadata(engine: Path, meta: ModelMeta) -> Path:
    """Write ``meta`` as the JSON sidecar of a TensorRT engine (``model.engine.json``), atomically."""
    import json

    from edgekit.fileio import write_text_atomic

    props = meta.to_props()
    ModelMeta.from_props(props)
    sidecar = engine.with_suffix(engine.suffix + ".json")
    write_text_atomic(sidecar, json.dumps(props, indent=2))
    return sidecar


def copy_ir_with_metadata(source: Path, output: Path, meta: ModelMeta) -> Path:
    """Copy an OpenVINO IR (.xml and .bin) to ``output`` with ``meta`` in its ``rt_info/edgekit``
    section, editing the XML with the standard library (no OpenVINO needed); written atomically."""
    import shutil
    import xml.etree.ElementTree as ElementTree

    from edgekit.fileio import atomic_path
    from edgekit.meta import IR_RT_INFO_KEY

    props = meta.to_props()
    ModelMeta.from_props(props)
    tree = ElementTree.parse(source)
    root = tree.getroot()
    rt_info = root.find("rt_info")
    if rt_info is None:
        rt_info = ElementTree.SubElement(root, "rt_info")
    section = rt_info.find(IR_RT_INFO_KEY)
    if section is None:
        section = ElementTree.SubElement(rt_info, IR_RT_INFO_KEY)
    for key, value in props.items():
        entry = section.find(key)
        if entry is None:
            entry = ElementTree.SubElement(section, key)
        entry.set("value", value)
    with atomic_path(output.with_suffix(".bin")) as temporary:
        shutil.copyfile(source.with_suffix(".bin"), temporary)
    with atomic_path(output) as temporary:
        tree.write(temporary, encoding="utf-8", xml_declaration=True)
    return output
