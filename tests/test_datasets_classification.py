"""Classification datasets: scikit-learn digits at 32×32 and image folders, split by seed;
bad data → one clear error."""

import numpy as np
import pytest

from edgekit.datasets import load_split
from edgekit.datasets.image_folder import load_image_folder
from edgekit.errors import BadInputError


def _digits(split, seed=0, **options):
    return load_split("digits", split, seed, **options)


def test_digits_splits_are_fixed_disjoint_and_sized_70_15_15():
    splits = {name: _digits(name) for name in ("train", "val", "test")}
    assert [len(s) for s in splits.values()] == [1257, 270, 270]
    flat = {name: {img.tobytes() for img in s.images} for name, s in splits.items()}
    assert not flat["train"] & flat["test"] and not flat["val"] & flat["test"]
    test = splits["test"]
    assert test.images.shape == (270, 32, 32, 1) and test.images.dtype == np.uint8
    assert test.labels == tuple(str(d) for d in range(10)) and set(test.targets.tolist()) == set(range(10))
    again = _digits("test")
    assert np.array_equal(again.images, test.images) and np.array_equal(again.targets, test.targets)
    other = _digits("test", seed=1)
    assert not np.array_equal(other.targets, test.targets)


def test_digits_sit_in_the_middle_like_mnist():
    images = _digits("train").images[..., 0]
    assert images[:, :6].max() == 0 and images[:, -6:].max() == 0 and images[:, :, :6].max() == 0
    assert images.max() == 255 and images[:, 6:26, 6:26].mean() > 40


def test_digit_class_subsets_keep_the_split_and_renumber_targets():
    full, subset = _digits("test"), _digits("test", classes="5-9")
    assert subset.labels == ("5", "6", "7", "8", "9") and set(subset.targets.tolist()) == set(range(5))
    chosen = np.isin(full.targets, [5, 6, 7, 8, 9])
    assert np.array_equal(subset.images, full.images[chosen])
    assert np.array_equal(subset.targets + 5, full.targets[chosen])
    assert _digits("val", classes=[0, 2]).labels == ("0", "2")


@pytest.mark.parametrize("classes, fragment", [("a-b", "must look like"), ("7", "at least 2"),
                                               ("3-12", "between 0 and 9")])
def test_bad_digit_classes_are_refused(classes, fragment):
    with pytest.raises(BadInputError, match=fragment):
        _digits("test", classes=classes)


def test_unknown_dataset_and_split_names_are_refused():
    with pytest.raises(BadInputError, match="did you mean 'digits'"):
        load_split("digit", "test")
    with pytest.raises(BadInputError, match="split must be one of"):
        load_split("digits", "testing")


def _write_images(folder, count, size=(12, 10), fmt="PNG", value=0):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = np.full((*size, 3), (value + 20 * index) % 256, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index}.{fmt.lower()}", fmt)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "pets"
    _write_images(root / "cat", 10, value=10)
    _write_images(root / "dog", 10, fmt="JPEG", value=200)
    return root


def test_image_folder_loads_each_split_once_with_class_names(folder):
    splits = {name: load_split(str(folder), name, seed=3) for name in ("train", "val", "test")}
    assert [len(s) for s in splits.values()] == [14, 3, 3]
    files = [f for s in splits.values() for f in s.info["files"]]
    assert sorted(files) == sorted(f"{c}/img{i}.{e}" for c, e in (("cat", "png"), ("dog", "jpeg")) for i in range(10))
    test = splits["test"]
    assert test.labels == ("cat", "dog") and test.images[0].shape == (12, 10, 3) and test.images[0].dtype == np.uint8
    for image, target, name in zip(test.images, test.targets, test.info["files"]):
        assert name.startswith(test.labels[target])
    assert load_split(str(folder), "test", seed=3).info["files"] == test.info["files"]


def test_split_all_is_every_image_of_a_folder_in_file_order(folder):
    whole = load_split(str(folder), "all", seed=3)
    assert whole.name == "all" and len(whole) == 20 and whole.targets.tolist() == [0] * 10 + [1] * 10
    parts = [f for name in ("train", "val", "test") for f in load_split(str(folder), name, seed=3).info["files"]]
    assert whole.info["files"] == sorted(parts)
    with pytest.raises(BadInputError, match="split 'all' is for your own folder"):
        load_split("digits", "all")
    with pytest.raises(BadInputError, match="split must be one of train, val, test, all"):
        load_image_folder(folder, "everything")


def test_split_all_of_a_coco_file_is_the_whole_file(tmp_path):
    import json

    from PIL import Image

    for index in range(4):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / f"{index}.png")
    coco = {"images": [{"id": i + 1, "file_name": f"{i}.png"} for i in range(4)], "categories": [{"id": 1}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4]}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    whole = load_split(str(tmp_path / "c.json"), "all", fractions=(0.5, 0.25, 0.25))
    assert whole.name == "all" and len(whole) == 4 and whole.task == "detection"
    assert len(load_split(str(tmp_path / "c.json"), "test", fractions=(0.5, 0.25, 0.25))) == 1


def test_image_folder_errors_are_one_clear_line(tmp_path, folder):
    cases = [
        (tmp_path / "missing", "not found"),
        (_touch(tmp_path / "file.txt"), "is not a folder"),
        (_mkdir(tmp_path / "empty"), "has no class folders"),
    ]
    loose = _mkdir(tmp_path / "loose")
    _write_images(loose / "x", 1)
    (loose / "x" / "img0.png").rename(loose / "img0.png")
    (loose / "x").rmdir()
    cases.append((loose, "one sub-folder per class"))
    one = tmp_path / "one"
    _write_images(one / "only", 3)
    cases.append((one, "only one class folder"))
    _mkdir(folder / "bird")
    cases.append((folder, "bird"))
    for root, fragment in cases:
        with pytest.raises(BadInputError, match=fragment) as info:
            load_image_folder(root, "train")
        assert "\n" not in str(info.value)


def test_unreadable_image_is_named(folder):
    (folder / "cat" / "img3.png").write_bytes(b"not a png at all")
    with pytest.raises(BadInputError, match=r"cannot read image .*img3\.png"):
        for split in ("train", "val", "test"):
            load_image_folder(folder, split, seed=0)


def test_an_empty_split_is_refused(tmp_path):
    _write_images(tmp_path / "d" / "a", 1)
    _write_images(tmp_path / "d" / "b", 1)
    assert len(load_image_folder(tmp_path / "d", "test")) == 1
    with pytest.raises(BadInputError, match="'val' split .* is empty"):
        load_image_folder(tmp_path / "d", "val")


def _touch(path):
    path.write_text("x")
    return path


def _mkdir(path):
    path.mkdir()
    return path
