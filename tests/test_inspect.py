"""Parameter and MAC counts from the graph match the published figures within 2 %."""

import pytest

from conftest import zoo_params

from edgekit.graph.summary import summarize

# name: (parameters, MACs at 224x224 or None)
PUBLISHED = {
    "lenet5": (61_706, None),
    "alexnet": (61.1e6, 0.714e9),
    "resnet18": (11.69e6, 1.82e9),
    "resnet50": (25.56e6, 4.1e9),
    "vgg16": (138.4e6, 15.5e9),
    "mobilenet_v2": (3.50e6, 0.30e9),
}


@pytest.mark.parametrize("name", zoo_params(PUBLISHED))
def test_counts_match_published_figures(zoo_onnx, name):
    params, macs = PUBLISHED[name]
    size = None if name == "lenet5" else (224, 224)
    summary = summarize(zoo_onnx(name, input_size=size).path)
    assert summary.parameters == pytest.approx(params, rel=0.02)
    if macs is not None:
        assert summary.macs == pytest.approx(macs, rel=0.02)
        assert summary.flops == 2 * summary.macs


def test_summary_describes_io_ops_and_metadata(zoo_onnx):
    summary = summarize(zoo_onnx("resnet18", dynamic_batch=True).path)
    assert summary.inputs[0].shape == ("batch", 3, 64, 64)
    assert summary.outputs[0].shape == ("batch", 1000)
    assert summary.opsets["ai.onnx"] == 17
    assert summary.op_histogram["Conv"] == 20 and summary.op_histogram["Gemm"] == 1
    assert summary.meta.model_name == "resnet18"
    assert summary.file_size_bytes > 40e6
