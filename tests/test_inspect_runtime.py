"""`inspect --runtime`: ONNX Runtime's node placement and OpenVINO's unsupported operations, with hints."""

from __future__ import annotations

import json

import onnx
import pytest
from onnx import helper

from edgekit.graph.placement import inspect_placement
from tests.conftest import run_cli


def _model(path, op: str, domain: str = ""):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node(op, ["r"], ["y"], domain=domain, name="odd"),
             helper.make_node("Sigmoid", ["y"], ["z"], name="sigmoid")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [2, 2])],
                              [helper.make_tensor_value_info("z", 1, None)])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


def test_ort_cpu_places_every_node_on_cpu(tmp_path):
    report = inspect_placement(_model(tmp_path / "det.onnx", "Det"), "ort-cpu")
    assert report.loadable and report.target == "CPUExecutionProvider"
    assert report.placement == {"CPUExecutionProvider": report.node_count} and report.node_count >= 1
    assert report.findings == ()


def test_ort_names_a_custom_domain_op(tmp_path):
    report = inspect_placement(_model(tmp_path / "custom.onnx", "MyOp", "com.acme"), "ort-cpu")
    assert not report.loadable
    assert [(f.node, f.op, f.placed_on) for f in report.findings] == [("odd", "MyOp", "unsupported")]
    assert "custom-domain" in report.findings[0].hint


@pytest.mark.openvino
def test_openvino_names_an_op_it_lacks(tmp_path):
    """Det runs on ONNX Runtime but OpenVINO's ONNX frontend has no conversion for it."""
    path = _model(tmp_path / "det.onnx", "Det")
    report = inspect_placement(path, "openvino")
    assert not report.loadable
    assert [(f.node, f.op) for f in report.findings] == [("odd", "Det")]
    assert "ONNX Runtime" in report.findings[0].hint


@pytest.mark.openvino
def test_openvino_query_model_on_a_supported_graph(tmp_path):
    report = inspect_placement(_model(tmp_path / "ok.onnx", "Tanh"), "openvino")
    assert report.loadable and report.findings == ()
    assert set(report.placement) == {"CPU"} and report.placement["CPU"] == report.node_count


@pytest.mark.openvino
def test_cli_runtime_table_and_json(tmp_path):
    path = _model(tmp_path / "custom.onnx", "MyOp", "com.acme")
    result = run_cli("inspect", str(path), "--runtime", "openvino", "--json", str(tmp_path / "p.json"))
    assert result.returncode == 0, result.stderr
    assert "MyOp" in result.stdout and "custom-domain op" in result.stdout
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["findings"][0]["node"] == "odd" and data["loadable"] is False
    unknown = run_cli("inspect", str(path), "--runtime", "openvin")
    assert unknown.returncode == 2 and "did you mean" in unknown.stderr


def test_ort_multi_provider_log_lists_fallbacks_and_memcpy():
    """The per-node lines ORT's session logs with a GPU provider (its VerifyEachNodeIsAssignedToAnEp format)."""
    from edgekit.graph.placement import _parse_ort_log

    prefix = "2026-01-01 00:00:00.0 [V:onnxruntime:, session_state.cc:1601 VerifyEachNodeIsAssignedToAnEp]"
    log = "\n".join([
        f"{prefix} Node placements",
        f"{prefix}  Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 3",
        f"{prefix}   Conv (/conv/Conv)",
        f"{prefix}   MemcpyFromHost (Memcpy)",
        f"{prefix}   Relu (/relu/Relu)",
        f"{prefix}  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 2",
        f"{prefix}   ScatterND (/ScatterND)",
        f"{prefix}   MemcpyToHost (Memcpy_token_1)",
    ])
    placement, findings = _parse_ort_log(log, "CUDAExecutionProvider")
    assert placement == {"CUDAExecutionProvider": 3, "CPUExecutionProvider": 2}
    assert [(f.node, f.op, f.placed_on) for f in findings] == [
        ("Memcpy", "MemcpyFromHost", "CUDAExecutionProvider"), ("/ScatterND", "ScatterND", "CPUExecutionProvider"),
        ("Memcpy_token_1", "MemcpyToHost", "CPUExecutionProvider")]
    assert "not CUDAExecutionProvider" in findings[1].hint and "copy" in findings[0].hint
