"""Transfer learning: a digits-0–4 backbone gets a new head for digits 5–9 from a few examples."""

import numpy as np
import pytest

from conftest import run_cli
from edgekit.datasets import load_split
from edgekit.errors import BadInputError
from edgekit.evaluate import evaluate
from edgekit.meta import read_meta
from edgekit.train import RECIPES, TrainConfig
from edgekit.train.classifier import evaluate_checkpoint, load_checkpoint

TARGET = {"classes": "5-9", "per_class": 10}


def _train(out, **changes):
    config = dict(data="digits", output_dir=out, progress=False)
    config.update(changes)
    return RECIPES.get("lenet5")(TrainConfig(**config))


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("backbone"), epochs=6, options={"classes": "0-4"})


@pytest.mark.parametrize("mode", ["features", "finetune"])
def test_new_head_learns_new_classes_from_ten_examples_each(backbone, tmp_path, mode):
    result = _train(tmp_path, transfer_from=backbone.checkpoint, mode=mode, epochs=15, options=dict(TARGET))
    assert result.metrics["test_top1"] > 60  # chance: 20 %
    assert result.onnx.name == f"lenet5-{mode}.onnx"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"lenet5-{mode}.onnx", f"lenet5-{mode}.pt"]
    meta = read_meta(result.onnx)
    assert meta.labels == ("5", "6", "7", "8", "9") and meta.recipe["mode"] == mode
    assert meta.mean == read_meta(backbone.onnx).mean  # the backbone's preprocessing is kept
    assert meta.extra["source"]["dataset_options"] == {"classes": [5, 6, 7, 8, 9]}
    assert meta.extra["source"]["recipe"] == "transfer" and meta.recipe["transfer_from"] == str(backbone.checkpoint)
    test = load_split("digits", "test", 0, classes="5-9")
    record = evaluate(result.onnx, test, "ort-cpu")
    assert record.metrics["top1"] == pytest.approx(result.metrics["test_top1"])
    assert evaluate_checkpoint(result.checkpoint, meta, test)["top1"] == record.metrics["top1"]


@pytest.mark.slow
def test_features_mode_freezes_the_backbone_and_finetune_trains_the_last_layers(backbone, tmp_path):
    import torch

    base = load_checkpoint(backbone.checkpoint)[0]["state_dict"]
    frozen = _train(tmp_path / "f", transfer_from=backbone.checkpoint, mode="features", epochs=3, options=dict(TARGET))
    tuned = _train(tmp_path / "t", transfer_from=backbone.checkpoint, mode="finetune", epochs=3, options=dict(TARGET))
    frozen_state = load_checkpoint(frozen.checkpoint)[0]["state_dict"]
    tuned_state = load_checkpoint(tuned.checkpoint)[0]["state_dict"]
    for key in ("0.weight", "3.weight"):
        assert torch.equal(frozen_state[key], base[key])
    assert torch.equal(tuned_state["0.weight"], base["0.weight"])  # conv1 stays frozen
    assert not torch.equal(tuned_state["3.weight"], base["3.weight"])  # conv2 is fine-tuned
    assert tuned_state["7.weight"].shape == (5, 400)  # the whole fc classifier became one new head


@pytest.mark.slow
def test_zoo_backbone_with_user_weights(tmp_path):
    """Mechanics only: a random-weight ResNet-18 stands in for the user's trained weights (a random
    MobileNetV3's features do not depend on the image: its export would compare nothing)."""
    import torch
    from PIL import Image

    from edgekit.zoo.build import build_model

    rng = np.random.default_rng(0)
    for name, channel in (("blue", 2), ("red", 0)):
        (tmp_path / "data" / name).mkdir(parents=True)
        for index in range(8):
            pixels = rng.integers(0, 60, (24, 30, 3), dtype=np.uint8)
            pixels[..., channel] += 180
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{index}.png")
    torch.save(build_model("resnet18").state_dict(), tmp_path / "w.pt")
    result = _train(tmp_path / "out", data=str(tmp_path / "data"), transfer_from="resnet18", mode="finetune",
                    epochs=2, options={"weights": str(tmp_path / "w.pt"), "input_size": "48", "augment_copies": 1})
    meta = read_meta(result.onnx)
    assert meta.labels == ("blue", "red") and meta.color == "RGB" and meta.input_size == (48, 48)
    test = load_split(str(tmp_path / "data"), "test", 0)
    assert evaluate_checkpoint(result.checkpoint, meta, test)["top1"] == evaluate(result.onnx, test).metrics["top1"]


@pytest.mark.parametrize("source, options, fragment", [
    ("missing.pt", {}, "checkpoint not found"),
    ("mobilenet_v3_small", {}, "needs --weights"),
    ("mobilenet_v3_smal", {"weights": "w.pt"}, "did you mean"),
])
def test_bad_backbones_are_refused(tmp_path, source, options, fragment):
    with pytest.raises(BadInputError, match=fragment):
        _train(tmp_path / "out", transfer_from=source, mode="features", options={**TARGET, **options})
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_transfer_and_a_foreign_checkpoint(backbone, tmp_path):
    result = run_cli("train", "lenet5", "--data", "digits", "--classes", "5-9", "--per-class", "5", "--epochs", "5",
                     "--transfer-from", str(backbone.checkpoint), "--mode", "features",
                     "--out", str(tmp_path / "o"), "-q")
    assert result.returncode == 0, result.stderr
    assert "lenet5-features" in result.stdout and (tmp_path / "o" / "lenet5-features.onnx").is_file()
    result = run_cli("train", "transfer", "--data", "digits", "--out", str(tmp_path / "o3"), "-q")
    assert result.returncode == 2 and "needs --transfer-from" in result.stderr and not (tmp_path / "o3").exists()
    (tmp_path / "foreign.pt").write_bytes(b"definitely not a checkpoint")
    result = run_cli("train", "lenet5", "--data", "digits", "--transfer-from", str(tmp_path / "foreign.pt"),
                     "--out", str(tmp_path / "o2"), "-q")
    assert result.returncode == 2 and result.stderr.startswith("error: cannot read checkpoint")
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "o2").exists()


def test_features_head_is_the_converged_regularised_logistic_regression():
    import torch
    from sklearn.linear_model import LogisticRegression

    from edgekit.train.transfer import fit_logistic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 12)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(np.int64) + (x[:, 1] > 1)
    head = torch.nn.Linear(12, 3)
    fit_logistic(head, torch.from_numpy(x), torch.from_numpy(y), penalty=1 / 60)  # = scikit-learn's C=1
    reference = LogisticRegression(C=1.0, tol=1e-8, max_iter=5000).fit(x, y)
    with torch.no_grad():
        probabilities = head(torch.from_numpy(x)).softmax(1).numpy()
    assert np.abs(probabilities - reference.predict_proba(x)).max() < 1e-3


def test_finetune_trains_the_backbone_slower_than_the_head():
    from edgekit.train.loop import make_optimizer, make_schedule
    from edgekit.train.classifier import cut_classifier
    from edgekit.train.transfer import finetune_groups, unfreeze_last
    from edgekit.zoo.lenet import lenet5

    model, head_name, _ = cut_classifier(lenet5(num_classes=5), 5)
    groups = finetune_groups(model.get_submodule(head_name), unfreeze_last(model, 2), 0.01, 0.1)
    assert [len(g["params"]) for g in groups] == [2, 2]  # head (weight, bias), conv2 (weight, bias)
    optimizer = make_optimizer("adam", groups, 0.01)
    schedule = make_schedule("onecycle", optimizer, 0.01, epochs=5, steps_per_epoch=4)
    for _ in range(12):  # past the warm-up peak: one-cycle keeps each group's own peak
        optimizer.step()
        schedule.step()
        head_lr, backbone_lr = (g["lr"] for g in optimizer.param_groups)
        assert backbone_lr == pytest.approx(0.1 * head_lr)
    assert max(group["max_lr"] for group in optimizer.param_groups) == pytest.approx(0.01)
    with pytest.raises(BadInputError, match="backbone_lr_scale must be positive"):
        finetune_groups(model.get_submodule(head_name), list(model.parameters()), 0.01, 0.0)
