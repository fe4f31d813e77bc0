"""fuse builds edgekit's own pre-processing and CenterNet head into the graph: a model whose letterbox or
head follows another convention is refused in one line (host decoding still serves it), not fused wrongly."""

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgekit.errors import BadInputError
from edgekit.exporters.config import FuseConfig
from edgekit.exporters.fuse import fuse_model
from edgekit.exporters.metadata import update_file


def _centernet_head(path):
    """A 3x16x16 image → heatmap (3 classes), size and offset maps at stride 4."""
    rng = np.random.default_rng(0)
    nodes, weights = [], []
    for name, channels in (("heatmap", 3), ("size", 2), ("offset", 2)):
        weights.append(numpy_helper.from_array(rng.normal(0, 0.1, (channels, 3, 4, 4)).astype(np.float32), f"w_{name}"))
        nodes.append(helper.make_node("Conv", ["input", f"w_{name}"], [name], strides=[4, 4]))
    graph = helper.make_graph(nodes, "head", [helper.make_tensor_value_info("input", 1, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info(n, 1, [1, c, 4, 4])
                               for n, c in (("heatmap", 3), ("size", 2), ("offset", 2))], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("changes, fragment", [
    ({"letterbox": {"align": "top-left", "pad_value": 0}}, "pre-process on the host instead"),
    ({"decoder": {"type": "centernet", "size_order": "hw"}}, "conventions size_order"),
    ({"decoder": {"type": "centernet", "offset_order": "yx", "cell_offset": 0.5}}, "offset_order, cell_offset"),
])
def test_foreign_conventions_are_refused_by_fuse(tmp_path, changes, fragment):
    model = _centernet_head(tmp_path / "m.onnx")
    update_file(model, {"task": "detection", "resize": "letterbox", "labels": "a,b,c", "input_size": [16, 16],
                        **changes})
    postprocess = "decoder" in changes
    with pytest.raises(BadInputError, match=fragment):
        fuse_model(model, tmp_path / "out.onnx", FuseConfig(preprocess=not postprocess, postprocess=postprocess))
    assert not (tmp_path / "out.onnx").exists()
