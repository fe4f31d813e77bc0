"""`edgekit eval`: the same figures on every runtime, the torch figure beside them, clear errors."""

import json
import shutil

import pytest
from conftest import assert_one_line_error, block_imports, run_cli

from edgekit.errors import BadInputError, RuntimeUnavailableError
from edgekit.evaluate.across_runtimes import compare_runtimes, resolve_runtimes
from edgekit.runtimes import RUNTIMES
from edgekit.train import RECIPES, TrainConfig


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    return RECIPES.get("lenet5")(TrainConfig(data="digits", output_dir=out, epochs=3, progress=False))


@pytest.mark.slow
def test_eval_uses_the_recorded_dataset_and_shows_torch_beside_the_runtime(trained, tmp_path):
    result = run_cli("eval", str(trained.onnx), "--runtime", "ort-cpu", "--json", str(tmp_path / "e.json"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "e.json").read_text())
    assert (report["dataset"], report["split"], report["seed"]) == ("digits", "test", 0)
    (record,) = report["records"]
    assert record["runtime"] == "ort-cpu" and record["count"] == 270
    assert record["metrics"]["top1"] == pytest.approx(trained.metrics["test_top1"])
    assert report["reference"]["top1"] == record["metrics"]["top1"] == record["reference"]["top1"]
    assert "torch (checkpoint)" in result.stdout and "seed 0" in result.stdout


@pytest.mark.slow
def test_eval_runs_without_torch(trained, tmp_path):
    result = run_cli("eval", str(trained.onnx), "--json", str(tmp_path / "e.json"),
                     prelude=block_imports("torch", "torchvision", "onnx"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["reference"] is None and report["reference_note"] == "torch is not installed"
    assert report["records"][0]["metrics"]["top1"] == pytest.approx(trained.metrics["test_top1"])


@pytest.mark.slow
def test_explicit_torch_that_cannot_be_honoured_is_an_error(trained, zoo_onnx, tmp_path):
    path = _with_weights_file(tmp_path)
    result = run_cli("eval", str(path), "-d", "digits", "--torch", "--json", str(tmp_path / "e.json"))
    assert_one_line_error(result, "--torch: no torch reference", "give it with --weights")
    assert not (tmp_path / "e.json").exists()
    path = zoo_onnx("lenet5", dynamic_batch=True).path
    blocked = run_cli("eval", str(trained.onnx), "--torch", prelude=block_imports("torch", "torchvision", "onnx"))
    assert_one_line_error(blocked, "torch is not installed")
    # the default shows it when it can, and says why not otherwise; --no-torch skips it
    assert run_cli("eval", str(path), "-d", "digits").returncode == 0
    assert compare_runtimes(trained.onnx, "ort-cpu", reference=False).reference_note == "not asked for"


def test_all_runtimes_give_the_same_figures(trained):
    comparison = compare_runtimes(trained.onnx, "all", data="digits", split="val", batch_size=64)
    names = [r.runtime for r in comparison.records]
    assert names[0] == "ort-cpu" and set(names) | set(comparison.skipped) == set(RUNTIMES.names())
    for record in comparison.records:
        assert record.count == 270 and record.split == "val"
        assert abs(record.metrics["top1"] - comparison.reference["top1"]) <= 100 / 270 + 1e-9  # one image at most


@pytest.mark.openvino
def test_openvino_matches_onnx_runtime(trained):
    if "openvino" not in RUNTIMES:
        pytest.skip("the openvino runtime is not registered in this checkout")
    comparison = compare_runtimes(trained.onnx, "ort-cpu,openvino")
    ort, ov = comparison.records
    assert ov.runtime == "openvino" and abs(ov.metrics["top1"] - ort.metrics["top1"]) <= 100 / 270 + 1e-9


def test_without_its_checkpoint_the_model_is_still_evaluated(trained, tmp_path):
    copy = tmp_path / "m.onnx"
    shutil.copy(trained.onnx, copy)
    moved = trained.checkpoint.with_suffix(".moved")
    trained.checkpoint.rename(moved)
    try:
        comparison = compare_runtimes(copy, "ort-cpu")
    finally:
        moved.rename(trained.checkpoint)
    assert comparison.reference is None and "is not here" in comparison.reference_note
    assert comparison.records[0].metrics["top1"] == pytest.approx(trained.metrics["test_top1"])


def _with_weights_file(folder):
    """lenet5 exported from a state_dict file (here: a seed-7 model's), which the export records by digest."""
    import torch

    from edgekit.exporters import ExportConfig
    from edgekit.exporters.torch_onnx import export_zoo_model
    from edgekit.zoo.build import build_model

    weights = folder / "lenet5-seed7.pt"
    torch.save(build_model("lenet5", seed=7).state_dict(), weights)
    return export_zoo_model("lenet5", folder / "lenet5-w.onnx", ExportConfig(dynamic_batch=True), weights=weights).path


def test_a_zoo_export_needs_data_and_its_torch_figure_is_the_rebuilt_module(zoo_onnx, tmp_path):
    path = zoo_onnx("lenet5", dynamic_batch=True).path
    with pytest.raises(BadInputError, match="give one with --data"):
        compare_runtimes(path, "ort-cpu")
    comparison = compare_runtimes(path, "ort-cpu", data="digits")
    assert comparison.reference_note == "torch, zoo lenet5 (random weights, seed 0)"
    assert comparison.reference_kind == "zoo module"
    assert abs(comparison.records[0].metrics["top1"] - comparison.reference["top1"]) <= 100 / 270 + 1e-9
    # exported from a weights file: the figure needs that file, and only that file
    with_file = _with_weights_file(tmp_path)
    assert "give it with --weights" in compare_runtimes(with_file, "ort-cpu", data="digits").reference_note
    weights = tmp_path / "lenet5-seed7.pt"
    rebuilt = compare_runtimes(with_file, "ort-cpu", data="digits", weights=weights)
    assert rebuilt.reference_note == f"torch, zoo lenet5 (weights {weights})"
    assert abs(rebuilt.records[0].metrics["top1"] - rebuilt.reference["top1"]) <= 100 / 270 + 1e-9
    other = tmp_path / "other.pt"
    other.write_bytes(weights.read_bytes() + b"\0")
    assert "are not the weights" in compare_runtimes(with_file, "ort-cpu", data="digits", weights=other).reference_note
    with pytest.raises(BadInputError, match="weights file not found"):
        compare_runtimes(with_file, "ort-cpu", data="digits", weights=tmp_path / "missing.pt")
    with pytest.raises(BadInputError, match="was not exported from the zoo"):
        compare_runtimes(_not_from_the_zoo(tmp_path), "ort-cpu", data="digits", weights=weights)


def _not_from_the_zoo(folder):
    import torch

    from edgekit.exporters.torch_onnx import export_module
    from edgekit.meta import ModelMeta

    meta = ModelMeta(task="classification", input_size=(32, 32), color="GRAY", mean=(0.5,), std=(0.5,),
                     labels=tuple("0123456789"))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 10))
    return export_module(net, meta, folder / "own.onnx").path


def _fused(path, folder):
    from edgekit.exporters.config import FuseConfig
    from edgekit.exporters.fuse import fuse_model

    return fuse_model(path, folder / "fused.onnx", FuseConfig(frame=(32, 32))).path


@pytest.mark.parametrize("seed", [0, 3])
def test_the_rebuilt_zoo_module_is_the_exported_one(seed, tmp_path):
    """The rebuilt module gives the file's own outputs (at the export's seed, not only its figures), and a
    fused file (frames in) says why it has no torch figure instead of failing."""
    import numpy as np

    from edgekit.evaluate.torch_source import ZooRebuild, zoo_rebuild
    from edgekit.exporters import ExportConfig
    from edgekit.exporters.torch_onnx import export_zoo_model
    from edgekit.meta import read_meta
    from edgekit.runtimes import open_runtime
    from edgekit.torch_runner import module_outputs

    path = export_zoo_model("lenet5", tmp_path / "l.onnx", ExportConfig(seed=seed)).path
    rebuild = zoo_rebuild(read_meta(path).extra["source"])
    assert rebuild == ZooRebuild("lenet5", seed=seed)
    x = {"input": np.random.default_rng(1).standard_normal((1, 1, 32, 32)).astype(np.float32)}
    with open_runtime("ort-cpu", path) as runtime:
        np.testing.assert_allclose(module_outputs(rebuild.build(), x, ["output"])["output"], runtime.run(x)["output"],
                                   rtol=1e-4, atol=1e-5)
    assert zoo_rebuild({"zoo": "lenet5", "weights": f"random(seed={seed})"}) == rebuild   # files from before "seed"
    fused = compare_runtimes(_fused(path, tmp_path), "ort-cpu", data="digits")
    assert fused.reference is None and "fused pre-processing" in fused.reference_note


def test_runtime_lists_are_checked():
    with pytest.raises(BadInputError, match="did you mean 'ort-cpu'"):
        resolve_runtimes("ort-cpux")
    assert resolve_runtimes("ort,ort-cpu")[0] == ["ort-cpu"]
    # 'all' leaves out the runtimes that cannot read the file, and says why.
    names, skipped = resolve_runtimes("all", ".xml")
    assert "ort-cpu" not in names and skipped["ort-cpu"] == "cannot load .xml files"
    assert "openvino" in names
    with pytest.raises(RuntimeUnavailableError):
        _unavailable_runtime_request()


def _unavailable_runtime_request():
    from edgekit.runtimes.base import Availability
    from edgekit.runtimes.onnxruntime import OrtCpuRuntime

    class Missing(OrtCpuRuntime):
        name = "missing-rt"

        @classmethod
        def probe(cls):
            return Availability("missing-rt", False, reason="not installed", install="pip install nothing")

    RUNTIMES.add("missing-rt", Missing)
    try:
        assert "missing-rt" in resolve_runtimes("all")[1]
        resolve_runtimes("ort-cpu,missing-rt")
    finally:
        RUNTIMES._targets.pop("missing-rt")


@pytest.mark.parametrize("args, fragment", [
    (["missing.onnx"], "model file not found"),
    (["{model}", "--runtime", "openvinoo"], "unknown runtime"),
    (["{model}", "--split", "dev"], "split must be one of train, val, test, all"),
    (["{model}", "--split", "all"], "split 'all' is for your own folder or COCO file; digits has"),
    (["{model}", "--data", "nowhere/"], "dataset not found"),
    (["{model}", "--data", "{folder}"], "model has 10 labels (0, 1, 2, 3, …), data set"),
    (["{model}", "--batch-size", "0"], "--batch-size must be a number at least 1"),
])
def test_cli_errors_are_one_line_and_write_no_json(trained, tmp_path, args, fragment):
    folder = tmp_path / "folder"
    for name in ("cat", "dog"):
        (folder / name).mkdir(parents=True)
        shutil.copy(_png(tmp_path), folder / name / "a.png")
    args = [a.format(model=trained.onnx, folder=folder) for a in args]
    result = run_cli("eval", *args, "--json", str(tmp_path / "e.json"))
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "e.json").exists()


def _png(tmp_path):
    import numpy as np
    from PIL import Image

    path = tmp_path / "src.png"
    if not path.exists():
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return path
