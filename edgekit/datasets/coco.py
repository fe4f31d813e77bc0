"""COCO-format detection data: an annotations .json and a folder of images.

``load_coco`` reads boxes (COCO x y w h → x1 y1 x2 y2), maps category ids to label indices
(sorted by id; ``split.info["category_ids"]`` maps back) and keeps ``area`` and ``iscrowd``
so evaluation matches the COCO tools. Images are read with Pillow, lazily imported.
Every problem with the file is one ``BadInputError`` line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.datasets.base import SPLITS, Split, split_indices
from edgekit.datasets.image_folder import read_image
from edgekit.errors import BadInputError
from edgekit.meta import is_finite_number


def read_annotations(path: str | Path) -> dict[str, Any]:
    """Parse and check a COCO annotations file: images, categories and per-image targets.

    Returns ``{"images": [...], "labels": (...), "category_ids": [...], "targets": [...]}``,
    targets in the order of ``images``, each with ``image_id`` set to the COCO image id.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: expected a COCO object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise BadInputError(f"{path}: missing key '{key}' (a list) in the COCO annotations")
    images = data["images"]
    if not images:
        raise BadInputError(f"{path}: the dataset has no images")
    if not data["categories"]:
        raise BadInputError(f"{path}: the dataset has no categories (every box needs one)")
    categories = [_field(path, "categories", i, c, "id", _is_id, "an integer")
                  for i, c in enumerate(data["categories"])]
    names = {c["id"]: str(c.get("name", c["id"])) for c in data["categories"]}
    categories = sorted(set(categories))
    label_of = {category: index for index, category in enumerate(categories)}
    position = {_field(path, "images", i, image, "id", _is_id, "an integer"): i for i, image in enumerate(images)}
    if len(position) != len(images):
        raise BadInputError(f"{path}: image ids are not unique")
    for i, image in enumerate(images):
        _field(path, "images", i, image, "file_name", lambda v: isinstance(v, str) and bool(v), "a file name")
    grouped: list[list[dict]] = [[] for _ in images]
    for i, annotation in enumerate(data["annotations"]):
        image_id = _field(path, "annotations", i, annotation, "image_id", _is_id, "an integer")
        category = _field(path, "annotations", i, annotation, "category_id", _is_id, "an integer")
        _field(path, "annotations", i, annotation, "bbox", _is_box, "[x, y, width, height] finite, width/height ≥ 0")
        for key, valid, expected in (("area", is_finite_number, "a number"),
                                     ("iscrowd", lambda v: v in (0, 1), "0 or 1")):
            if key in annotation:
                _field(path, "annotations", i, annotation, key, valid, expected)
        if image_id not in position:
            raise BadInputError(f"{path}: annotation #{i} refers to image id {image_id}, which is not in 'images'")
        if category not in label_of:
            raise BadInputError(f"{path}: annotation #{i} has category id {category}, which is not in 'categories'")
        grouped[position[image_id]].append(annotation)
    targets = [_target(image, annotations, label_of) for image, annotations in zip(images, grouped)]
    return {"images": images, "labels": tuple(names[c] for c in categories), "category_ids": categories,
            "targets": targets}


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise BadInputError(f"COCO annotations not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise BadInputError(f"{path} is not a UTF-8 text file") from None


def _field(path: Path, section: str, index: int, entry: Any, key: str, valid=None, expected: str = "") -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise BadInputError(f"{path}: {section} #{index} has no '{key}'")
    if valid is not None and not valid(entry[key]):
        shown = repr(entry[key])[:40]
        raise BadInputError(f"{path}: {section} #{index} has '{key}' {shown}, expected {expected}")
    return entry[key]


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_box(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 4 and all(map(is_finite_number, value)) and min(value[2:]) >= 0


def _target(image: dict, annotations: list[dict], label_of: dict[int, int]) -> dict[str, Any]:
    xywh = np.array([a["bbox"] for a in annotations], dtype=np.float32).reshape(-1, 4)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    return {
        "boxes": boxes,
        "labels": np.array([label_of[a["category_id"]] for a in annotations], dtype=np.int64),
        "area": np.array([a.get("area", w * h) for a, (w, h) in zip(annotations, xywh[:, 2:])], dtype=np.float32),
        "iscrowd": np.array([int(a.get("iscrowd", 0)) for a in annotations], dtype=np.int64),
        "image_id": image["id"],
    }


def load_coco(
    path: str | Path, split: str = "test", seed: int = 0, images_dir: str | Path | None = None,
    fractions: Sequence[float] | None = None,
) -> Split:
    """A detection ``Split`` from COCO annotations; images under ``images_dir`` (default: beside the file).

    Without ``fractions`` the whole file is the split (an annotation file per split, as COCO
    ships them); with ``fractions`` (train, val, test) it is divided by ``seed``.
    """
    if split not in SPLITS:
        raise BadInputError(f"split must be one of {', '.join(SPLITS)}, got '{split}'")
    path = Path(path)
    parsed = read_annotations(path)
    folder = Path(images_dir) if images_dir is not None else path.parent
    if not folder.is_dir():
        raise BadInputError(f"images folder not found: {folder}")
    chosen = np.arange(len(parsed["images"]))
    if fractions is not None:
        chosen = np.sort(split_indices(len(chosen), tuple(float(f) for f in fractions), seed)[split])
        if not len(chosen):
            raise BadInputError(f"{path}: the {split} split is empty with fractions {tuple(fractions)}")
    files = [folder / parsed["images"][i]["file_name"] for i in chosen]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise BadInputError(f"{len(missing)} of {len(files)} images listed in {path.name} are missing "
                            f"under {folder} (first: {missing[0].name})")
    images = [read_image(f) for f in files]
    targets = [parsed["targets"][i] for i in chosen]
    info = {"dataset": path.name, "category_ids": parsed["category_ids"], "images_dir": str(folder)}
    return Split(split, "detection", images, targets, parsed["labels"], info)


def coco_dict(split: Split, file_names: Sequence[str] | None = None) -> dict[str, Any]:
    """COCO annotations for a detection split (category ids = label index + 1 unless the split has its own)."""
    category_ids = split.info.get("category_ids") or list(range(1, len(split.labels) + 1))
    images, annotations = [], []
    for index, (image, target) in enumerate(zip(split.images, split.targets)):
        image_id = int(target.get("image_id", index))
        height, width = np.asarray(image).shape[:2]
        name = file_names[index] if file_names is not None else f"{image_id:06d}.png"
        images.append({"id": image_id, "file_name": name, "width": int(width), "height": int(height)})
        boxes = np.asarray(target["boxes"], np.float64).reshape(-1, 4)
        area = target.get("area", (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        crowd = target.get("iscrowd", np.zeros(len(boxes), np.int64))
        for box, label, box_area, is_crowd in zip(boxes, target["labels"], area, crowd):
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": int(category_ids[int(label)]),
                "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                "area": float(box_area), "iscrowd": int(is_crowd),
            })
    categories = [{"id": int(c), "name": name} for c, name in zip(category_ids, split.labels)]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco(split: Split, folder: str | Path, annotations: str = "annotations.json") -> Path:
    """Write ``split`` as PNG images plus a COCO annotations file in ``folder``; returns the .json path."""
    from PIL import Image

    from edgekit.fileio import atomic_path, write_text_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = coco_dict(split)
    for entry, image in zip(data["images"], split.images):
        with atomic_path(folder / entry["file_name"]) as temporary:
            Image.fromarray(np.asarray(image)).save(temporary, format="PNG")
    target = folder / annotations
    write_text_atomic(target, json.dumps(data))
    return target


def detections_from_results(results: Any, split: Split) -> list:
    """COCO results (a list or a .json path) → one ``Detection`` per image of ``split``.

    Results are matched to images by COCO image id and to labels by category id; a result
    naming an image or category the split does not have is an error.
    """
    from edgekit.tasks.detection import Detection

    if isinstance(results, (str, Path)):
        results = _read_json(Path(results))
    if not isinstance(results, list):
        raise BadInputError("COCO results must be a list of {image_id, category_id, bbox, score}")
    position = {int(t.get("image_id", i)): i for i, t in enumerate(split.targets)}
    label_of = {int(c): i for i, c in enumerate(split.info.get("category_ids") or range(1, len(split.labels) + 1))}
    grouped: list[list[dict]] = [[] for _ in split.targets]
    for i, result in enumerate(results):
        for key, valid, expected in (("image_id", _is_id, "an integer"), ("category_id", _is_id, "an integer"),
                                     ("bbox", _is_box, "[x, y, width, height]"),
                                     ("score", is_finite_number, "a number")):
            _field(Path("results"), "results", i, result, key, valid, expected)
        if result["image_id"] not in position or result["category_id"] not in label_of:
            raise BadInputError(f"result #{i} names image {result['image_id']} / category {result['category_id']}, "
                                "which the dataset does not have")
        grouped[position[result["image_id"]]].append(result)
    detections = []
    for entries in grouped:
        entries = sorted(entries, key=lambda r: -r["score"])
        xywh = np.array([r["bbox"] for r in entries], np.float32).reshape(-1, 4)
        labels = np.array([label_of[r["category_id"]] for r in entries], np.int64)
        names = tuple(split.labels[c] for c in labels)
        detections.append(Detection(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),
                                    np.array([r["score"] for r in entries], np.float32), labels, names))
    return detections
