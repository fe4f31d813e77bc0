"""`edgekit eval` on the user's own folder: every image unless a split is asked for, per-class recall and
a confusion matrix, top-k only when it means something; bad folders stay one clear line."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from conftest import assert_one_line_error
from edgekit.cli.app import app
from edgekit.evaluate.across_runtimes import compare_runtimes
from edgekit.meta import ModelMeta

# cat: 15 images, 3 of them bright (taken for dogs); dog: 15 images, 1 of them dark (taken for a cat)
BRIGHT = {"cat": (False,) * 12 + (True,) * 3, "dog": (True,) * 14 + (False,)}
CONFUSION = [[12, 3], [1, 14]]


def brightness_classifier(path: Path, labels=("cat", "dog"), meta_extra=None) -> Path:
    """(N, 3, 8, 8) in [0, 1] → logits (dark, bright): the second class wins when the mean is over 0.5."""
    helper, tensor = onnx.helper, onnx.TensorProto.FLOAT
    weights = helper.make_tensor("w", tensor, [3, 2], [-1.0, 1.0] * 3)
    bias = helper.make_tensor("b", tensor, [2], [1.5, -1.5])
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["scores"]),
             helper.make_node("Add", ["scores", "b"], ["output"])]
    graph = helper.make_graph(nodes, "brightness", [helper.make_tensor_value_info("input", tensor, ["n", 3, 8, 8])],
                              [helper.make_tensor_value_info("output", tensor, ["n", 2])], [weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    meta = ModelMeta(task="classification", model_name="my_net", input_size=(8, 8), mean=(0.0,) * 3,
                     std=(1.0,) * 3, labels=tuple(labels), extra=dict(meta_extra or {}))
    helper.set_model_props(model, meta.to_props())
    onnx.save(model, str(path))
    return path


def write_folder(root: Path, bright=BRIGHT) -> Path:
    from PIL import Image

    for name, flags in bright.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for index, light in enumerate(flags):
            level = 200 + index if light else 40 + index
            Image.fromarray(np.full((10, 12, 3), level, np.uint8)).save(root / name / f"{index:02d}.png")
    return root


@pytest.fixture
def user_data(tmp_path):
    return brightness_classifier(tmp_path / "my_net.onnx"), write_folder(tmp_path / "test")


def invoke(*args):
    """The CLI in-process: (returncode, stdout with its white space squeezed, stderr)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return SimpleNamespace(returncode=result.exit_code, stdout=" ".join(result.stdout.split()), stderr=result.stderr)


def test_a_user_folder_is_evaluated_whole_with_per_class_figures(user_data, tmp_path):
    model, folder = user_data
    result = invoke("eval", model, "-d", folder, "--no-torch", "--json", tmp_path / "e.json")
    assert result.returncode == 0, result.stderr
    assert "all 30 images" in result.stdout and "test split" not in result.stdout
    assert "top5" not in result.stdout and "recall" in result.stdout and "confusion matrix" in result.stdout
    report = json.loads((tmp_path / "e.json").read_text())
    (record,) = report["records"]
    assert report["split"] == record["split"] == "all" and record["count"] == 30
    assert set(record["metrics"]) == {"top1", "count"} and record["metrics"]["top1"] == pytest.approx(26 / 30 * 100)
    per_class = record["details"]["per_class"]
    assert [(r["label"], r["images"], r["correct"]) for r in per_class] == [("cat", 15, 12), ("dog", 15, 14)]
    assert per_class[0]["recall"] == pytest.approx(80.0) and per_class[1]["recall"] == pytest.approx(14 / 15 * 100)
    assert record["details"]["confusion"] == {"labels": ["cat", "dog"], "matrix": CONFUSION}


def test_split_all_is_accepted_and_a_named_split_still_splits(user_data, tmp_path):
    model, folder = user_data
    whole = invoke("eval", model, "-d", folder, "--split", "all", "--no-torch", "--json", tmp_path / "a.json")
    assert whole.returncode == 0, whole.stderr
    assert json.loads((tmp_path / "a.json").read_text())["records"][0]["count"] == 30
    test = invoke("eval", model, "-d", folder, "--split", "test", "--no-torch", "--json", tmp_path / "t.json")
    assert test.returncode == 0, test.stderr
    report = json.loads((tmp_path / "t.json").read_text())
    (record,) = report["records"]
    assert report["split"] == "test" and record["count"] == 5 and "test split, seed 0, 5 images" in test.stdout
    assert sum(r["images"] for r in record["details"]["per_class"]) == 5
    assert sum(map(sum, record["details"]["confusion"]["matrix"])) == 5


def test_the_data_a_model_was_trained_on_keeps_the_test_split(tmp_path):
    folder = write_folder(tmp_path / "pets")
    model = brightness_classifier(tmp_path / "m.onnx", meta_extra={"source": {"dataset": str(folder), "seed": 3}})
    for data in ([], ["-d", str(folder)], ["-d", f"{folder}/"]):
        result = invoke("eval", model, *data, "--no-torch", "--json", tmp_path / "e.json")
        assert result.returncode == 0, result.stderr
        report = json.loads((tmp_path / "e.json").read_text())
        assert (report["split"], report["seed"], report["records"][0]["count"]) == ("test", 3, 5), data


def test_topk_is_shown_only_below_the_class_count(tmp_path):
    from edgekit.evaluate.metrics import TopKEvaluator
    from edgekit.tasks import get_task

    task, meta = get_task("classification"), ModelMeta(task="classification")
    for classes, expected in ((2, {"top1", "count"}), (5, {"top1", "count"}), (6, {"top1", "top5", "count"})):
        evaluator = TopKEvaluator()
        logits = np.tile(np.arange(classes, dtype=np.float32), (3, 1))  # every image: the last class first
        evaluator.update(task.postprocess({"o": logits}, meta, []), [classes - 1, 0, 0])
        assert set(evaluator.compute()) == expected, classes
        details = evaluator.details()
        assert [r["images"] for r in details["per_class"]] == [2, 1] and details["per_class"][0]["recall"] == 0.0
        assert details["confusion"]["labels"] == ["0", str(classes - 1)]  # the classes seen, without labels


def test_builtin_datasets_keep_their_test_split_and_refuse_all(user_data):
    from edgekit.datasets import load_split
    from edgekit.datasets.loader import default_split
    from edgekit.errors import BadInputError

    assert default_split("digits") == default_split("shapes") == default_split(None) == "test"
    assert default_split("my/folder") == default_split("coco.json") == "all"
    with pytest.raises(BadInputError, match="split 'all' is for your own folder"):
        load_split("digits", "all")
    model, folder = user_data
    assert_one_line_error(invoke("eval", model, "-d", "digits", "--split", "all"), "split 'all' is for your own")
    assert compare_runtimes(model, data=str(folder), split="val", reference=False).records[0].count == 4


@pytest.mark.parametrize("layout, fragment", [
    ({}, "has no class folders"), ({"cat": 3}, "only one class folder"), ({"cat": 3, "dog": 0}, "dog"),
])
def test_bad_folders_are_one_line_and_write_nothing(user_data, tmp_path, layout, fragment):
    model, _ = user_data
    root = tmp_path / "bad"
    root.mkdir()
    write_folder(root, {name: (False,) * count for name, count in layout.items()})
    result = invoke("eval", model, "-d", root, "--json", tmp_path / "bad.json")
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "bad.json").exists()


def test_many_classes_show_the_lowest_recalls_and_leave_the_matrix_to_json():
    from rich.console import Console

    from edgekit.cli.eval import MAX_CLASS_ROWS, show_per_class
    from edgekit.evaluate.metrics import TopKEvaluator
    from edgekit.tasks.classification import ClassPrediction

    evaluator, classes = TopKEvaluator(labels=[f"c{i}" for i in range(40)]), 40
    targets = list(range(classes)) * 2
    evaluator.update([ClassPrediction((t if t % 4 else (t + 1) % classes,), (1.0,), ("",)) for t in targets], targets)
    out = Console(width=200, record=True)
    show_per_class(out, [SimpleNamespace(runtime="ort-cpu", details=evaluator.details())])
    text = out.export_text()
    assert f"the {MAX_CLASS_ROWS} lowest of 40 classes shown, all in --json" in text
    assert "│ c0 " in text and "│ c1 " in text and "confusion matrix (ort-cpu): 40×40, in --json" in text
