"""The generated shapes dataset: sizes, counts, overlap limit, contrast, determinism, caching."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.datasets import load_split
from edgekit.datasets.shapes import LABELS, MAX_OVERLAP, generate, load_shapes, shape_mask
from edgekit.errors import BadInputError


@pytest.fixture(scope="module")
def split():
    return load_shapes("train", seed=3, train_size=300)


def test_images_and_counts(split):
    assert split.task == "detection" and split.labels == LABELS == ("circle", "square", "triangle")
    assert np.asarray(split.images).shape == (300, 128, 128, 3) and np.asarray(split.images).dtype == np.uint8
    counts = np.array([len(t["labels"]) for t in split.targets])
    assert counts.min() == 1 and counts.max() == 5 and 2.5 < counts.mean() < 3.5
    labels = np.concatenate([t["labels"] for t in split.targets])
    assert np.bincount(labels, minlength=3).min() > 0.25 * len(labels) / 3  # every class is common
    assert [t["image_id"] for t in split.targets] == list(range(300))


def test_boxes_sizes_and_overlap(split):
    for target in split.targets:
        boxes = target["boxes"]
        assert boxes.dtype == np.float32 and boxes.shape == (len(target["labels"]), 4)
        sides = boxes[:, 2:] - boxes[:, :2]
        assert (boxes >= 0).all() and (boxes <= 128).all()
        assert (sides >= 12).all() and (sides <= 48).all()
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                width = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
                height = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
                # the boxes' intersection bounds the shapes' overlap
                overlap = max(width, 0) * max(height, 0)
                assert overlap <= MAX_OVERLAP * min(target["area"][i], target["area"][j]) + 1e-6


def test_shape_masks():
    circle, square, triangle = (shape_mask(k, 20) for k in range(3))
    assert square.sum() == 400
    assert abs(circle.sum() - np.pi * 100) < 15 and circle[10].all() and not circle[0, 0]
    assert abs(triangle.sum() - 200) < 25 and triangle[19].all() and not triangle[0, 0] and triangle[1, 10]


def test_objects_stand_out_from_the_background():
    images, targets = generate(60, seed=5)
    checked = 0
    for image, target in zip(images, targets):
        boxes = target["boxes"].astype(int)
        for index, (x1, y1, x2, y2) in enumerate(boxes):
            others = np.delete(boxes, index, axis=0)
            near = (others[:, 0] < x2 + 3) & (others[:, 2] > x1 - 3) & (others[:, 1] < y2 + 3) & (others[:, 3] > y1 - 3)
            if near.any() or min(x1, y1) < 2 or max(x2, y2) > 125:
                continue  # only isolated objects have a clean ring of background around them
            centre = image[(y1 + y2) // 2, (x1 + x2) // 2].astype(float)  # every shape covers its box centre
            ring = np.concatenate([image[y1 - 2, x1:x2], image[y2 + 1, x1:x2]]).astype(float)
            assert np.median(np.linalg.norm(ring - centre, axis=1)) > 40
            checked += 1
    assert checked > 30


def test_deterministic_by_seed_and_splits_differ():
    a = load_shapes("val", seed=1, val_size=20, cache=False)
    b = load_shapes("val", seed=1, val_size=20, cache=False)
    c = load_shapes("val", seed=2, val_size=20, cache=False)
    test = load_shapes("test", seed=1, test_size=20, cache=False)
    assert np.array_equal(a.images, b.images)
    assert all(np.array_equal(x["boxes"], y["boxes"]) for x, y in zip(a.targets, b.targets))
    assert not np.array_equal(a.images, c.images) and not np.array_equal(a.images, test.images)


def test_cache_returns_the_same_data(_isolated_cache):
    first = load_split("shapes", "test", seed=4, test_size=25)
    assert list((_isolated_cache / "datasets").glob("shapes-test-25-*.npz"))
    second = load_split("shapes", "test", seed=4, test_size=25)
    fresh = load_shapes("test", seed=4, test_size=25, cache=False)
    assert np.array_equal(first.images, second.images) and np.array_equal(first.images, fresh.images)
    for x, y in zip(second.targets, fresh.targets):
        assert np.array_equal(x["boxes"], y["boxes"]) and np.array_equal(x["labels"], y["labels"])
        assert np.array_equal(x["area"], y["area"]) and x["image_id"] == y["image_id"]


def test_default_sizes_and_bad_options():
    from edgekit.datasets.shapes import DEFAULT_SIZES

    assert DEFAULT_SIZES == {"train": 4000, "val": 500, "test": 500}
    with pytest.raises(BadInputError, match="test_size must be a positive integer"):
        load_shapes("test", test_size=0)
    with pytest.raises(BadInputError, match="split must be one of"):
        load_shapes("holdout")
