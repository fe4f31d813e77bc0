"""Quantization for TensorRT without a GPU: the Q/DQ model TensorRT builds INT8 engines from
(float biases, symmetric ranges) checked with onnx and run on ONNX Runtime's CPU; the engines built
through fakes of TensorRT and CUDA (tests/fake_tensorrt.py: the fake engine runs its ONNX on ONNX
Runtime); the quantizer descriptor; custom-domain operators refused in one line; the sweep as a
library call. Real engines: tests/test_gpu_runtimes.py (marked gpu/tensorrt)."""

from __future__ import annotations

from pathlib import Path

import fake_tensorrt
import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from edgekit.errors import BadInputError
from edgekit.meta import read_meta
from edgekit.quantize.base import KINDS, QUANTIZERS, SUFFIXES, QuantizeConfig, kind_of, quantize


fake_gpu = fake_tensorrt.fake_gpu  # the fixture


def _conv_model(folder: Path, custom_op: bool = False) -> Path:
    """Conv(+bias) → Relu → Flatten → Gemm(+bias): a tiny classifier with biases to quantize."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "conv_w"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "conv_b"),
             numpy_helper.from_array(rng.standard_normal((5, 8 * 6 * 6)).astype(np.float32) * 0.1, "fc_w"),
             numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "fc_b")]
    nodes = [helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["output"], name="fc", transB=1)]
    opsets = [helper.make_opsetid("", 17)]
    if custom_op:
        nodes.insert(2, helper.make_node("Foo", ["r"], ["r2"], name="plugin", domain="com.example"))
        nodes[3].input[0] = "r2"
        opsets.append(helper.make_opsetid("com.example", 1))
    graph = helper.make_graph(nodes, "tiny",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 5])], inits)
    path = folder / ("custom.onnx" if custom_op else "tiny.onnx")
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


@pytest.fixture
def tiny(tmp_path):
    model = _conv_model(tmp_path)
    calib = tmp_path / "calib.npz"
    np.savez(calib, input=np.random.default_rng(1).uniform(-1, 1, (16, 3, 8, 8)).astype(np.float32))
    return model, calib


def _bias_sources(path: Path) -> dict[str, tuple[str, int]]:
    """For each Conv/Gemm: (what produces its bias — 'initializer' or an op type, the initializer's
    element type behind it)."""
    import onnx

    model = onnx.load(str(path))
    inits = {init.name: init for init in model.graph.initializer}
    producers = {output: node for node in model.graph.node for output in node.output}
    found = {}
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            bias = node.input[2]
            if bias in inits:
                found[node.op_type] = ("initializer", inits[bias].data_type)
            else:
                dq = producers[bias]
                found[node.op_type] = (dq.op_type, inits[dq.input[0]].data_type)
    return found


def test_tensorrt_qdq_keeps_float_biases_and_agrees_with_fp32_on_ort(tiny, tmp_path):
    """TensorRT's ONNX parser refuses INT32 biases behind DequantizeLinear: the TRT-bound Q/DQ model
    keeps them float (QuantizeBias=False), quantizes the weights, and still runs on ORT's CPU."""
    from onnx import TensorProto

    from edgekit.quantize.onnxruntime import agreement, check_feeds, write_qdq
    from edgekit.quantize.tensorrt import trt_qdq_config, write_trt_qdq

    model, calib = tiny
    meta = read_meta(model)
    config = QuantizeConfig(backend="trt", calib=str(calib), calib_size=16)
    qdq = tmp_path / "trt-qdq.onnx"
    info = write_trt_qdq(model, qdq, config, meta)
    assert info["quantize_bias"] is False and info["symmetric"] is True and info["activations"] == "s8"
    assert _bias_sources(qdq) == {"Conv": ("initializer", TensorProto.FLOAT),
                                  "Gemm": ("initializer", TensorProto.FLOAT)}
    # what ORT does by default, and what TensorRT failed on: INT32 bias behind a DequantizeLinear
    default = tmp_path / "ort-qdq.onnx"
    write_qdq(model, default, trt_qdq_config(config), meta, symmetric=True)
    assert _bias_sources(default)["Conv"] == ("DequantizeLinear", TensorProto.INT32)
    import onnx

    ops = [node.op_type for node in onnx.load(str(qdq)).graph.node]
    assert ops.count("DequantizeLinear") >= 4 and "QuantizeLinear" in ops  # weights and activations are INT8
    feeds, count, _ = check_feeds(model, meta, config)
    result = agreement(model, qdq, feeds, count)
    assert result["samples"] == 16 and result["cosine"] > 0.99


def test_custom_domain_op_is_a_one_line_error(tmp_path):
    model = _conv_model(tmp_path, custom_op=True)
    for config in (QuantizeConfig(mode="int8-dynamic"), QuantizeConfig(mode="fp16"),
                   QuantizeConfig(mode="int8-static", backend="trt", calib="x.npz")):
        with pytest.raises(BadInputError, match="node 'plugin' is com.example::Foo, an operator from a custom domain"):
            quantize(model, tmp_path / f"q{kind_of(config.backend).suffix}", config)
    result = run_cli("quantize", str(model), "-o", str(tmp_path / "q.onnx"), "--mode", "int8-dynamic")
    assert_one_line_error(result, "com.example::Foo")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["custom.onnx"]


def test_one_quantizer_descriptor_per_backend():
    assert SUFFIXES == {"ort": ".onnx", "nncf": ".xml", "trt": ".engine"}
    assert {f"{k.backend}:{m}" for k in KINDS.values() for m in k.modes} == set(QUANTIZERS.names())
    assert kind_of("openvino") is KINDS["nncf"] and kind_of("TensorRT") is KINDS["trt"]
    assert QUANTIZERS.canonical("tensorrt:fp16") == "trt:fp16"
    assert (KINDS["ort"].runtimes("fp16") == ("ort-cpu", "ort-cuda", "ort-trt")
            and KINDS["ort"].runtimes("int8-static") == ())
    assert KINDS["nncf"].accepts(Path("m.onnx")) and not KINDS["trt"].accepts(Path("m.onnx"))
    with pytest.raises(BadInputError, match="unknown quantization backend 'tflite'"):
        kind_of("tflite")


def test_sweep_is_a_library_call_returning_a_record(tiny, tmp_path):
    from edgekit.quantize.sweep import SweepConfig, make_configs, sweep

    model, calib = tiny
    configs = make_configs(["int8-static", "fp16", "int8-dynamic"], ["ort", "nncf"], calib=str(calib),
                           calib_size=8)
    assert [c.key for c in configs] == ["ort:int8-static", "ort:fp16", "ort:int8-dynamic", "nncf:int8-static"]
    out = tmp_path / "out" / "tiny.onnx"
    out.parent.mkdir()
    result = sweep(model, out, configs[1:3], SweepConfig(runtimes=("ort-cpu",), threads=1, duration=0.05))
    assert result.selection is None and result.kept is None
    assert [(r.variant, r.runtime) for r in result.report.rows] == [
        ("fp32", "ort-cpu"), ("ort-fp16", "ort-cpu"), ("ort-int8-dynamic", "ort-cpu")]
    assert sorted(p.name for p in result.written) == ["tiny.ort-fp16.onnx", "tiny.ort-int8-dynamic.onnx"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.ort-fp16.onnx", "tiny.ort-int8-dynamic.onnx"]
    with pytest.raises(BadInputError, match="--max-drop must be 0 or more"):
        SweepConfig(max_drop=float("nan"))
    with pytest.raises(BadInputError, match="unknown runtime 'openvno'"):
        SweepConfig(runtimes=("ort-cpu", "openvno"))


def test_tensorrt_quantize_without_tensorrt_is_one_line_before_any_work(tiny, tmp_path):
    from edgekit.runtimes import get_runtime

    if get_runtime("trt").probe().available:
        pytest.skip("TensorRT and a GPU are here")
    model, calib = tiny
    for mode in ("int8-static", "fp16"):
        args = ["--calib", str(calib)] if mode == "int8-static" else []
        result = run_cli("quantize", str(model), "-o", str(tmp_path / "m.engine"),
                         "--backend", "trt", "--mode", mode, *args)
        assert_one_line_error(result, "runtime 'trt' is not available", "pip install 'edgekit[tensorrt]'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.npz", "tiny.onnx"]


@pytest.mark.parametrize(("version", "mode", "flags"), [
    ("10.3.0.26", "int8-static", ["INT8"]), ("10.13.3.9", "int8-static", []),
    ("10.3.0.26", "fp16", ["FP16"]), ("10.13.3.9", "fp16", [])])
def test_tensorrt_engines_get_only_the_flags_asked_for_on_every_version(fake_gpu, tiny, tmp_path, version, mode,
                                                                        flags):
    """An INT8 engine from the same Q/DQ model used to get INT8 + FP16 on TensorRT < 10.12 (a Jetson's
    10.3) and INT8 alone, strongly typed, on 10.12+: two precisions for one model. TF32 stays off."""
    _, trt = fake_gpu(version)
    model, calib = tiny
    config = QuantizeConfig(mode=mode, backend="trt", calib=str(calib) if mode != "fp16" else None, calib_size=16)
    result = quantize(model, tmp_path / "tiny.engine", config)
    assert trt.calls["built_flags"] == [flags]
    check = result.meta.recipe["check"]  # the engine ran (the fake runs its ONNX) against FP32
    assert check["samples"] > 0 and check["cosine"] > (0.99 if mode != "fp16" else 0.999)
    assert read_meta(tmp_path / "tiny.engine").precision == ("int8" if mode != "fp16" else "fp16")
