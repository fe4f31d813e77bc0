"""A user's torch module, named by its factory, goes through `edgekit eval` (its own module is the
torch figure) and through a matrix suite (a model mapping with weights, inputs and meta); bad
entries are one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, run_cli

HERE = Path(__file__).resolve()
FACTORY = f"{HERE}:digits_net"
INPUT = "input:?x1x16x16"
LABELS = tuple(str(d) for d in range(10))
META = ["--meta", "task=classification", "--meta", f"labels={','.join(LABELS)}"]


def digits_net():
    """The user's model: a small conv net for 16x16 grey digits."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 4 * 4, 10))


def pooled_net():
    """Any input size: a convolution and a global pool."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """digits_net trained for a few epochs on the digits train split, saved as a state_dict."""
    import torch

    from edgekit.datasets import load_split
    from edgekit.meta import ModelMeta
    from edgekit.tasks.classification import ClassificationTask

    meta = ModelMeta(task="classification", input_size=(16, 16), color="GRAY", mean=(0.5,), std=(0.5,), labels=LABELS)
    train = load_split("digits", "train", 0)
    feeds, _ = ClassificationTask().preprocess(list(train.images), meta)
    images, targets = torch.from_numpy(feeds["input"]), torch.from_numpy(train.targets)
    torch.manual_seed(0)
    model = digits_net()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(15):
        for batch in torch.randperm(len(targets)).split(128):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(images[batch]), targets[batch]).backward()
            optimizer.step()
    path = tmp_path_factory.mktemp("digits-net") / "digits_net.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.slow
@pytest.mark.openvino
def test_eval_takes_a_factory_with_weights_and_meta(weights, tmp_path):
    from edgekit.evaluate.across_runtimes import compare_runtimes
    from edgekit.exporters.config import ExportConfig
    from edgekit.exporters.metadata import parse_pairs
    from edgekit.exporters.user_module import export_source
    from edgekit.inputs.specs import parse_input_specs

    report_path = tmp_path / "e.json"
    result = run_cli("eval", FACTORY, "--weights", str(weights), "--input", INPUT, *META, "-d", "digits",
                     "-r", "ort-cpu,openvino", "--json", str(report_path))
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    ort, ov = report["records"]
    assert report["dataset"] == "digits" and ort["count"] == 270 and ort["model"] == "digits_net"
    assert ort["metrics"]["top1"] > 80                                   # trained weights were loaded
    assert abs(ov["metrics"]["top1"] - ort["metrics"]["top1"]) <= 100 / 270 + 1e-9
    assert abs(report["reference"]["top1"] - ort["metrics"]["top1"]) <= 100 / 270 + 1e-9   # the module itself
    assert report["reference_note"] == f"torch, {FACTORY}" and "torch (module)" in result.stdout

    # the same model exported by hand and evaluated as a file gives the same top-1
    onnx = tmp_path / "digits_net.onnx"
    changes = parse_pairs(["task=classification", f"labels={','.join(LABELS)}"])
    export_source(FACTORY, onnx, ExportConfig(), weights=weights, inputs=parse_input_specs([INPUT]),
                  meta_changes=changes)
    as_file = compare_runtimes(onnx, "ort-cpu", data="digits")
    assert as_file.records[0].metrics["top1"] == ort["metrics"]["top1"] and as_file.reference is None


def test_suite_runs_a_torch_source_with_weights_and_meta(weights, tmp_path):
    from edgekit.datasets import load_split
    from edgekit.evaluate.runner import evaluate
    from edgekit.matrix import Evaluation, Timing
    from edgekit.matrix.runner import run_matrix
    from edgekit.matrix.suite import load_suite
    from edgekit.store import open_store

    (tmp_path / "w.pt").write_bytes(weights.read_bytes())
    suite = tmp_path / "byo.yaml"
    suite.write_text(f"""\
name: byo
models:
  - model: {FACTORY}
    weights: w.pt
    inputs: ["{INPUT}"]
    meta: {{task: classification, labels: [{', '.join(LABELS)}]}}
runtimes: [ort-cpu]
evaluation: {{samples: 64, calib_samples: 8, agreement_samples: 8}}
timing: {{warmup: 1, runs: 5, duration: 0.05, rounds: 1}}
""")
    spec = load_suite(suite)
    (entry,) = spec.models
    assert entry.weights == str(tmp_path / "w.pt")
    assert spec.evaluation == Evaluation(samples=64, calib_samples=8, agreement_samples=8)
    assert spec.timing == Timing(1, 5, 0.05, None, 1) and spec.cells()[0].model == entry.name
    with open_store(f"sqlite:///{tmp_path / 'h.db'}") as store:
        run = run_matrix(spec, store, progress=False, isolate=False)
        (row,) = store.records(run_ids=[run.run_id])
    (record,) = run.records
    assert record.status == "ok", record.reason
    assert record.model_name == "digits_net" and record.metric == "top1" and row["model"] == entry.name
    exported = Path(record.config["source"])
    expected = evaluate(exported, load_split("digits", "test", 0).take(64), "ort-cpu")
    assert record.accuracy == expected.metrics["top1"] > 70                 # trained weights, on 64 test images

    # `bench FACTORY --weights --input --meta` (a command-line matrix) names the same cells
    from edgekit.cli.matrix import matrix_model

    meta = {"task": "classification", "labels": list(LABELS)}
    assert matrix_model(FACTORY, weights, (INPUT,), meta).name == entry.name
    # other weights make other cells (the old record is not reused); the same suite keeps its key
    again = load_suite(suite)
    assert again.cells()[0].key(spec.timing, spec.evaluation, again.contents()[entry.name]) == record.key
    (tmp_path / "w.pt").write_bytes(weights.read_bytes() + b"\0")
    assert load_suite(suite).models[0].name != entry.name


@pytest.mark.parametrize("entry, line, fragment", [
    ("  - model: {factory}\n    wieghts: w.pt\n", 3, "unknown key 'wieghts' in a model entry"),
    ("  - model: {factory}\n    weights: missing.pt\n", 3, "weights file not found: missing.pt"),
    ("  - model: {factory}\n    meta: [task]\n", 3, "meta must be a mapping"),
    ("  - model: {factory}\n    meta: {{mean: [1, 2, 3]}}\n    inputs: ['input:1x1x8x8']\n", 2, "mean has 3 values"),
    ("  - model: lenet5\n    weights: w.pt\n", 2, "lenet5 is not a torch source"),
    ("  - weights: w.pt\n", 2, "a model entry needs 'model'"),
    ("  - nets.py:missing_file\n", 2, "model factory file not found"),
])
def test_bad_model_entries_name_file_and_line(tmp_path, entry, line, fragment):
    (tmp_path / "w.pt").write_bytes(b"")
    suite = tmp_path / "bad.yaml"
    suite.write_text("models:\n" + entry.format(factory=FACTORY) + "runtimes: [ort-cpu]\n")
    db = tmp_path / "history.db"
    result = run_cli("bench", "--suite", str(suite), "--db", f"sqlite:///{db}")
    assert_one_line_error(result, f"{suite}:{line}:", fragment)
    assert not db.exists()


@pytest.mark.slow
def test_source_options_errors_are_one_line(tmp_path, zoo_onnx):
    path = str(zoo_onnx("lenet5", dynamic_batch=True).path)
    out = tmp_path / "e.json"
    assert_one_line_error(run_cli("eval", path, "-d", "digits", *META, "--json", str(out)),
                          "--meta apply to zoo models and torch sources", "edgekit meta set")
    assert_one_line_error(run_cli("eval", FACTORY, "--meta", "mean=abc", "--json", str(out)), "mean")
    assert_one_line_error(run_cli("eval", FACTORY, "--input", INPUT, "--meta", "std=0", "--json", str(out)), "std")
    assert_one_line_error(run_cli("bench", FACTORY, "lenet5", "--weights", str(tmp_path / "w.pt")),
                          "--weights, --input and --meta in a matrix are for one torch source")
    assert not out.exists()


def test_metadata_changes_key_the_export_cache(tmp_path):
    from edgekit.inputs.specs import parse_input_specs
    from edgekit.meta import read_meta
    from edgekit.sources import resolve_model

    specs = parse_input_specs(["input:1x1x16x16"])
    cats = resolve_model(FACTORY, inputs=specs, meta_changes={"task": "classification", "labels": list("abcdefghij")})
    digits = resolve_model(FACTORY, inputs=specs, meta_changes={"task": "classification", "labels": list(LABELS)})
    assert cats != digits and read_meta(cats).labels == tuple("abcdefghij") and read_meta(digits).labels == LABELS
    same = resolve_model(FACTORY, inputs=specs, meta_changes={"labels": list(LABELS), "task": "classification"})
    assert same == digits   # the same changes in another order reuse the cached export


@pytest.mark.slow
def test_optimize_takes_a_factory_with_weights_and_meta(weights, tmp_path):
    """`edgekit optimize FACTORY --weights --input --meta` searches the trained module's export and
    ships it with the metadata given; a zoo model's --meta goes into its export."""
    from edgekit.meta import read_meta

    report = tmp_path / "o.json"
    result = run_cli("optimize", FACTORY, "--weights", str(weights), "--input", INPUT, *META, "--data", "digits",
                     "--max-drop", "3", "--runtimes", "ort-cpu", "--threads", "2", "--eval-size", "120",
                     "--calib-size", "32", "--duration", "0.2", "--json", str(report),
                     "--db", f"sqlite:///{tmp_path / 'h.db'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shipped = read_meta(tmp_path / "digits_net.optimized.onnx")
    assert shipped.task == "classification" and shipped.labels == LABELS and shipped.model_name == "digits_net"
    deployment = shipped.extra["deployment"]
    assert deployment["runtime"] == "ort-cpu" and deployment["accuracy"]["data"] == "digits"
    assert deployment["accuracy"]["metric"] == "top1" and deployment["accuracy"]["value"] > 80   # the trained weights
    rows = json.loads(report.read_text())["candidates"]
    assert any(row["candidate"] == "ort-cpu fp32 b1" and row["verdict"].startswith("FP32 baseline") for row in rows)
    assert json.loads(report.read_text())["verdict"].startswith("ship ")

    labelled = run_cli("optimize", "lenet5", "--meta", "labels=a,b,c,d,e,f,g,h,i,j", "--max-drop", "100",
                       "--runtimes", "ort-cpu", "--threads", "2", "--eval-size", "16", "--calib-size", "8",
                       "--duration", "0.1", "--time-limit", "1", "--db", f"sqlite:///{tmp_path / 'h.db'}", cwd=tmp_path)
    assert labelled.returncode == 0, labelled.stderr   # a budget of 100 points: the baseline fits at least
    assert read_meta(tmp_path / "lenet5.optimized.onnx").labels == tuple("abcdefghij")


@pytest.mark.slow
def test_optimize_source_errors_are_one_line(tmp_path, zoo_onnx):
    """Bad sources fail before any store or file is made, an export that fails included."""
    path = str(zoo_onnx("lenet5").path)
    for args, fragment in (((path, *META), "--meta apply to zoo models and torch sources"),
                           # 3 channels into a conv of 1: the export fails
                           ((FACTORY, "--input", "input:1x3x16x16", *META), "does not run on inputs"),
                           ((FACTORY, "--input", INPUT, "--input-size", "32"), "--input-size is for zoo models"),
                           (("nets.py:missing",), "model factory file not found")):
        result = run_cli("optimize", *args, "--max-drop", "1", "--db", f"sqlite:///{tmp_path / 'h.db'}", cwd=tmp_path)
        assert_one_line_error(result, fragment)
    assert not list(tmp_path.glob("*.onnx")) and not (tmp_path / "h.db").exists()


@pytest.mark.slow
def test_export_refuses_metadata_it_could_not_read_back(tmp_path):
    """Labels fewer than the classes, an input side above what readers take, or a detection task whose
    decoder finds none of its outputs: one line, no file."""
    out = tmp_path / "net.onnx"
    few = run_cli("export", FACTORY, "--input", INPUT, "--meta", "task=classification", "--meta", "labels=a,b",
                  "-o", str(out))
    assert_one_line_error(few, "'labels' has 2 names but the model outputs 10 classes")
    wide = run_cli("export", f"{HERE}:pooled_net", "--input", "input:1x1x70000x8", "-o", str(out))
    assert_one_line_error(wide, "input_size", "65536")
    detector = run_cli("export", FACTORY, "--input", INPUT, "--meta", "task=detection", "-o", str(out))
    assert_one_line_error(detector, "the centernet decoder reads outputs heatmap, size, offset, which the model lacks")
    assert not list(tmp_path.iterdir())


def test_matrix_options_no_runtime_takes_are_refused(tmp_path, zoo_onnx):
    from edgekit.runtimes import get_runtime

    path = str(zoo_onnx("lenet5").path)
    runtimes = "ort-cpu,openvino" if get_runtime("openvino").probe().available else "ort-cpu"
    result = run_cli("bench", path, "-r", runtimes, "-O", "tf32=true", "--db", f"sqlite:///{tmp_path / 'h.db'}")
    assert_one_line_error(result, "has no option tf32")
    assert not (tmp_path / "h.db").exists()
    if not get_runtime("ort-cuda").probe().available:
        only_gpu = run_cli("optimize", path, "--max-drop", "1", "--runtimes", "ort-cuda",
                           "--db", f"sqlite:///{tmp_path / 'h.db'}", cwd=tmp_path)
        assert_one_line_error(only_gpu, "runtime 'ort-cuda' is not available", "pip install")
