"""Bilinear resize (half-pixel centres) as Gather + lerp nodes: ``edgekit fuse --resize-op gather``.

The numpy reference's own algorithm (``edgekit.tasks.preprocess.bilinear``): for each output row
and column the two source indices and weights, gathered from the uint8 frame — so only the pixels
the interpolation reads are gathered and cast to float, never the whole frame. Plain Gather/Mul/Add
run fast everywhere; OpenVINO's CPU Interpolate (what ``Resize`` becomes there) was measured at
4–6 ms for 640×480 → 128 on this machine. Workstation tier (onnx).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from edgekit.exporters.graph_ops import Nodes
from edgekit.tasks.preprocess import bilinear_axis


def fixed_bilinear(nodes: Nodes, frame: str, crop: tuple[int, int, int, int], size: tuple[int, int],
                   channels: int) -> str:
    """Float32 N×h×w×C: ``crop`` (top, left, height, width) of uint8 NHWC ``frame`` resized to ``size``."""
    top, left, height, width = crop
    rows_w, rows0, rows1 = bilinear_axis(height, size[0])
    cols_w, cols0, cols1 = bilinear_axis(width, size[1])
    c = nodes.const
    rows = (c(rows0 + top), c(rows1 + top), c((1 - rows_w).reshape(1, -1, 1, 1), np.float32),
            c(rows_w.reshape(1, -1, 1, 1), np.float32))
    # column weights repeated over the channels: broadcasting a w×1 weight over w×C runs slowly
    # on ONNX Runtime (a loop per pixel), a w×C one is one contiguous block per row
    cols_w = np.repeat(cols_w.reshape(1, 1, -1, 1), channels, axis=3)
    cols = (c(cols0 + left), c(cols1 + left), c(1 - cols_w, np.float32), c(cols_w, np.float32))
    return _lerp(nodes, frame, rows, cols)


def dynamic_bilinear(nodes: Nodes, pixels: str, height: str, width: str, dst_h: str, dst_w: str,
                     channels: int) -> str:
    """The same for a uint8 NHWC tensor whose ``height``/``width`` and target size are int64 [1] tensors."""
    rows = _axis_nodes(nodes, height, dst_h, (1, -1, 1, 1), 1)
    cols = _axis_nodes(nodes, width, dst_w, (1, 1, -1, 1), channels)
    return _lerp(nodes, pixels, rows, cols)


def _lerp(nodes: Nodes, pixels: str, rows: tuple[str, ...], cols: tuple[str, ...]) -> str:
    """Columns first, then rows, in the numpy reference's order."""
    op = nodes.op
    row0, row1, row_w0, row_w1 = rows
    col0, col1, col_w0, col_w1 = cols
    lines = []
    for row in (row0, row1):
        picked = op("Gather", [pixels, row], axis=1)
        left = op("Cast", [op("Gather", [picked, col0], axis=2)], to=TensorProto.FLOAT)
        right = op("Cast", [op("Gather", [picked, col1], axis=2)], to=TensorProto.FLOAT)
        lines.append(op("Add", [op("Mul", [left, col_w0]), op("Mul", [right, col_w1])]))
    return op("Add", [op("Mul", [lines[0], row_w0]), op("Mul", [lines[1], row_w1])])


def _axis_nodes(nodes: Nodes, source: str, target: str, shape: tuple[int, ...], repeat: int) -> tuple[str, ...]:
    """In-graph ``bilinear_axis``: low/high source indices and their weights for ``target`` outputs."""
    c, op = nodes.const, nodes.op
    ratio = op("Div", [op("Cast", [source], to=TensorProto.DOUBLE), op("Cast", [target], to=TensorProto.DOUBLE)])
    ratio = op("Cast", [ratio], to=TensorProto.FLOAT)  # src / dst rounded once, as numpy does
    steps = op("Range", [c(0), op("Squeeze", [target, c([0])]), c(1)])
    coords = op("Sub", [op("Mul", [op("Add", [op("Cast", [steps], to=TensorProto.FLOAT), c(0.5, np.float32)]),
                                   ratio]), c(0.5, np.float32)])
    last = op("Sub", [source, c([1])])
    coords = op("Max", [op("Min", [coords, op("Cast", [last], to=TensorProto.FLOAT)]), c(0.0, np.float32)])
    floor = op("Floor", [coords])
    low = op("Cast", [floor], to=TensorProto.INT64)
    high = op("Min", [op("Add", [low, c(1)]), last])
    weight = op("Reshape", [op("Sub", [coords, floor]), c(list(shape))])
    if repeat > 1:  # over the channels (see fixed_bilinear)
        weight = op("Concat", [weight] * repeat, axis=3)
    return low, high, op("Sub", [c(1.0, np.float32), weight]), weight
