"""The one TensorRT engine builder (edgekit/runtimes/tensorrt_build.py) without a GPU.

The real ``tensorrt`` package cannot exist on this machine (PyPI's wheel downloads from NVIDIA's
index, and needs a GPU): these tests pass FAKES of the tensorrt module (tests/fake_tensorrt.py:
its version and the attributes the builder touches — flags, enums, Builder/OnnxParser/config
objects that record calls and keep TensorRT's rules) to the builder, which takes the module as an
argument. Everything else is
real: ONNX files written with onnx, edgekit's hashing, options and the CLI. ONNX Runtime and
OpenVINO are never faked. The real builds run in tests/test_gpu_runtimes.py (marked tensorrt).
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli
from fake_tensorrt import fake_trt as make_fake_trt

from edgekit.errors import BadInputError, EdgekitError
from edgekit.runtimes import tensorrt_build as tb
from edgekit.runtimes.tensorrt_build import BuildSpec, build_engine, typing_plan


def fake_trt(version: str, **options):
    """The fake tensorrt module (tests/fake_tensorrt.py) with an invented one-convolution network."""
    options.setdefault("layers", ("CONVOLUTION",))
    return make_fake_trt(version, **options)


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"not parsed by the fake")
    return path


QDQ = ("QUANTIZE", "DEQUANTIZE", "CONVOLUTION")


# ---- flag selection by TensorRT version ------------------------------------------------------
def test_typing_plan_by_version():
    assert typing_plan((10, 3), "fp16", "fp32") == tb.TypingPlan(False, ("FP16",))
    assert typing_plan((10, 3), "fp32", "int8") == tb.TypingPlan(False, ("INT8",))
    assert typing_plan((10, 3), "int8", "int8") == tb.TypingPlan(False, ("INT8",))
    assert typing_plan((10, 3), "fp16", "int8") == tb.TypingPlan(False, ("INT8", "FP16"))  # asked for
    assert typing_plan((10, 3), "fp32", "fp16") == tb.TypingPlan(False, ("FP16",))  # an FP16 ONNX computes FP16
    assert typing_plan((10, 11), "fp32", "fp32") == tb.TypingPlan(False, ())
    for version in ((10, 12), (10, 13), (11, 0), (11, 4)):
        assert typing_plan(version, "int8", "int8") == tb.TypingPlan(True, ())
        assert typing_plan(version, "fp16", "fp16") == tb.TypingPlan(True, ())
        assert typing_plan(version, "fp32", "fp16") == tb.TypingPlan(True, ())
        with pytest.raises(BadInputError, match="strongly typed.*fp16 engine needs a fp16 ONNX.*--mode fp16"):
            typing_plan(version, "fp16", "fp32")


def test_trt11_int8_from_qdq_builds_strongly_typed_without_the_removed_flags(model):
    trt = fake_trt("11.4.0.106", layers=QDQ)
    with pytest.raises(AttributeError):  # what the old builder hit: config.set_flag(trt.BuilderFlag.FP16)
        trt.BuilderFlag.FP16
    assert build_engine(trt, model, BuildSpec("int8")) == b"ENGINE"
    assert trt.calls["flags"] == [] and trt.calls["network_flags"] == [0]  # 11: always strongly typed


def test_trt_10_12_sets_the_strongly_typed_flag_and_no_precision_flag(model):
    trt = fake_trt("10.13.3.9", half=True)
    build_engine(trt, model, BuildSpec("fp16"))
    assert trt.calls["network_flags"] == [1 << 1] and trt.calls["flags"] == []
    with pytest.raises(BadInputError, match="TensorRT 10.13 builds strongly typed"):
        build_engine(fake_trt("10.13.3.9"), model, BuildSpec("fp16"))  # FP32 ONNX cannot become fp16


def test_older_10x_uses_precision_flags(model):
    trt = fake_trt("10.3.0.26")
    build_engine(trt, model, BuildSpec("fp16", opt_batch=2, max_batch=8, workspace_mb=64))
    assert trt.calls["network_flags"] == [0] and trt.calls["flags"] == ["FP16"]
    assert trt.calls["workspace"] == 64 << 20
    assert trt.calls["profiles"] == [{"input": ((1, 3, 8, 8), (2, 3, 8, 8), (8, 3, 8, 8))}]
    trt = fake_trt("10.3.0.26", layers=QDQ)
    build_engine(trt, model, BuildSpec("int8"))
    assert trt.calls["flags"] == ["INT8"]


@pytest.mark.parametrize("version", ["10.3.0.26", "10.11.0.33", "10.13.3.9", "11.1.0.5"])
def test_int8_engines_get_the_same_flags_on_every_version(model, version):
    """An INT8 Q/DQ model used to get INT8 + FP16 below 10.12 (Jetson's 10.3): its unquantized layers
    then ran in FP16 there and in FP32 on 10.12+. Now FP16 comes only when asked for."""
    trt = fake_trt(version, layers=QDQ)
    build_engine(trt, model, BuildSpec("int8"))
    build_engine(trt, model, BuildSpec())  # the runtime's default on a Q/DQ model
    weak = tb.trt_version(trt) < tb.STRONG_TYPING_SINCE
    assert trt.calls["built_flags"] == [["INT8"] if weak else []] * 2


def test_tf32_is_cleared_unless_asked(model):
    """TensorRT lets FP32 layers use TF32 by default (the fake's config starts with it, as the real one)."""
    for version in ("10.3.0.26", "10.13.3.9", "11.1.0.5"):
        trt = fake_trt(version, half=version != "10.3.0.26")
        precision = "fp32" if version == "10.3.0.26" else "fp16"
        build_engine(trt, model, BuildSpec(precision))
        build_engine(trt, model, BuildSpec(precision, tf32=True))
        assert ["TF32" in flags for flags in trt.calls["built_flags"]] == [False, True], version
    assert BuildSpec().key() != BuildSpec(tf32=True).key()  # another engine in the cache


def test_one_builder_for_runtime_and_quantizer_same_defaults():
    """The runtime's options and the quantizer build through the same BuildSpec (max batch 16)."""
    from edgekit.runtimes import get_runtime

    assert get_runtime("trt")("m.onnx").options.build_spec == BuildSpec("fp32", 1, 16, None, False)
    assert get_runtime("trt")("m.onnx", tf32=True).options.build_spec.tf32
    assert BuildSpec("int8").max_batch == get_runtime("trt").Options().max_batch
    source = open(tb.__file__.replace("runtimes/tensorrt_build.py", "quantize/tensorrt.py")).read()
    assert "build_engine(" in source and "create_network" not in source and "BuilderFlag" not in source


# ---- logger ----------------------------------------------------------------------------------
def test_one_logger_per_process_collects_errors_per_call_and_thread(model):
    trt = fake_trt("10.3.0.26", build_ok=False)
    logger = tb.get_logger(trt)
    assert tb.get_logger(trt) is logger
    logger.log("ERROR", "left over from an earlier call")
    with pytest.raises(EdgekitError) as info:
        build_engine(trt, model, BuildSpec())
    message = str(info.value)
    assert "\n" not in message and "no kernel for conv_0 (+1 more)" in message and "left over" not in message
    seen = []
    thread = threading.Thread(target=lambda: seen.append(logger.errors))
    thread.start()
    thread.join()
    assert seen == [[]] and len(logger.errors) == 2  # another thread's call does not see these
    logger.clear()
    assert logger.errors == [] and logger.summary() == "no error message from TensorRT"


def test_warnings_go_to_logging_not_stderr(caplog, capsys):
    logger = tb.get_logger(fake_trt("10.3.0.26"))
    with caplog.at_level(logging.INFO, logger="edgekit.tensorrt"):
        logger.log("WARNING", "weights are out of range")
    assert "TensorRT warning: weights are out of range" in caplog.text and logger.errors == []
    logger.log("WARNING", "again, with no logging configured")
    assert capsys.readouterr() == ("", "")  # stderr keeps the CLI's one-line error alone


def test_parser_error_is_one_line(model):
    with pytest.raises(BadInputError) as info:
        build_engine(fake_trt("10.3.0.26", parse_ok=False), model, BuildSpec())
    assert str(info.value) == ("TensorRT cannot parse m.onnx: node conv_0 Conv: Assertion failed: "
                               "bias must be float (+1 more)")


# ---- timing cache ----------------------------------------------------------------------------
def test_refused_timing_cache_is_replaced_with_a_warning(model, tmp_path, caplog):
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"stale")
    trt = fake_trt("10.3.0.26", timing_ok=(False, True))
    with caplog.at_level(logging.WARNING, logger="edgekit.tensorrt"):
        build_engine(trt, model, BuildSpec(), cache)
    assert trt.calls["timing"] == [(b"stale", False), (b"", True)]
    assert "refused the timing cache" in caplog.text and cache.read_bytes() == b"timing:"
    with pytest.raises(EdgekitError, match="could not set a timing cache"):
        build_engine(fake_trt("10.3.0.26", timing_ok=(False, False)), model, BuildSpec(), cache)


# ---- tensors, options, keys ------------------------------------------------------------------
def test_bf16_and_fp8_io_is_a_one_line_error():
    trt = fake_trt("10.8.0.43")
    assert tb.numpy_dtype(trt, "HALF", "x") == np.float16
    for kind in ("BF16", "FP8"):
        with pytest.raises(BadInputError) as info:
            tb.numpy_dtype(trt, kind, "images")
        assert str(info.value).startswith(f"engine tensor 'images' is {kind}, which numpy cannot hold")


def test_build_options_are_checked_when_built():
    from edgekit.runtimes import get_runtime

    trt_class = get_runtime("trt")
    for options, message in (({"opt_batch": 5, "max_batch": 4}, "opt_batch <= max_batch"),
                             ({"max_batch": 0}, "opt_batch <= max_batch"),
                             ({"workspace_mb": 0}, "workspace_mb must be at least 1"),
                             ({"device": "npu"}, "cuda:N")):
        with pytest.raises(BadInputError, match=message):
            trt_class.make_options(**options)
    with pytest.raises(BadInputError, match="device_id must be 0 or more"):
        get_runtime("ort-trt").make_options(device_id=-1)
    with pytest.raises(BadInputError, match="disagree"):
        get_runtime("ort-cuda").make_options(device="cuda:1", device_id=2)
    with pytest.raises(BadInputError, match="precision must be one of"):
        BuildSpec("int4")


def test_bad_build_option_fails_before_any_export(tmp_path):
    """A zoo name would be exported first: the option error must come before (and no file appear)."""
    result = run_cli("bench", "lenet5", "--runtime", "trt", "-O", "opt_batch=5", "-O", "max_batch=4",
                     env={"EDGEKIT_CACHE_DIR": str(tmp_path)})
    assert_one_line_error(result, "need 1 <= opt_batch <= max_batch, got 5 and 4")
    assert not list(tmp_path.rglob("*.onnx"))


def _external_model(folder, weights):
    import onnx
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(weights.astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", 1, [1, 4])],
                              [helper.make_tensor_value_info("y", 1, [1, 4])], [w])
    path = folder / "m.onnx"
    onnx.save(helper.make_model(graph), str(path), save_as_external_data=True, location="m.weights",
              size_threshold=0)
    return path


def test_engine_cache_key_covers_external_data_spec_version_and_gpu(tmp_path):
    from edgekit.hashing import external_data_files

    path = _external_model(tmp_path, np.eye(4))
    assert external_data_files(path) == ("m.weights",)
    key = tb.engine_cache_key(path, BuildSpec(), "10.3.0", "NVIDIA L4")
    assert key == tb.engine_cache_key(path, BuildSpec(), "10.3.0", "NVIDIA L4")
    others = {tb.engine_cache_key(path, BuildSpec("fp16"), "10.3.0", "NVIDIA L4"),
              tb.engine_cache_key(path, BuildSpec(max_batch=8), "10.3.0", "NVIDIA L4"),
              tb.engine_cache_key(path, BuildSpec(), "11.4.0", "NVIDIA L4"),
              tb.engine_cache_key(path, BuildSpec(), "10.3.0", "NVIDIA H100")}
    weights = tmp_path / "m.weights"
    weights.write_bytes((2 * np.eye(4)).astype(np.float32).tobytes())  # retrained: same .onnx, new weights
    others.add(tb.engine_cache_key(path, BuildSpec(), "10.3.0", "NVIDIA L4"))
    assert key not in others and len(others) == 5
