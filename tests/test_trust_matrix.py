"""Numbers about what they name (the matrix, the store, the report and the gate): results keyed by
the model's bytes, accuracy only on data the model fits, a gate that compared something, one basis
for FPS and p50, and every report saying which machine its figures came from."""

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgekit.datasets.fit import misfit_reason
from edgekit.exporters.metadata import update_file
from edgekit.matrix import Evaluation, MatrixSpec, Timing
from edgekit.matrix.runner import run_matrix
from edgekit.meta import ModelMeta
from edgekit.store import open_store

FAST = Timing(warmup=1, min_runs=5, min_duration_s=0.05, rounds=2)
EVAL = Evaluation(samples=16, calib_samples=8, agreement_samples=8)
DIGITS = tuple(str(d) for d in range(10))


def tiny_classifier(path, seed: int, labels=DIGITS, meta=None):
    """A 1×1×8×8 grey image → 10 scores linear classifier, its weights drawn from ``seed``."""
    weights = np.random.default_rng(seed).normal(0, 1, (64, 10)).astype(np.float32)
    nodes = [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["output"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", 1, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("output", 1, ["N", 10])],
                              [numpy_helper.from_array(weights, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    changes = {"task": "classification", "input_size": [8, 8], "color": "GRAY", "mean": [0.5], "std": [0.5],
               **({"labels": ",".join(labels)} if labels else {}), **(meta or {})}
    update_file(path, changes)
    return str(path)


def run(spec, url):
    with open_store(url) as store:
        return run_matrix(spec, store, progress=False, isolate=False)


def test_a_rewritten_file_is_measured_again_not_resumed(tmp_path):
    """Row 1 of the trust issue: a re-export to the same path got the old file's stored figures."""
    model, url = tmp_path / "net.onnx", f"sqlite:///{tmp_path / 'h.db'}"
    spec = MatrixSpec(models=(tiny_classifier(model, seed=1),), timing=FAST, evaluation=EVAL)
    first = run(spec, url)
    again = run(spec, url)
    assert again.resumed and again.measured == 0 and again.run_id == first.run_id   # same bytes: resumed
    tiny_classifier(model, seed=2)                                                   # same path, new bytes
    changed = run(spec, url)
    assert changed.measured == 1 and not changed.resumed and changed.run_id != first.run_id
    assert changed.records[0].model_sha256 != first.records[0].model_sha256


def test_versions_are_part_of_a_cell_key(monkeypatch):
    from edgekit.matrix import cells

    cell = cells.Cell("m.onnx", "ort-cpu")
    before = cell.key(FAST, EVAL, "file:abc")
    assert cell.key(FAST, EVAL, "file:abd") != before
    monkeypatch.setattr(cells, "library_versions", lambda: {"onnxruntime": "99.0"})
    assert cell.key(FAST, EVAL, "file:abc") != before


def test_accuracy_only_on_data_the_model_fits(tmp_path):
    """Row 2: a net whose metadata records neither labels nor a data set was scored on digits."""
    url = f"sqlite:///{tmp_path / 'h.db'}"
    fits = tiny_classifier(tmp_path / "digits.onnx", seed=1)
    anonymous = tiny_classifier(tmp_path / "anon.onnx", seed=1, labels=())
    spec = MatrixSpec(models=(fits, anonymous), timing=FAST, evaluation=EVAL)
    records = {r.cell.model: r for r in run(spec, url).records}
    assert records[fits].accuracy is not None and records[fits].metric == "top1"
    assert records[fits].config["data"] == "digits"
    unfit = records[anonymous]
    assert unfit.status == "ok" and unfit.accuracy is None and unfit.metric == ""
    assert "records no labels" in unfit.config["no_accuracy"] and "`digits`" in unfit.config["no_accuracy"]
    assert unfit.agreement_top1_pct == 100.0     # its agreement with FP32 is still measured (on generated images)
    from edgekit.report.tables import to_markdown

    with open_store(url) as store:
        text = to_markdown(store.records())
    assert "no accuracy: the model records no labels" in text      # the report says why, in the reason column


def test_misfit_reasons_name_both_label_sets():
    coco = ModelMeta(task="detection", labels=tuple(f"c{i}" for i in range(91)))
    reason = misfit_reason(coco, "detection", ("circle", "square", "triangle"), "shapes")
    assert reason.startswith("model has 91 labels") and "data set `shapes` has 3 labels (circle" in reason
    assert misfit_reason(ModelMeta(task="classification"), "detection", (), "shapes").startswith("model task")
    trained = ModelMeta(task="detection", extra={"source": {"dataset": "shapes"}})
    assert misfit_reason(trained, "detection", ("circle", "square", "triangle"), "shapes") == ""
    assert misfit_reason(ModelMeta(task="classification", labels=DIGITS), "classification", DIGITS, "digits") == ""
    assert misfit_reason(ModelMeta(task="embedding"), "embedding", ("5", "6"), "digits-identities") == ""


def test_fps_and_p50_share_one_basis_and_threads_are_recorded_as_used(tmp_path):
    """Row 6: FPS was 1000/mean while p50 is the median, so the columns ranked runtimes differently."""
    spec = MatrixSpec(models=(tiny_classifier(tmp_path / "net.onnx", seed=1),), batches=(1, 4), timing=FAST,
                      evaluation=EVAL)
    for record in run(spec, f"sqlite:///{tmp_path / 'h.db'}").records:
        assert record.throughput_items_s == pytest.approx(record.cell.batch * 1000.0 / record.p50_ms)
        assert record.config["throughput_basis"] == "items per query / p50"
        assert isinstance(record.config["runtime"]["threads_used"], int)
        assert record.config["runtime"]["threads_used"] >= 1


def _two_runs(tmp_path, threads=(None, 1)):
    model, url = tiny_classifier(tmp_path / "net.onnx", seed=1), f"sqlite:///{tmp_path / 'h.db'}"
    for count in threads:
        run(MatrixSpec(models=(model,), threads=(count,), timing=FAST, evaluation=EVAL), url)
    return url


def test_gate_that_matches_no_cell_fails_and_names_the_setting(tmp_path, cli):
    """Row 3: `report --baseline 1` after a rerun with --threads 1 exited 0 with nothing compared."""
    url = _two_runs(tmp_path)
    result = cli("report", "--db", url, "--baseline", "1")
    assert result.exit_code == 1
    assert "nothing compared" in result.output and "threads: baseline default, candidate 1" in result.output
    assert "--ignore" in result.output
    paired = cli("diff", "1", "2", "--db", url, "--ignore", "threads", "--min-change", "1000")
    assert paired.exit_code == 0, paired.output
    assert "same" in paired.output
    assert cli("diff", "1", "2", "--db", url, "--ignore", "thread").exit_code == 2


def test_report_shows_each_runs_machine_and_collapses_runtimes_not_here(tmp_path, cli):
    model, url = tiny_classifier(tmp_path / "net.onnx", seed=1), f"sqlite:///{tmp_path / 'h.db'}"
    run(MatrixSpec(models=(model,), runtimes=("ort-cpu", "trt", "ort-cuda"), timing=FAST, evaluation=EVAL), url)
    md = tmp_path / "r.md"
    result = cli("report", "--db", url, "--md", str(md))
    assert result.exit_code == 0, result.output
    text = md.read_text()
    from edgekit.system import cpu_name

    environment = next(line for line in text.splitlines() if line.startswith("- run 1"))
    assert cpu_name() in environment and " cores" in environment and "edgekit " in environment
    assert "onnxruntime " in environment
    from edgekit.runtimes import get_runtime

    absent = [name for name in ("trt", "ort-cuda") if not get_runtime(name).probe().available]
    table = [line for line in text.splitlines() if line.startswith("| 1 |")]
    assert len(table) == 3 - len(absent)
    if absent:
        assert text.rstrip().splitlines()[-1].startswith("not run on that machine: ")
        assert all(f"{name} (1 cells)" in text for name in absent)


def test_machines_warning_when_runs_differ():
    from edgekit.report.environment import environment_line, machines_warning

    one = {"id": 1, "environment": {"cpu": "AMD EPYC", "cpu_flags": ["avx2", "avx512f"], "cpus": 2}}
    other = {"id": 2, "environment": {"cpu": "AMD EPYC", "cpu_flags": ["avx2"], "cpus": 2}}
    assert machines_warning([one, one]) == ""
    assert "2 different machines" in machines_warning([one, other])
    assert "(avx2 avx512f)" in environment_line(one) and "(avx2)" in environment_line(other)


@pytest.fixture
def cli():
    """The CLI in this process (typer's runner): exit code and output, no subprocess."""
    from typer.testing import CliRunner

    from edgekit.cli.app import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


@pytest.mark.parametrize("changes, fragment", [
    ({"threads": (2000,)}, "threads must be a number at least 1"),
    ({"batches": (0,)}, "batch must be a number at least 1"),
    ({"timing": Timing(min_duration_s=float("nan"))}, "timing duration must be"),
    ({"evaluation": Evaluation(samples=0)}, "evaluation.samples must be"),
])
def test_a_matrix_spec_built_in_python_is_checked_when_made(changes, fragment):
    from edgekit.errors import BadInputError

    with pytest.raises(BadInputError, match=fragment):
        MatrixSpec(models=("lenet5",), **changes)


def test_cold_start_is_load_and_first_call_not_making_the_inputs(zoo_onnx, monkeypatch):
    """The matrix's cold start counted the random inputs' generation (3–15 ms at 224–640 px), unlike
    `edgekit bench`'s load + first inference."""
    import time as clock

    import edgekit.bench.inputs as inputs
    from edgekit.matrix.cells import Timing
    from edgekit.matrix.measure import time_file
    from edgekit.meta import read_meta

    made = inputs.random_feeds

    def slow_feeds(*args, **kwargs):
        clock.sleep(0.3)
        return made(*args, **kwargs)

    monkeypatch.setattr(inputs, "random_feeds", slow_feeds)
    path = zoo_onnx("lenet5").path
    timed = time_file(path, "ort-cpu", {}, read_meta(path), 1, "single-stream", Timing(1, 3, 0.0, None, 1))
    assert 0 < timed.cold_start_ms < 300 and timed.load_ms <= timed.cold_start_ms   # with the sleep: over 300
