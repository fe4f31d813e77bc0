"""`inspect --layers` reproduces the textbook tables of LeNet-5 and AlexNet; dynamic dims need a shape;
hostile files (huge declared initializers, outside external data) are read without allocating."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit.graph.summary import summarize
from tests.conftest import run_cli


def closed_form_fields(layers: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Receptive field r_l = 1 + Σ_i (k_i − 1)·Π_{j<i} s_j and jump Π s — summed directly, not recurred."""
    out = []
    for last in range(1, len(layers) + 1):
        stack = layers[:last]
        r = 1 + sum((k - 1) * math.prod(s for _, s in stack[:i]) for i, (k, _) in enumerate(stack))
        out.append((r, math.prod(s for _, s in stack)))
    return out


class GraphBuilder:
    """A CNN in onnx.helper; weights as Constant nodes (``constants``) or declared in an external file."""

    def __init__(self, constants: bool, folder=None) -> None:
        self.nodes, self.inits, self.constants, self.folder, self.offset = [], [], constants, folder, 0
        self.rng = np.random.default_rng(0)

    def weight(self, name: str, shape: tuple[int, ...]) -> str:
        if self.constants:
            tensor = numpy_helper.from_array(self.rng.standard_normal(shape).astype(np.float32) * 0.1, name)
            self.nodes.append(helper.make_node("Constant", [], [name], value=tensor))
        else:  # declared in an external file that is never read: no allocation from these dims
            tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(shape))
            tensor.data_location = TensorProto.EXTERNAL
            size = 4 * math.prod(shape)
            for key, value in (("location", "weights.bin"), ("offset", str(self.offset)), ("length", str(size))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            self.offset += size
            self.inits.append(tensor)
        return name

    def conv(self, x, name, cin, cout, k, stride=1, pad=0, groups=1, act="Relu"):
        w = self.weight(f"{name}.w", (cout, cin // groups, k, k))
        b = self.weight(f"{name}.b", (cout,))
        self.nodes.append(helper.make_node("Conv", [x, w, b], [f"{name}.y"], name=name, kernel_shape=[k, k],
                                           strides=[stride] * 2, pads=[pad] * 4, group=groups))
        self.nodes.append(helper.make_node(act, [f"{name}.y"], [f"{name}.a"], name=f"{name}.act"))
        return f"{name}.a"

    def pool(self, x, name, op, k, stride):
        self.nodes.append(helper.make_node(op, [x], [f"{name}.y"], name=name,
                                           kernel_shape=[k, k], strides=[stride] * 2))
        return f"{name}.y"

    def fc(self, x, name, cin, cout, act=None):
        w, b = self.weight(f"{name}.w", (cout, cin)), self.weight(f"{name}.b", (cout,))
        self.nodes.append(helper.make_node("Gemm", [x, w, b], [f"{name}.y"], name=name, transB=1))
        if act is None:
            return f"{name}.y"
        self.nodes.append(helper.make_node(act, [f"{name}.y"], [f"{name}.a"], name=f"{name}.act"))
        return f"{name}.a"

    def save(self, path, x_shape, last):
        self.nodes.insert(0, helper.make_node("Identity", ["x"], ["x0"], name="in"))
        graph = helper.make_graph(self.nodes, "g", [helper.make_tensor_value_info("x", 1, list(x_shape))],
                                  [helper.make_tensor_value_info(last, 1, None)], self.inits)
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        if not self.constants:  # a sparse file of the right length: never read by inspect
            with open(path.parent / "weights.bin", "wb") as stream:
                stream.truncate(self.offset)
        return path


def lenet5(path, batch="batch", size=32):
    g = GraphBuilder(constants=True)
    y = g.conv("x0", "C1", 1, 6, 5, act="Tanh")
    y = g.pool(y, "S2", "AveragePool", 2, 2)
    y = g.conv(y, "C3", 6, 16, 5, act="Tanh")
    y = g.pool(y, "S4", "AveragePool", 2, 2)
    y = g.conv(y, "C5", 16, 120, 5, act="Tanh")
    g.nodes.append(helper.make_node("Flatten", [y], ["flat"], name="flatten"))
    y = g.fc("flat", "F6", 120, 84, act="Tanh")
    y = g.fc(y, "OUT", 84, 10)
    return g.save(path, (batch, 1, size, size) if isinstance(size, int) else (batch, 1, "h", "w"), y)


def alexnet(folder):
    g = GraphBuilder(constants=False)
    y = g.conv("x0", "conv1", 3, 96, 11, stride=4)
    y = g.pool(y, "pool1", "MaxPool", 3, 2)
    y = g.conv(y, "conv2", 96, 256, 5, pad=2, groups=2)
    y = g.pool(y, "pool2", "MaxPool", 3, 2)
    y = g.conv(y, "conv3", 256, 384, 3, pad=1)
    y = g.conv(y, "conv4", 384, 384, 3, pad=1, groups=2)
    y = g.conv(y, "conv5", 384, 256, 3, pad=1, groups=2)
    y = g.pool(y, "pool5", "MaxPool", 3, 2)
    g.nodes.append(helper.make_node("Flatten", [y], ["flat"], name="flatten"))
    y = g.fc("flat", "fc6", 9216, 4096, act="Relu")
    y = g.fc(y, "fc7", 4096, 4096, act="Relu")
    y = g.fc(y, "fc8", 4096, 1000)
    return g.save(folder / "alexnet.onnx", (1, 3, 227, 227), y)


def rows_by_name(summary):
    return {row.name: row for row in summary.layers}


def test_lenet5_textbook_table(tmp_path):
    rows = rows_by_name(summarize(lenet5(tmp_path / "lenet.onnx"), layers=True))
    expected = {  # name: (output shape, parameters, activation)
        "C1": ((6, 28, 28), 156, "Tanh"), "S2": ((6, 14, 14), 0, ""), "C3": ((16, 10, 10), 2416, "Tanh"),
        "S4": ((16, 5, 5), 0, ""), "C5": ((120, 1, 1), 48120, "Tanh"), "F6": ((84,), 10164, "Tanh"),
        "OUT": ((10,), 850, ""),
    }
    for name, (shape, params, act) in expected.items():
        assert rows[name].output_shape == ("batch", *shape), name
        assert rows[name].parameters == params and rows[name].activation == act, name
    assert "C1.act" not in rows  # the activation is folded into its layer's row
    fields = closed_form_fields([(5, 1), (2, 2), (5, 1), (2, 2), (5, 1)])
    for name, (rf, jump) in zip(["C1", "S2", "C3", "S4", "C5"], fields):
        assert rows[name].receptive_field == (rf, rf) and rows[name].jump == (jump, jump), name
    assert [rows[n].receptive_field[0] for n in ("C1", "S2", "C3", "S4", "C5")] == [5, 6, 14, 16, 32]
    assert (rows["C1"].kernel, rows["C1"].stride, rows["C1"].padding, rows["C1"].groups) == ((5, 5), (1, 1), "0", 1)
    assert rows["C1"].macs == 6 * 28 * 28 * 25 and rows["F6"].macs == 120 * 84


def test_alexnet_textbook_table_from_declared_weights(tmp_path):
    summary = summarize(alexnet(tmp_path), layers=True)
    rows = rows_by_name(summary)
    expected = {  # Krizhevsky et al. 2012, 227×227 input, two-GPU groups on conv2/4/5
        "conv1": ((96, 55, 55), 34_944), "pool1": ((96, 27, 27), 0), "conv2": ((256, 27, 27), 307_456),
        "pool2": ((256, 13, 13), 0), "conv3": ((384, 13, 13), 885_120), "conv4": ((384, 13, 13), 663_936),
        "conv5": ((256, 13, 13), 442_624), "pool5": ((256, 6, 6), 0), "fc6": ((4096,), 37_752_832),
        "fc7": ((4096,), 16_781_312), "fc8": ((1000,), 4_097_000),
    }
    for name, (shape, params) in expected.items():
        assert rows[name].output_shape == (1, *shape), name
        assert rows[name].parameters == params, name
    assert summary.parameters == 60_965_224
    assert rows["conv2"].groups == 2 and rows["conv2"].padding == "2" and rows["conv1"].stride == (4, 4)
    spatial = [("conv1", 11, 4), ("pool1", 3, 2), ("conv2", 5, 1), ("pool2", 3, 2), ("conv3", 3, 1),
               ("conv4", 3, 1), ("conv5", 3, 1), ("pool5", 3, 2)]
    fields = closed_form_fields([(k, s) for _, k, s in spatial])
    for (name, _, _), (rf, jump) in zip(spatial, fields):
        assert rows[name].receptive_field == (rf, rf) and rows[name].jump == (jump, jump), name
    assert [rows[n].receptive_field[0] for n, _, _ in spatial] == [11, 19, 51, 67, 99, 131, 163, 195]
    assert rows["conv2"].macs == 256 * 27 * 27 * 48 * 25  # groups halve the per-output fan-in


def test_dynamic_spatial_dims_need_a_shape(tmp_path):
    path = lenet5(tmp_path / "dyn.onnx", size=None)
    summary = summarize(path)
    assert summary.macs is None and summary.flops is None
    assert "need a shape" in summary.macs_note and "--input" in summary.macs_note
    resolved = summarize(path, {"x": (1, 1, 32, 32)}, layers=True)
    assert resolved.macs == sum(row.macs for row in resolved.layers) == 416_520
    fixed_batch_only = summarize(lenet5(tmp_path / "b.onnx"))  # a dynamic batch alone counts per item
    assert fixed_batch_only.macs == 416_520


def test_cli_layers_json_and_dynamic_dims_printed(tmp_path):
    path = lenet5(tmp_path / "lenet.onnx")
    result = run_cli("inspect", str(path), "--layers", "--json", str(tmp_path / "l.json"))
    assert result.returncode == 0, result.stderr
    assert "[batch, 1, 32, 32]" in result.stdout  # issue 9: dynamic dims printed, not eaten as markup
    assert "[batch, 6, 28, 28]" in result.stdout
    import json

    data = json.loads((tmp_path / "l.json").read_text())
    assert [row["name"] for row in data["layers"]][:3] == ["in", "C1", "S2"]
    assert data["layers"][1]["receptive_field"] == [5, 5]
    unresolved = run_cli("inspect", str(lenet5(tmp_path / "d.onnx", size=None)))
    assert unresolved.returncode == 0 and "need a shape" in unresolved.stdout
    bad = run_cli("inspect", str(path), "--input", "y:1x1x32x32")
    assert bad.returncode == 2 and "inputs are x" in bad.stderr


def _huge_initializer_model(path):
    tensor = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[1_000_000, 1_000_000], raw_data=b"\0" * 16)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", 1, ["batch", 1_000_000])],
                              [helper.make_tensor_value_info("y", 1, None)], [tensor])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_huge_declared_initializer_is_never_allocated(tmp_path):
    """Issue 9: a tiny file declaring a 10¹²-element initializer, inspected under a 3 GB address-space cap."""
    path = _huge_initializer_model(tmp_path / "huge.onnx")
    cap = "import resource; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))"
    for extra in ((), ("--layers",)):
        result = run_cli("inspect", str(path), *extra, prelude=cap)
        assert result.returncode == 0, result.stderr[-500:]
        assert "1,000,000,000,000" in result.stdout


def test_outside_external_data_is_not_opened(tmp_path):
    """Issue 9: external data pointing outside the model's folder: no ValidationError, the file is never read."""
    tensor = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4, 4])
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../../etc/passwd"
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", 1, [1, 4])],
                              [helper.make_tensor_value_info("y", 1, None)], [tensor])
    folder = tmp_path / "m"
    folder.mkdir()
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(folder / "ext.onnx"))
    result = run_cli("inspect", str(folder / "ext.onnx"), "--layers")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "parameters 16 (16)" in result.stdout


def test_an_upsampling_decoder_divides_the_jump_and_grows_the_field(tmp_path):
    """Conv k3 s2 → ConvTranspose k2 s2 → bilinear Resize ×2 → Conv k3: the jump goes 2 → 1 → 0.5 → 0.5
    input pixels, the field 3 → 3 (each output reads one input) → 4 (two) → 5 (r += (k−1)·j)."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name) for name, shape in
               (("w1", (8, 3, 3, 3)), ("wt", (8, 8, 2, 2)), ("w2", (2, 8, 3, 3)))]
    scales = numpy_helper.from_array(np.float32([1, 1, 2, 2]), "scales")
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="down", kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("ConvTranspose", ["a", "wt"], ["b"], name="up_t", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Resize", ["b", "", "scales"], ["c"], name="up_bilinear", mode="linear"),
             helper.make_node("Conv", ["c", "w2"], ["y"], name="head", kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "decoder", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [*weights, scales])
    path = tmp_path / "decoder.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    rows = rows_by_name(summarize(path, layers=True))
    shapes = {name: rows[name].output_shape[2:] for name in rows}
    assert shapes == {"down": (16, 16), "up_t": (32, 32), "up_bilinear": (64, 64), "head": (64, 64)}
    fields = {name: (rows[name].receptive_field, rows[name].jump) for name in rows}
    assert fields == {"down": ((3, 3), (2, 2)), "up_t": ((3, 3), (1, 1)), "up_bilinear": ((4, 4), (0.5, 0.5)),
                      "head": ((5, 5), (0.5, 0.5))}
    result = run_cli("inspect", str(path), "--layers")
    assert result.returncode == 0 and "0.5x0.5" in result.stdout, result.stderr


def test_a_squeeze_excite_block_keeps_the_feature_maps_jump_and_weight_aliases_are_no_rows(tmp_path):
    """Conv k3 s2 → SE (global pool, 1×1 conv, sigmoid) → Mul → Conv k3 s1: the Mul sees the whole
    16×16 map (field 3 + 15·2 = 33) but steps 2 pixels like the map it scales, so the last conv adds
    (3−1)·2 (not a whole-map jump of 32 compounding block after block). The 1×1 conv's weight reaches
    it through an Identity (as torch's exporter writes shared weights): no row, its 64 weights counted."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name) for name, shape in
               (("w1", (8, 3, 3, 3)), ("w_se", (8, 8, 1, 1)), ("w2", (4, 8, 3, 3)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="down", kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Identity", ["w_se"], ["w_se_alias"], name="alias"),
             helper.make_node("GlobalAveragePool", ["a"], ["g"], name="squeeze"),
             helper.make_node("Conv", ["g", "w_se_alias"], ["e"], name="excite", kernel_shape=[1, 1]),
             helper.make_node("Sigmoid", ["e"], ["s"], name="gate"),
             helper.make_node("Mul", ["a", "s"], ["m"], name="scale"),
             helper.make_node("Conv", ["m", "w2"], ["y"], name="next", kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "se", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], weights)
    path = tmp_path / "se.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    rows = rows_by_name(summarize(path, layers=True))
    assert "alias" not in rows and rows["excite"].parameters == 64
    fields = {name: (rows[name].receptive_field, rows[name].jump) for name in ("down", "squeeze", "scale", "next")}
    assert fields == {"down": ((3, 3), (2, 2)), "squeeze": ((33, 33), (32, 32)), "scale": ((33, 33), (2, 2)),
                      "next": ((37, 37), (2, 2))}


def test_a_custom_op_without_an_inferred_shape_passes_the_field_on(tmp_path):
    """Shape inference cannot see through a custom-domain op; the field goes on through it (3 → 3 → 5)
    rather than stopping for every later row."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w1"),
               numpy_helper.from_array(rng.normal(size=(4, 4, 3, 3)).astype(np.float32), "w2")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="first", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("MyAct", ["a"], ["b"], name="custom", domain="com.example"),
             helper.make_node("Conv", ["b", "w2"], ["y"], name="second", kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "custom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    rows = rows_by_name(summarize(path, layers=True))
    assert [rows[name].receptive_field for name in ("first", "custom", "second")] == [(3, 3), (3, 3), (5, 5)]
