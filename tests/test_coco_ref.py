"""COCO data: edgekit's evaluation reproduces the published COCO figures; the loader on bad data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.datasets import Split, load_split
from edgekit.datasets.coco import coco_dict, detections_from_results, load_coco, read_annotations, write_coco
from edgekit.errors import BadInputError
from edgekit.evaluate.metrics import make_evaluator
from edgekit.meta import ModelMeta

REFERENCE = (Path(__file__).resolve().parents[1] / "../shared/data/coco-ref").resolve()
needs_reference = pytest.mark.skipif(
    not (REFERENCE / "instances_val2014_100.json").is_file(),
    reason=f"COCO reference data not found at {REFERENCE} (expected ../shared/data/coco-ref beside the checkout)",
)


def _annotation_split(path: Path) -> Split:
    """The ground truth as a Split; the images themselves are not shipped, so zero-cost stand-ins."""
    parsed = read_annotations(path)
    images = [np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (im["height"], im["width"], 3)) for im in parsed["images"]]
    return Split("test", "detection", images, parsed["targets"], parsed["labels"],
                 {"category_ids": parsed["category_ids"]})


def _published(path: Path) -> dict[str, float]:
    """AP, AP50, AP75 of the bbox block of the published cocoapi output."""
    text = path.read_text().split("type=bbox")[1]
    values = [float(line.rsplit("=", 1)[1]) for line in text.splitlines() if "Average Precision" in line][:3]
    return dict(zip(("map50_95", "map50", "map75"), values))


@needs_reference
def test_evaluation_reproduces_published_coco_figures():
    split = _annotation_split(REFERENCE / "instances_val2014_100.json")
    assert len(split) == 100 and sum(len(t["labels"]) for t in split.targets) == 839
    predictions = detections_from_results(REFERENCE / "instances_val2014_fakebbox100_results.json", split)
    assert sum(len(p) for p in predictions) == 734
    evaluator = make_evaluator(ModelMeta(task="detection", labels=split.labels))
    evaluator.update(predictions, list(split.targets))
    metrics = evaluator.compute()
    published = _published(REFERENCE / "cocoapi_val2014_fake_eval_res.txt")
    assert published == {"map50_95": 0.505, "map50": 0.697, "map75": 0.573}
    for name, value in published.items():
        assert round(metrics[name], 3) == value, name


@needs_reference
def test_coco_dict_round_trips_the_reference_annotations():
    split = _annotation_split(REFERENCE / "instances_val2014_100.json")
    original = json.loads((REFERENCE / "instances_val2014_100.json").read_text())
    rebuilt = coco_dict(split)
    assert {im["id"] for im in rebuilt["images"]} == {im["id"] for im in original["images"]}
    categories = [sorted(a["category_id"] for a in d["annotations"]) for d in (rebuilt, original)]
    assert categories[0] == categories[1]
    first = next(a for a in original["annotations"] if a["image_id"] == original["images"][0]["id"])
    match = next(a for a in rebuilt["annotations"] if a["image_id"] == first["image_id"])
    assert match["bbox"] == pytest.approx(first["bbox"], abs=1e-3)


def _write(folder: Path, data, name="annotations.json") -> Path:
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _tiny_split() -> Split:
    images = np.zeros((3, 20, 30, 3), np.uint8)
    images[1, 5:10, 5:15] = 200
    targets = [{"boxes": np.array([[1, 2, 11, 12]], np.float32), "labels": np.array([0]), "image_id": 7},
               {"boxes": np.array([[5, 5, 15, 10], [0, 0, 4, 4]], np.float32), "labels": np.array([1, 0]),
                "image_id": 8},
               {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64), "image_id": 9}]
    return Split("test", "detection", images, targets, ("a", "b"))


def test_write_and_load_coco_round_trip(tmp_path):
    path = write_coco(_tiny_split(), tmp_path)
    loaded = load_split(str(path), "test")
    assert loaded.task == "detection" and loaded.labels == ("a", "b") and len(loaded) == 3
    assert loaded.images[1].shape == (20, 30, 3) and loaded.images[1][7, 7].tolist() == [200, 200, 200]
    assert loaded.targets[1]["boxes"].tolist() == [[5, 5, 15, 10], [0, 0, 4, 4]]
    assert loaded.targets[1]["labels"].tolist() == [1, 0] and loaded.targets[2]["boxes"].shape == (0, 4)
    parts = [load_coco(path, s, seed=0, fractions=(0.34, 0.33, 0.33)) for s in ("train", "val", "test")]
    assert sorted(t["image_id"] for p in parts for t in p.targets) == [7, 8, 9]


def test_loader_missing_file(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        load_split(str(tmp_path / "nope.json"))


def test_loader_malformed_json(tmp_path):
    with pytest.raises(BadInputError, match=r"not valid JSON \(line 1"):
        load_coco(_write(tmp_path, '{"images": [,]}'))


@pytest.mark.parametrize("data, message", [
    ({"images": [], "annotations": []}, "missing key 'categories'"),
    ({"images": [], "annotations": [], "categories": []}, "no images"),
    ({"images": [{"id": 1}], "annotations": [], "categories": []}, "no categories"),
    ({"images": [{"id": 1}], "annotations": [], "categories": [{"id": 1}]}, "images #0 has no 'file_name'"),
    ({"images": [{"id": 1, "file_name": "x.png"}], "annotations": [{"image_id": 1, "category_id": 1}],
      "categories": [{"id": 1}]}, "annotations #0 has no 'bbox'"),
    ({"images": [{"id": 1, "file_name": "x.png"}],
      "annotations": [{"image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}], "categories": [{"id": 1}]},
     "image id 2, which is not in 'images'"),
    ([1, 2], "expected a COCO object"),
])
def test_loader_bad_structure(tmp_path, data, message):
    with pytest.raises(BadInputError, match=message):
        load_coco(_write(tmp_path, data))


def test_loader_missing_images(tmp_path):
    path = write_coco(_tiny_split(), tmp_path)
    (tmp_path / "000008.png").unlink()
    with pytest.raises(BadInputError, match=r"1 of 3 images .* missing .*first: 000008.png"):
        load_coco(path)
    (tmp_path / "000009.png").write_text("not an image")
    (tmp_path / "000008.png").write_text("not an image")
    with pytest.raises(BadInputError, match="cannot read image"):
        load_coco(path)


def test_results_naming_unknown_images_are_rejected():
    with pytest.raises(BadInputError, match="does not have"):
        detections_from_results([{"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}], _tiny_split())
