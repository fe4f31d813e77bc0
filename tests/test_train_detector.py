"""A short detector training run learns, exports a self-describing ONNX and evaluates alike everywhere."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO, block_imports, run_cli
from edgekit.errors import BadInputError
from edgekit.train import RECIPES, TrainConfig

SMALL = {"train_size": 256, "val_size": 16, "test_size": 80, "eval_every": 3, "eval_size": 16}
EPOCHS = 6  # ≈ 100 steps, 10–20 s: mAP@0.5 ≈ 0.45 on seeds 0 and 1; an untrained model scores ≈ 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    config = TrainConfig(data="shapes", output_dir=tmp_path_factory.mktemp("det"), seed=0, epochs=EPOCHS,
                         batch_size=16, options=SMALL, progress=False)
    return RECIPES.get("detector")(config)


@pytest.mark.slow
def test_short_training_learns(trained):
    from edgekit.datasets import load_split
    from edgekit.meta import read_meta
    from edgekit.train.detector import evaluate_torch
    from edgekit.zoo.detector import centernet_small

    meta = read_meta(trained.onnx)
    test = load_split("shapes", "test", seed=0, test_size=SMALL["test_size"])
    untrained = evaluate_torch(centernet_small(3).eval(), test, meta)
    assert trained.epochs_run == EPOCHS and [h["epoch"] for h in trained.history] == list(range(1, EPOCHS + 1))
    assert "val_map50" in trained.history[2] and "val_map50" not in trained.history[1]
    assert trained.history[-1]["loss"] < 0.5 * trained.history[0]["loss"]
    assert untrained["map50"] < 0.05
    assert trained.metrics["map50"] > 0.25, trained.metrics
    assert trained.metrics["map50_95"] > untrained["map50_95"] + 0.08, trained.metrics


@pytest.mark.slow
def test_export_carries_what_decoding_needs(trained):
    from edgekit.meta import read_meta

    meta = read_meta(trained.onnx)
    assert meta.task == "detection" and meta.labels == ("circle", "square", "triangle")
    assert meta.input_size == (128, 128) and meta.color == "RGB" and meta.resize == "letterbox"
    decoder = meta.extra["decoder"]
    assert decoder["outputs"] == ["heatmap", "size", "offset"] and decoder["stride"] == 4
    assert {"score_threshold", "iou_threshold", "max_detections"} <= set(decoder)
    assert meta.extra["source"] == {"recipe": "detector", "checkpoint": str(trained.checkpoint.resolve()),
                                    "dataset": "shapes", "seed": 0, "dataset_options": {
                                        k: SMALL[k] for k in ("train_size", "val_size", "test_size")}}
    assert meta.recipe["recipe"] == "detector" and meta.recipe["epochs_run"] == EPOCHS
    assert trained.checkpoint.is_file()


@pytest.mark.slow
def test_onnx_runtime_gives_the_torch_metrics(trained):
    from edgekit.datasets import load_split
    from edgekit.evaluate import evaluate

    test = load_split("shapes", "test", seed=0, test_size=SMALL["test_size"])
    record = evaluate(trained.onnx, test, "ort-cpu", batch_size=16)
    assert record.primary_metric == "map50_95" and record.count == SMALL["test_size"]
    assert record.metrics["map50"] == pytest.approx(trained.metrics["map50"], abs=0.01)
    assert record.metrics["map50_95"] == pytest.approx(trained.metrics["map50_95"], abs=0.01)


@pytest.mark.slow
def test_robot_tier_detects_without_torch(trained):
    import subprocess
    import sys

    code = block_imports("torch", "torchvision", "onnx") + f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from edgekit.datasets.shapes import load_shapes
from edgekit.meta import read_meta
from edgekit.runtimes import open_runtime
from edgekit.tasks import get_task
split = load_shapes("test", seed=0, test_size=4, cache=False)
meta = read_meta({str(trained.onnx)!r})
task = get_task(meta.task)
feeds, transforms = task.preprocess(list(split.images), meta)
with open_runtime("ort-cpu", {str(trained.onnx)!r}) as runtime:
    predictions = task.postprocess(runtime.run(feeds), meta, transforms)
assert "torch" not in sys.modules and "onnx" not in sys.modules
print(sum(len(p) for p in predictions), predictions[0].names[:1])
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[0]) > 0


def test_same_seed_same_weights(tmp_path):
    import torch

    options = {"train_size": 48, "val_size": 8, "test_size": 8, "eval_every": 0}
    runs = [RECIPES.get("detector")(TrainConfig(data="shapes", output_dir=tmp_path / name, seed=1, epochs=1,
                                                batch_size=16, options=options, progress=False))
            for name in ("a", "b")]
    first, second = (torch.load(r.checkpoint, weights_only=True)["state_dict"] for r in runs)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert runs[0].history[0]["loss"] == runs[1].history[0]["loss"] and np.isfinite(runs[0].history[0]["loss"])


def test_bad_configuration_is_one_clear_error(tmp_path):
    train = RECIPES.get("detector")
    with pytest.raises(BadInputError, match="unknown option trian_size"):
        train(TrainConfig(data="shapes", output_dir=tmp_path, options={"trian_size": 5}, progress=False))
    with pytest.raises(BadInputError, match="trains on 'shapes' or a COCO .json"):
        train(TrainConfig(data="digits", output_dir=tmp_path, progress=False))
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInputError, match="is a file"):
        train(TrainConfig(data="shapes", output_dir=tmp_path / "file", progress=False))


@pytest.mark.slow
def test_eval_cli_shows_runtimes_beside_the_torch_checkpoint(trained, tmp_path):
    import json

    result = run_cli("eval", str(trained.onnx), "--json", str(tmp_path / "eval.json"))
    assert result.returncode == 0, result.stderr
    records = json.loads((tmp_path / "eval.json").read_text())
    assert records["dataset"] == "shapes" and records["records"][0]["count"] == SMALL["test_size"]
    assert records["reference"]["map50_95"] == pytest.approx(trained.metrics["map50_95"], abs=1e-6)
    assert records["records"][0]["metrics"]["map50_95"] == pytest.approx(trained.metrics["map50_95"], abs=0.01)


@pytest.mark.slow
def test_train_cli_and_its_errors(tmp_path):
    args = ("train", "detector", "--data", "shapes", "--out", str(tmp_path / "run"), "--epochs", "1", "-q",
            "-O", "train_size=32", "-O", "val_size=8", "-O", "test_size=8", "-O", "eval_every=0")
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "detector.onnx").is_file() and (tmp_path / "run" / "detector.pt").is_file()
    assert "map50" in result.stdout
    bad = run_cli("train", "detector", "--data", str(tmp_path / "missing.json"), "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "not found" in bad.stderr + bad.stdout and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad" / "detector.pt").exists()


def test_trains_on_a_coco_file(tmp_path):
    from edgekit.datasets.coco import write_coco
    from edgekit.datasets.shapes import load_shapes
    from edgekit.meta import read_meta

    annotations = write_coco(load_shapes("test", seed=5, test_size=40, cache=False), tmp_path / "coco")
    result = RECIPES.get("detector")(TrainConfig(data=str(annotations), output_dir=tmp_path / "run", epochs=1,
                                                 batch_size=8, options={"eval_every": 0}, progress=False))
    meta = read_meta(result.onnx)
    assert meta.labels == ("circle", "square", "triangle") and result.metrics["map50"] >= 0.0
    assert meta.extra["source"]["dataset_options"] == {"fractions": [0.8, 0.1, 0.1]}
