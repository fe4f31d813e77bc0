"""The matrix end to end on the real runtimes: every cell gets a record (unsupported ones with a
reason), the store holds them, a re-run resumes, --force measures again, scenarios report figures."""

import sqlite3

import pytest

from conftest import run_cli
from edgekit.matrix import Evaluation, MatrixSpec, Timing
from edgekit.matrix.runner import run_matrix
from edgekit.store import open_store

FAST = Timing(warmup=2, min_runs=5, min_duration_s=0.1, rounds=2)
EVAL = Evaluation(samples=32, calib_samples=16, agreement_samples=8)


@pytest.fixture(scope="module")
def lenet(zoo_onnx):
    """LeNet-5 (the zoo's, digit labels, random weights) with a dynamic batch."""
    return str(zoo_onnx("lenet5", dynamic_batch=True).path)


@pytest.mark.slow
@pytest.mark.openvino
def test_matrix_records_every_cell_and_goes_on(lenet, tmp_path):
    spec = MatrixSpec(models=(lenet,), runtimes=("ort-cpu", "openvino"), precisions=("fp32", "int8", "bf16"),
                      batches=(1, 4), scenarios=("single-stream", "offline"), timing=FAST, evaluation=EVAL)
    with open_store(f"sqlite:///{tmp_path / 'h.db'}") as store:
        run = run_matrix(spec, store, progress=False)
        rows = store.records(run_ids=[run.run_id])
    assert len(run.records) == len(rows) == 2 * 3 * 2 * 2 and run.measured == 24
    by_cell = {(r.cell.runtime, r.cell.precision, r.cell.batch, r.cell.scenario): r for r in run.records}
    ort_bf16 = by_cell[("ort-cpu", "bf16", 1, "single-stream")]
    assert ort_bf16.status == "unsupported" and "bf16" in ort_bf16.reason
    for key, record in by_cell.items():
        if key[:2] == ("ort-cpu", "bf16"):
            continue
        if key[1] == "bf16" and record.status == "unsupported":   # a CPU without bf16
            assert record.reason == "CPU lacks bf16"
            continue
        assert record.status == "ok", (key, record.reason)
        assert record.metric == "top1" and 0 <= record.accuracy <= 100          # digits labels: accuracy
        assert record.agreement_top1_pct is not None and record.cosine > 0.9   # vs the FP32 reference
        assert len(record.round_ms) == 2 and record.throughput_items_s > 0
        if key[3] == "single-stream":
            assert 0 < record.p50_ms <= record.p90_ms and len(record.percentiles_ms) == 19
        else:
            assert record.p50_ms is None and record.config["requests"] >= 1
    assert (by_cell[("ort-cpu", "int8", 1, "single-stream")].size_mb
            < by_cell[("ort-cpu", "fp32", 1, "single-stream")].size_mb)
    assert by_cell[("ort-cpu", "fp32", 1, "single-stream")].agreement_top1_pct == 100.0


@pytest.mark.slow
def test_cli_matrix_resumes_and_force_measures_again(lenet, tmp_path):
    db = f"sqlite:///{tmp_path / 'h.db'}"
    args = ("bench", lenet, "--runtime", "ort-cpu", "--precision", "fp32,fp16", "--scenario",
            "single-stream,multi-stream", "--duration", "0.1", "--rounds", "2", "--db", db)
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    for fragment in ("model", "runtime", "precision", "scenario", "status", "size MB", "accuracy", "p50 ms", "p90 ms",
                     "FPS", "multi-stream", "fp16", "stored in"):
        assert fragment in first.stdout, first.stdout
    second = run_cli(*args)
    assert second.returncode == 0 and "4 finished cell(s) skipped" in second.stdout, second.stdout
    forced = run_cli(*args, "--force")
    assert forced.returncode == 0 and "skipped" not in forced.stdout
    with sqlite3.connect(tmp_path / "h.db") as connection:
        counts = connection.execute("select run_id, count(*) from results group by run_id").fetchall()
        environment = connection.execute("select environment, git_commit from runs where id = 1").fetchone()
    assert counts == [(1, 4), (2, 4)]
    assert '"cpu"' in environment[0] and '"libraries"' in environment[0] and '"load_average"' in environment[0]


def test_missing_runtime_is_recorded_not_fatal(lenet, tmp_path):
    spec = MatrixSpec(models=(lenet,), runtimes=("ort-cpu", "trt"), timing=FAST, evaluation=EVAL)
    with open_store(f"sqlite:///{tmp_path / 'h.db'}") as store:
        records = {r.cell.runtime: r for r in run_matrix(spec, store, progress=False).records}
    assert records["ort-cpu"].status == "ok"
    if records["trt"].status != "ok":  # no TensorRT / GPU here
        assert records["trt"].status == "unsupported" and "trt" in records["trt"].reason


def _plain_conv(path):
    """A one-Conv ONNX model without edgekit metadata (input 'x': 1x3x20x20)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.random.default_rng(0).random((4, 3, 3, 3), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 20, 20])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 18, 18])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return str(path)


@pytest.mark.openvino
def test_model_without_metadata_keeps_its_timing_and_multi_stream_runs(tmp_path):
    model = _plain_conv(tmp_path / "plain.onnx")
    spec = MatrixSpec(models=(model,), runtimes=("ort-cpu", "openvino"), precisions=("fp32", "int8"),
                      scenarios=("multi-stream",), timing=FAST, evaluation=EVAL)
    with open_store(f"sqlite:///{tmp_path / 'h.db'}") as store:
        records = {(r.cell.runtime, r.cell.precision): r for r in run_matrix(spec, store, progress=False).records}
    for runtime in ("ort-cpu", "openvino"):
        fp32 = records[(runtime, "fp32")]
        assert fp32.status == "ok" and fp32.p90_ms > 0 and fp32.config["requests"] >= 1
        assert fp32.throughput_items_s > 0 and fp32.accuracy is None and "quality_error" in fp32.config
        int8 = records[(runtime, "int8")]
        assert int8.status == "failed" and "calibration data" in int8.reason and int8.p50_ms is None


@pytest.mark.slow
def test_a_crashing_worker_costs_one_cell(tmp_path):
    """The measuring process dies of a real SIGSEGV mid-cell: that cell is 'failed' with the signal,
    the next cell gets a new worker."""
    import os
    import signal
    import threading

    from edgekit.matrix import Cell
    from edgekit.matrix.worker import Worker

    model = _plain_conv(tmp_path / "plain.onnx")
    spec = MatrixSpec(models=(model,), timing=Timing(warmup=1, min_runs=5, min_duration_s=3.0, rounds=1),
                      evaluation=EVAL)
    cell = Cell(model, "ort-cpu")
    worker = Worker()
    try:
        assert worker(spec, cell, "first").status == "ok"
        threading.Timer(1.0, os.kill, (worker.process.pid, signal.SIGSEGV)).start()
        crashed = worker(spec, cell, "second")
        assert crashed.status == "failed" and "killed by SIGSEGV" in crashed.reason and crashed.key == "second"
        assert worker.process is None
        assert worker(spec, cell, "third").status == "ok"
    finally:
        worker.close()
