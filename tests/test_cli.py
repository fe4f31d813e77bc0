"""The CLI as a user meets it, in subprocesses: output, JSON, and one-line errors with exit 2."""

import json

import pytest

from conftest import assert_one_line_error, block_imports, run_cli


def test_models_lists_the_zoo_and_the_reference_models_with_their_tasks(tmp_path):
    result = run_cli("models", "--json", str(tmp_path / "m.json"))
    assert result.returncode == 0, result.stderr
    listed = json.loads((tmp_path / "m.json").read_text())
    zoo = {row["name"]: row for row in listed if row["kind"] == "zoo"}
    assert len(zoo) == 16 and zoo["resnet18"]["parameters"] == 11_689_512
    assert zoo["lenet5"]["input_size"] == [32, 32]
    assert "resnext50_32x4d" in result.stdout and "11.69 M" in result.stdout
    reference = {row["name"]: row for row in listed if row["kind"] == "reference"}
    assert reference["segmenter"]["task"] == "segmentation" and reference["segmenter"]["metric"] == "mIoU"
    assert reference["embedder"]["task"] == "embedding"
    assert reference["embedder"]["data"] == "glyph-identities, digits-identities"
    for line in ("segmenter │ segmentation", "embedder  │ embedding", "detector  │ detection"):
        assert line in result.stdout
    assert "AUC, unseen ids" in result.stdout  # 80 columns (piped): the metric is not squeezed out


def test_models_builds_nothing_and_its_counts_are_the_built_models():
    """`edgekit models` lists data (it took 8 s building every model); the data is checked here."""
    import subprocess
    import sys

    code = block_imports("torch", "torchvision") + "\nfrom edgekit.cli.app import main\nmain()"
    result = subprocess.run([sys.executable, "-c", code, "models"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "11.69 M" in result.stdout and "147.23 k" in result.stdout, result.stderr
    import importlib

    from edgekit.train import RECIPES
    from edgekit.train.catalog import reference_models
    from edgekit.zoo.build import count_parameters
    from edgekit.zoo.catalog import entries

    assert {e.name: e.parameters for e in entries()} == {e.name: count_parameters(e) for e in entries()}
    assert [m.recipe for m in reference_models()] == RECIPES.names()
    for model in reference_models():
        if model.builder:
            module, function = model.builder.split(":")
            built = getattr(importlib.import_module(module), function)(**model.kwargs)
            assert model.parameters == sum(p.numel() for p in built.parameters()), model.recipe


def test_runtimes_lists_registered_runtimes(tmp_path):
    result = run_cli("runtimes", "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads((tmp_path / "r.json").read_text())}
    assert rows["ort-cpu"]["available"] and rows["ort-cpu"]["version"]


def test_runtimes_shows_a_missing_runtime_with_its_extra(tmp_path):
    result = run_cli("runtimes", "--json", str(tmp_path / "r.json"), prelude=block_imports("onnxruntime"))
    assert result.returncode == 0, result.stderr
    row = {r["name"]: r for r in json.loads((tmp_path / "r.json").read_text())}["ort-cpu"]
    assert not row["available"] and row["install"] == "pip install 'edgekit[ort]'"
    assert "edgekit[ort]" in " ".join(result.stdout.split())  # not eaten as rich markup


def test_export_inspect_bench_round_trip(tmp_path):
    onnx_path = tmp_path / "sq.onnx"
    result = run_cli("export", "squeezenet1_1", "-o", str(onnx_path), "--input-size", "64", "--dynamic-batch")
    assert result.returncode == 0, result.stderr
    assert "verified on ONNX Runtime vs torch" in result.stdout and onnx_path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["sq.onnx"]

    result = run_cli("inspect", str(onnx_path), "--json", str(tmp_path / "i.json"))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "i.json").read_text())
    assert summary["inputs"][0]["shape"] == ["batch", 3, 64, 64] and summary["meta"]["model_name"] == "squeezenet1_1"

    result = run_cli("bench", str(onnx_path), "--batch", "2", "--runs", "5", "--warmup", "1", "--threads", "1",
                     "--json", str(tmp_path / "b.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "b.json").read_text())
    assert record["latency"]["count"] == 5 and record["batch"] == 2 and record["runtime"] == "ort-cpu"
    assert "p50" in result.stdout


@pytest.mark.slow
def test_bench_exports_a_zoo_name_to_the_cache(tmp_path):
    env = {"EDGEKIT_CACHE_DIR": str(tmp_path / "cache")}
    result = run_cli("bench", "lenet5", "--runs", "3", "--warmup", "0", "--json", str(tmp_path / "b.json"), env=env)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "cache" / "models").glob("lenet5-*.onnx"))) == 1
    assert json.loads((tmp_path / "b.json").read_text())["model"] == "lenet5"


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["bench", "missing.onnx"], ["not found", "missing.onnx"]),
        (["inspect", "missing.onnx"], ["not found"]),
        (["bench", "resnet81"], ["unknown model", "did you mean 'resnet18'"]),
        (["export", "resnet81"], ["unknown model", "did you mean 'resnet18'"]),
        (["bench", "lenet5", "--runtime", "tensort"], ["unknown runtime 'tensort'"]),
        (["bench", "lenet5", "--runtime", "ort-cpu", "--option", "bogus=1"], ["has no option bogus"]),
        (["bench", "lenet5", "--option", "threads=abc"], ["option threads must be int or none, got 'abc'"]),
        (["bench", "lenet5", "--runtime", "openvino", "--option", "hint=5"], ["option hint must be str, got 5"]),
        (["bench", "lenet5", "--device", "cuda"], ["runs on the CPU only", "ort-cuda"]),
        (["export", "alexnet", "--input-size", "64"], ["cannot export alexnet at 64x64"]),
        (["export", "lenet5", "--input-size", "48"], ["does not fit lenet5"]),
        (["export", "resnet18", "--input-size", "abc"], ["input size must look like"]),
        (["export", "resnet18", "--opset", "2"], ["opset must be between"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, fragments):
    args = [a if a != "-o" else a for a in args]
    result = run_cli(*args, "-o" if args[0] == "export" else "--json", str(tmp_path / "out.onnx"), cwd=tmp_path)
    assert_one_line_error(result, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_file_that_is_not_onnx(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is not a model\n" * 20)
    assert_one_line_error(run_cli("inspect", str(bad)), "not an ONNX model")
    assert_one_line_error(run_cli("bench", str(bad)), "not an ONNX model")


def test_missing_runtime_is_one_line_naming_the_extra(tmp_path):
    result = run_cli("bench", "lenet5", prelude=block_imports("onnxruntime"))
    assert_one_line_error(result, "runtime 'ort-cpu' is not available", "pip install 'edgekit[ort]'")


@pytest.mark.slow
def test_export_check_failure_exits_1_and_leaves_nothing(tmp_path):
    result = run_cli("export", "resnet18", "--input-size", "64", "--atol", "0", "--rtol", "0",
                     "-o", str(tmp_path / "r.onnx"))
    assert result.returncode == 1 and "does not match torch" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_debug_shows_the_traceback(tmp_path):
    result = run_cli("inspect", str(tmp_path / "missing.onnx"), env={"EDGEKIT_DEBUG": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_zoo_only_options_are_refused_for_a_file(zoo_onnx):
    result = run_cli("bench", str(zoo_onnx("lenet5").path), "--input-size", "64")
    assert_one_line_error(result, "apply to zoo models")


@pytest.mark.parametrize("command", [["bench", "lenet5", "--runs", "2"], ["runtimes"], ["models"]])
def test_unwritable_json_path_fails_before_the_work(tmp_path, command):
    result = run_cli(*command, "--json", str(tmp_path / "no" / "such" / "dir.json"))
    assert_one_line_error(result, "output directory", "does not exist")
    assert "p50" not in result.stdout and not result.stdout.strip()


@pytest.mark.slow
def test_inspect_takes_a_zoo_name_and_refuses_other_formats(tmp_path):
    result = run_cli("inspect", "lenet5", env={"EDGEKIT_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0 and "61.71 k" in result.stdout, result.stderr
    ir = tmp_path / "m.xml"
    ir.write_text("<net/>")
    assert_one_line_error(run_cli("inspect", str(ir)), "inspect reads .onnx files")


@pytest.mark.parametrize("args,fragment", [
    (["bench", "README.md"], "model file not found: README.md"),
    (["export", "lenet5", "--atol", "-1"], "--atol must be a number at least 0"),
    (["compare", "lenet5", "--runtimes", "ort-cpu", "--min-cosine", "2"],
     "--min-cosine must be a number at least -1 and at most 1"),
])
def test_more_bad_input(tmp_path, args, fragment):
    assert_one_line_error(run_cli(*args, cwd=tmp_path), fragment)
    assert list(tmp_path.iterdir()) == []
