"""LeNet-5 training: short runs learn, are reproducible by seed, and export a self-describing ONNX."""

import json

import pytest

from conftest import run_cli
from edgekit.datasets import load_split
from edgekit.errors import BadInputError
from edgekit.evaluate import evaluate
from edgekit.meta import read_meta
from edgekit.train import RECIPES, TrainConfig
from edgekit.train.classifier import evaluate_checkpoint, load_checkpoint


def _train(tmp_path, name="run", **changes):
    config = dict(data="digits", output_dir=tmp_path / name, epochs=4, progress=False)
    config.update(changes)
    return RECIPES.get("lenet5")(TrainConfig(**config))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("lenet"))


def test_short_training_learns_and_exports_a_described_model(trained):
    assert trained.metrics["test_top1"] > 80  # chance: 10 %
    assert trained.metrics["test_count"] == 270 and trained.epochs_run == 4
    assert sorted(p.name for p in trained.onnx.parent.iterdir()) == ["lenet5.onnx", "lenet5.pt"]
    meta = read_meta(trained.onnx)
    assert (meta.task, meta.color, meta.input_size, meta.resize) == ("classification", "GRAY", (32, 32), "stretch")
    assert meta.labels == tuple("0123456789")
    assert 0.05 < meta.mean[0] < 0.3 and 0.1 < meta.std[0] < 0.5  # the digits' own statistics
    source = meta.extra["source"]
    assert source["recipe"] == "lenet5" and source["checkpoint"] == str(trained.checkpoint.resolve())
    assert source["dataset"] == "digits" and source["seed"] == 0
    assert meta.recipe["epochs_run"] == 4 and meta.recipe["optimizer"] == "adam"
    _, saved_meta = load_checkpoint(trained.checkpoint)
    assert saved_meta.mean == meta.mean and saved_meta.labels == meta.labels


def test_the_onnx_model_scores_what_torch_scored(trained):
    test = load_split("digits", "test", 0)
    record = evaluate(trained.onnx, test, "ort-cpu", batch_size=50)
    assert record.metrics["top1"] == pytest.approx(trained.metrics["test_top1"])
    torch_metrics = evaluate_checkpoint(trained.checkpoint, read_meta(trained.onnx), test)
    assert torch_metrics["top1"] == record.metrics["top1"] and torch_metrics["top5"] == record.metrics["top5"]


def test_same_seed_same_model_other_seed_other_model(tmp_path):
    import torch

    runs = [_train(tmp_path, f"r{i}", epochs=2, seed=seed, options={"per_class": 30})
            for i, seed in enumerate((5, 5, 6))]
    states = [load_checkpoint(r.checkpoint)[0]["state_dict"] for r in runs]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert runs[0].history == runs[1].history
    assert not torch.equal(states[0]["0.weight"], states[2]["0.weight"])


def test_sgd_with_early_stopping_learns(tmp_path):
    result = _train(tmp_path, optimizer="sgd", epochs=6, options={"patience": 2, "augment": False})
    assert result.metrics["test_top1"] > 70
    best = max(h["val_top1"] for h in result.history)
    assert result.metrics["val_top1"] == best  # the best epoch's weights were kept


def test_early_stopping_stops_and_restores_the_best_weights():
    import torch

    from edgekit.train.loop import EarlyStopping

    model = torch.nn.Linear(1, 1)
    stopper = EarlyStopping(patience=2)
    assert not stopper.update(1, 50.0, model)
    best = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.fill_(7.0)
    assert not stopper.update(2, 40.0, model)
    assert stopper.update(3, 45.0, model)
    stopper.restore(model)
    assert torch.equal(model.weight, best) and stopper.best_epoch == 1 and stopper.best_metric == 50.0


@pytest.mark.parametrize("changes, fragment", [
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of"),
    ({"mode": "features"}, "--mode needs --transfer-from"),
    ({"options": {"dropout": 0.5}}, "unknown option dropout"),
    ({"options": {"per_class": 0}}, "option per_class must be an integer ≥ 1"),
    ({"data": "shapes-nope"}, "unknown dataset"),
])
def test_bad_settings_are_refused_without_leaving_a_folder(tmp_path, changes, fragment):
    with pytest.raises(BadInputError, match=fragment):
        _train(tmp_path, **changes)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_cli_trains_and_writes_json(tmp_path):
    result = run_cli("train", "lenet5", "--data", "digits", "--epochs", "3", "--out", str(tmp_path / "out"),
                     "--json", str(tmp_path / "r.json"), "--quiet", "--per-class", "40")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["metrics"]["test_top1"] > 50 and record["epochs_run"] == 3
    assert "trained lenet5" in result.stdout and (tmp_path / "out" / "lenet5.onnx").is_file()


@pytest.mark.parametrize("args, fragment", [
    (["lenet", "--data", "digits"], "did you mean 'lenet5'"),
    (["lenet5", "--data", "missing_dir/"], "dataset not found"),
    (["lenet5", "--data", "digits", "--optimizer", "lbfgs"], "optimizer must be one of"),
    (["lenet5", "--data", "digits", "--mode", "finetune"], "--mode needs --transfer-from"),
    (["lenet5", "--data", "digits", "-O", "nope"], "KEY=VALUE"),
])
def test_cli_errors_are_one_line_exit_2_and_leave_nothing(tmp_path, args, fragment):
    out = tmp_path / "out"
    result = run_cli("train", *args, "--out", str(out), "--json", str(tmp_path / "r.json"), "--quiet")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []
