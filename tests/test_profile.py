"""edgekit profile: per-layer times parsed from the runtimes' real profiler output (ONNX Runtime's trace,
OpenVINO's counters) on small models, TensorRT's IProfiler through a fake, flags, side by side, bad input."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli

import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit.profile import ProfilePlan, profile_model, side_by_side
from edgekit.profile.graph import graph_of

CHANNELS = [(3, 16), (16, 32), (32, 32), (32, 32)]


def conv_chain(path, side=64, channels=CHANNELS, seed=0):
    """Conv → Relu blocks (nodes conv{i}, act{i}), a global pool and a flatten: ~1-3 ms a run on a CPU."""
    rng = np.random.default_rng(seed)
    nodes, weights, x = [], [], "input"
    for i, (cin, cout) in enumerate(channels):
        weights += [numpy_helper.from_array((rng.standard_normal((cout, cin, 3, 3)) * 0.2).astype(np.float32),
                                            f"w{i}"), numpy_helper.from_array(np.zeros(cout, np.float32), f"b{i}")]
        nodes += [helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"conv{i}_out"], name=f"conv{i}", pads=[1] * 4),
                  helper.make_node("Relu", [f"conv{i}_out"], [f"relu{i}"], name=f"act{i}")]
        x = f"relu{i}"
    nodes += [helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"),
              helper.make_node("Flatten", ["pooled"], ["output"], name="flat")]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                             [1, 3, side, side])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, channels[-1][1]])],
                              weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return conv_chain(tmp_path_factory.mktemp("chain") / "chain.onnx")


@pytest.fixture(scope="module")
def heavy(tmp_path_factory):
    """~5 ms a run: the runtime's fixed cost per call is a few % of it."""
    return conv_chain(tmp_path_factory.mktemp("heavy") / "heavy.onnx", side=64,
                      channels=[(3, 32), (32, 64), (64, 64), (64, 64)])


def coverage_within_10_percent(path, runtime: str) -> tuple:
    """Layer times sum to within 10 % of the whole-model time of the same profiled run (the median over runs
    of that ratio; runs preempted by other work left out). Taken run by run, a stall lands on both sides of
    the ratio, so the bound holds under load; a shared machine can still slow a whole profile in ways no
    counter shows (a worker thread kept off a core), so it must hold in one of five profiles."""
    seen = []
    for _ in range(5):
        profile = profile_model(path, runtime, {"threads": 1}, ProfilePlan(warmup=3, runs=15))
        seen.append(round(profile.coverage, 3))
        if 0.9 <= profile.coverage <= 1.02:
            return profile, seen
    raise AssertionError(f"layers vs whole on {runtime}: {seen}")


def test_ort_profile_maps_fused_layers_and_sums_to_the_whole(heavy):
    profile, _ = coverage_within_10_percent(heavy, "ort-cpu")
    by_node = {node: layer for layer in profile.layers for node in layer.onnx_nodes}
    for i in range(len(CHANNELS)):  # each Conv ran with its Relu fused in (conv{i}_relu_nchwc or conv{i})
        assert by_node[f"conv{i}"] is by_node[f"act{i}"]
        assert by_node[f"conv{i}"].op_type == "Conv" and by_node[f"conv{i}"].precision == "fp32"
    assert profile.timed_runs == 15 and profile.runs in (15, 15 - profile.preempted) and profile.asked == "fp32"
    assert all(layer.runs == profile.runs and layer.median_ms > 0 for layer in profile.layers)
    assert {row.op_type for row in profile.by_op()} >= {"Conv"}
    assert profile.overhead is not None and profile.plain_ms > 0


@pytest.mark.openvino
def test_openvino_profile_maps_fused_layers_and_sums_to_the_whole(heavy):
    profile, _ = coverage_within_10_percent(heavy, "openvino")
    by_node = {node: layer for layer in profile.layers for node in layer.onnx_nodes}
    for i in range(len(CHANNELS)):  # originalLayersNames: conv{i}/WithoutBiases holds act{i}
        assert by_node[f"conv{i}"] is by_node[f"act{i}"]
        assert by_node[f"conv{i}"].op_type == "Convolution" and by_node[f"conv{i}"].precision == "fp32"
        assert by_node[f"conv{i}"].kernel  # exec type, e.g. brgconv_avx512_f32 / jit_avx2_f32
    assert profile.asked == "fp32" and profile.timed_runs == 15


def test_ort_trace_parsing_groups_nodes_by_run():
    def node(name, ts, dur, op="Conv", first="float"):
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur,
                "args": {"op_name": op, "provider": "CPUExecutionProvider",
                         "input_type_shape": [{first: [1, 3, 8, 8]}]}}

    from edgekit.profile.ort import parse_trace

    events = [{"cat": "Session", "name": "model_run", "ts": 100, "dur": 50}, node("a", 101, 20),
              node("b_quant", 125, 20, "QLinearConv", "uint8"), {"cat": "Session", "name": "model_run", "ts": 200,
                                                                 "dur": 40}, node("a", 201, 30)]
    runs = parse_trace(events)
    assert [run.total_ms for run in runs] == [0.05, 0.04]
    assert [(s.layer, s.op_type, s.ms, s.precision, s.kernel) for s in runs[0].layers] == [
        ("a", "Conv", 0.02, "fp32", "CPU"), ("b_quant", "QLinearConv", 0.02, "int8", "CPU")]
    assert [s.layer for s in runs[1].layers] == ["a"]


def test_int8_model_flags_layers_that_ran_in_float(chain, tmp_path):
    """An INT8 QDQ model: with ORT's optimizations its convolutions run as int8 kernels (QLinearConv); with
    basic ones only, Q/DQ are not fused and every convolution runs in FP32, which the profile flags."""
    quantization = pytest.importorskip("onnxruntime.quantization")
    rng = np.random.default_rng(1)

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": rng.random((1, 3, 64, 64), dtype=np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.items, None)

    int8 = tmp_path / "int8.onnx"
    quantization.quantize_static(str(chain), str(int8), Reader(), quant_format=quantization.QuantFormat.QDQ)
    plan = ProfilePlan(warmup=2, runs=5)
    fused = profile_model(int8, "ort-cpu", {"threads": 1}, plan)
    unfused = profile_model(int8, "ort-cpu", {"threads": 1, "graph_optimization": "basic"}, plan)
    assert fused.asked == unfused.asked == "int8"
    convs = [layer for layer in fused.layers if "conv2" in layer.onnx_nodes]
    assert len(convs) == 1 and convs[0].precision == "int8" and not convs[0].flags
    assert not any(layer.op_type in ("Conv", "QLinearConv") for layer in fused.flagged)
    flagged = {node for layer in unfused.flagged for node in layer.onnx_nodes}
    assert {f"conv{i}" for i in range(len(CHANNELS))} <= flagged
    assert all(layer.flags == ("ran fp32, int8 asked",) for layer in unfused.flagged)


def test_openvino_counters_parse_precision_and_flag_reference_kernels():
    from edgekit.profile.openvino import RunningMeans, kernel_precision, parse_counters
    from edgekit.profile.records import RunSamples, aggregate

    info = types.SimpleNamespace
    infos = [info(node_name="conv", node_type="Convolution", exec_type="jit_avx2_I8", status="Status.EXECUTED",
                  real_time=0.002), info(node_name="act", node_type="Relu", exec_type="undef",
                                         status="Status.NOT_RUN", real_time=0.0),
             info(node_name="fc", node_type="FullyConnected", exec_type="ref_any_f32", status="Status.EXECUTED",
                  real_time=0.001)]
    samples = parse_counters(infos)
    assert [(s.layer, s.precision, s.ms) for s in samples] == [("conv", "int8", 2.0), ("fc", "fp32", 1.0)]
    assert kernel_precision("brgconv_avx512_bf16") == "bf16" and kernel_precision("undef") == ""
    # running means: 2 warm-up runs at 5 ms (mean 5), then runs of 2 ms (mean 4) and 1 ms (mean 3.25)
    def conv(ms):
        return parse_counters([info(node_name="conv", node_type="Convolution", exec_type="jit_avx2_I8",
                                    status="EXECUTED", real_time=ms / 1000)])

    counters = RunningMeans(2, conv(5.0))
    assert counters.next_run(conv(4.0))[0].ms == pytest.approx(2.0)
    assert counters.next_run(conv(3.25))[0].ms == pytest.approx(1.0)
    layers, totals = aggregate([RunSamples(samples, 3.2, 3.2, 3.0)], {}, "int8")
    assert layers[1].flags == ("ran fp32, int8 asked", "slow reference kernel (ref_any_f32)")
    assert layers[0].flags == () and totals["overhead"] == pytest.approx(3.2 / 3.0)


def _fake_tensorrt():
    """The slice of the tensorrt module the profiler touches: IProfiler and the layer-information format."""

    class IProfiler:
        def __init__(self):
            pass

    return types.SimpleNamespace(IProfiler=IProfiler, LayerInformationFormat=types.SimpleNamespace(JSON="json"),
                                 __version__="10.9.0")


def test_tensorrt_profiler_parsing_with_a_fake(tmp_path):
    from edgekit.profile.records import RunSamples
    from edgekit.profile.run import build_profile
    from edgekit.profile.tensorrt import (engine_layers, layer_profiler, run_pairs, samples_of, split_layer)
    from edgekit.profile.timing import Collected

    trt = _fake_tensorrt()
    profiler = layer_profiler(trt)
    assert isinstance(profiler, trt.IProfiler)
    reported = [("Reformatting CopyNode for Input Tensor 0 to conv0 + act0", 0.01), ("conv0 + act0", 0.5),
                ("PWN(act1, PWN(scale1))", 0.1), ("{ForeignNode[conv2...flat]}", 0.3)]

    class Context:  # report_to_profiler replays the run's layers into the profiler, as TensorRT does
        def report_to_profiler(self):
            for name, ms in reported:
                profiler.report_layer_time(name, ms)

    timed = run_pairs(lambda: None, lambda: None, Context(), profiler, ProfilePlan(warmup=1, runs=3))
    assert len(profiler.runs) == 4 and len(timed) == 3
    engine = types.SimpleNamespace(create_engine_inspector=lambda: types.SimpleNamespace(
        get_engine_information=lambda fmt: json.dumps({"Layers": [
            {"Name": "conv0 + act0", "LayerType": "CaskConvolution", "TacticName": "sm80_xmma_fprop",
             "Outputs": [{"Name": "relu0", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]}]})))
    layers = engine_layers(trt, engine)
    assert split_layer("conv0 + act0") == ("conv0", "act0") and split_layer("PWN(act1, PWN(scale1))") == \
        ("act1", "scale1")
    assert split_layer("{ForeignNode[conv2...flat]}") == () and split_layer(reported[0][0]) == ()
    runs = [RunSamples(samples_of(run, layers), 1.0, 1.0, 0.9) for run in profiler.runs[1:]]
    assert runs[0].layers[1].precision == "fp16" and runs[0].layers[0].op_type == "Reformat"
    names = {s.layer: split_layer(s.layer) for s in runs[0].layers}
    path = conv_chain(tmp_path / "small.onnx", side=16)
    graph = graph_of(onnx.load(str(path)).graph)
    profile = build_profile(path, "trt", Collected(runs, "fake", "10.9.0", "fake GPU", names,
                                                                asked="fp32"), graph, "fp16")
    by_node = {node: layer.layer for layer in profile.layers for node in layer.onnx_nodes}
    assert by_node["conv0"] == by_node["act0"] == "conv0 + act0" and by_node["act1"] == "PWN(act1, PWN(scale1))"
    assert profile.layer_sum_ms == pytest.approx(0.91) and "conv2" in profile.unprofiled


@pytest.mark.openvino
def test_side_by_side_joins_layers_through_onnx_nodes(chain):
    plan = ProfilePlan(warmup=2, runs=5)
    a, b = (profile_model(chain, name, {"threads": 1}, plan) for name in ("ort-cpu", "openvino"))
    rows = side_by_side(a, b)
    convs = [row for row in rows if "conv0" in row.nodes]
    assert len(convs) == 1 and convs[0].a_layers and convs[0].b_layers and convs[0].ratio > 0
    assert convs[0].a_precision == convs[0].b_precision == "fp32"


NO_PROFILER = """
from edgekit.runtimes import RUNTIMES
from edgekit.runtimes.onnxruntime import OrtCpuRuntime
class NoProfiler(OrtCpuRuntime):
    name = "no-profiler"
RUNTIMES.add("no-profiler", NoProfiler)
"""


def test_runtime_without_a_profiler_is_one_line(chain):
    result = run_cli("profile", str(chain), "-r", "no-profiler", prelude=NO_PROFILER)
    assert_one_line_error(result, "runtime 'no-profiler' has no per-layer profiler", "edgekit bench")


def test_cli_profile_json_and_bad_input(chain, tmp_path):
    out = tmp_path / "profile.json"
    result = run_cli("profile", str(chain), "-r", "ort-cpu", "--threads", "1", "--runs", "3", "--warmup", "1",
                     "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "layers explain" in result.stdout and "profiler overhead" in result.stdout
    data = json.loads(out.read_text())
    assert data["runtime"] == "ort-cpu" and data["runs"] == 3 and data["layers"] and 0 < data["coverage"]
    assert_one_line_error(run_cli("profile", str(chain), "-r", "ort-cpu,openvino,ort-cpu"), "one runtime")
    assert_one_line_error(run_cli("profile", str(chain), "--runs", "0"), "--runs")
