"""The contract every registered runtime must keep; a new runtime is tested here for free.

Runtimes that cannot run on this machine (no GPU, package missing) are skipped with the
reason their probe gives.
"""

import numpy as np
import pytest

from edgekit.errors import BadInputError, EdgekitError, RuntimeUnavailableError
from edgekit.runtimes import RUNTIMES, get_runtime
from edgekit.runtimes.base import Availability


def _available(name):
    availability = get_runtime(name).probe()
    if not availability.available:
        pytest.skip(f"{name}: {availability.reason}")
    return get_runtime(name)


@pytest.mark.parametrize("name", RUNTIMES.names())
def test_probe_never_raises_and_explains_itself(name):
    availability = get_runtime(name).probe()
    assert isinstance(availability, Availability) and availability.name == name
    if availability.available:
        assert availability.version and availability.devices
    else:
        assert availability.reason and "pip install" in availability.install


@pytest.mark.parametrize("name", RUNTIMES.names())
def test_runs_a_model_like_the_reference(name, zoo_onnx):
    runtime_class = _available(name)
    path = zoo_onnx("lenet5", dynamic_batch=True).path
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    with get_runtime("ort-cpu")(path) as reference:
        expected = reference.run({"input": x})["output"]
    runtime = runtime_class(path)
    assert not runtime.is_open  # constructors do no I/O
    with runtime:
        assert list(runtime.inputs) == ["input"] and list(runtime.outputs) == ["output"]
        assert runtime.inputs["input"].dtype == "float32"
        np.testing.assert_allclose(runtime.run({"input": x})["output"], expected, rtol=1e-3, atol=1e-4)
        call = runtime.prepare({"input": x[:1]})
        call()
    assert not runtime.is_open
    runtime.close()  # twice is fine


@pytest.mark.parametrize("name", RUNTIMES.names())
def test_bad_feeds_are_rejected_with_the_expected_specs(name, zoo_onnx):
    runtime_class = _available(name)
    with runtime_class(zoo_onnx("lenet5").path) as runtime:
        good = np.zeros((1, 1, 32, 32), np.float32)
        for feeds, problem in [
            ({"wrong": good}, "expects inputs"),
            ({"input": good.astype(np.float64)}, "dtype float64"),
            ({"input": np.zeros((1, 3, 32, 32), np.float32)}, "shape"),
            ({"input": np.zeros((1, 32, 32), np.float32)}, "shape"),
        ]:
            with pytest.raises(BadInputError, match=problem) as info:
                runtime.run(feeds)
            assert "input: float32[1, 1, 32, 32]" in str(info.value)


@pytest.mark.parametrize("name", RUNTIMES.names())
def test_errors_before_open(name, tmp_path):
    runtime_class = get_runtime(name)
    with pytest.raises(BadInputError, match="not found"):
        runtime_class(tmp_path / "missing.onnx").open()
    with pytest.raises(BadInputError, match="has no option"):
        runtime_class(tmp_path / "m.onnx", no_such_option=1)
    with pytest.raises(BadInputError, match="option threads must be int or none, got 'abc'"):
        runtime_class(tmp_path / "m.onnx", threads="abc")
    with pytest.raises(BadInputError, match="threads must be a positive integer"):
        runtime_class(tmp_path / "m.onnx", threads=0)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a model" * 50)
    availability = runtime_class.probe()
    expected = BadInputError if availability.available else RuntimeUnavailableError
    with pytest.raises(expected):
        runtime_class(garbage).open()
    with pytest.raises(EdgekitError, match="not open"):
        _ = runtime_class(garbage).inputs
