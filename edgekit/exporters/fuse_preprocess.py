"""ONNX nodes that turn a uint8 NHWC frame into the model's normalized NCHW input.

Same steps and geometry as the numpy reference (``edgekit.tasks.preprocess``): crop (center-crop:
only the surviving source region is resized), ``Resize`` linear/half_pixel/antialias 0 (OpenCV's
INTER_LINEAR), ``Pad`` with the letterbox fill, colour order, mean/std, NHWC→NCHW. A fixed frame
gets its geometry computed here; a dynamic one computes it in the graph (Shape → int64 arithmetic,
the same integer formulas as ``plan_geometry``). Workstation tier (onnx).
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import BadInputError
from edgekit.exporters.graph_ops import Nodes
from edgekit.meta import ModelMeta
from edgekit.tasks.preprocess import CROP_FRACTION, GRAY_WEIGHTS, LETTERBOX_FILL, plan_geometry


def preprocess_nodes(nodes: Nodes, frame: str, output: str, meta: ModelMeta, size: tuple[int, int] | None,
                     frame_color: str, resize_op: str = "resize") -> list[str]:
    """Add the nodes from ``frame`` (N×H×W×C uint8) to ``output``; returns the steps, in words.

    ``resize_op``: ``resize`` (ONNX Resize) or ``gather`` (Gather + lerp, ``fuse_bilinear``)."""
    from edgekit.tasks.preprocess import DEFAULT_LETTERBOX, letterbox_of

    if meta.resize == "letterbox" and letterbox_of(meta) != DEFAULT_LETTERBOX:
        raise BadInputError(f"the fused pre-processing letterboxes centred with fill {DEFAULT_LETTERBOX.pad_value:g} "
                            f"and scales up; this model's letterbox is {letterbox_of(meta)}: pre-process on the "
                            "host instead (fuse --no-preprocess)")
    steps: list[str] = []
    channels = 1 if frame_color == "GRAY" else 3  # of the frame: colour is converted after resizing
    if size is not None:
        pixels = _fixed_geometry(nodes, frame, meta, size, steps, resize_op, channels)
    else:
        pixels = _dynamic_geometry(nodes, frame, meta, steps, resize_op, channels)
    pixels = _colour(nodes, pixels, frame_color, meta.color, steps)
    # layout first: per-channel constants then broadcast over whole H×W planes (ORT is slow at
    # broadcasting a 3-vector along the innermost axis)
    pixels = nodes.op("Transpose", [pixels], perm=[0, 3, 1, 2])
    shape = (1, meta.channels, 1, 1)
    mean = np.asarray(meta.mean, np.float32).reshape(shape) * np.float32(255.0)
    std = np.asarray(meta.std, np.float32).reshape(shape) * np.float32(255.0)
    pixels = nodes.op("Sub", [pixels, nodes.const(mean, np.float32, "mean")])
    nodes.op("Div", [pixels, nodes.const(std, np.float32, "std")], output)
    steps += ["NHWC->NCHW", f"normalize(mean={list(meta.mean)}, std={list(meta.std)})"]
    return steps


def _resize(nodes: Nodes, pixels: str, height_width: str) -> str:
    """Resize H and W of an NHWC tensor; full-rank sizes (no ``axes``) for the widest runtime support."""
    shape = nodes.op("Shape", [pixels])
    sizes = nodes.op("Concat", [nodes.op("Slice", [shape, nodes.const([0]), nodes.const([1])]), height_width,
                                nodes.op("Slice", [shape, nodes.const([3]), nodes.const([4])])], axis=0)
    return nodes.op("Resize", [pixels, "", "", sizes], mode="linear", coordinate_transformation_mode="half_pixel",
                    antialias=0)


def _pad(nodes: Nodes, pixels: str, top: str, left: str, bottom: str, right: str) -> str:
    """Pad H and W of an NHWC tensor with the letterbox fill (full-rank pads, no ``axes``)."""
    zero = nodes.const([0])
    pads = nodes.op("Concat", [zero, top, left, zero, zero, bottom, right, zero], axis=0)
    return nodes.op("Pad", [pixels, pads, nodes.const(float(LETTERBOX_FILL), np.float32)])


def _fixed_geometry(nodes: Nodes, frame: str, meta: ModelMeta, size: tuple[int, int], steps: list[str],
                    resize_op: str, channels: int) -> str:
    geometry = plan_geometry(size, meta.input_size, meta.resize)
    top, left, height, width = geometry.crop
    resizing = geometry.resized != (height, width)
    if resize_op == "gather" and resizing:
        from edgekit.exporters.fuse_bilinear import fixed_bilinear

        pixels = fixed_bilinear(nodes, frame, geometry.crop, geometry.resized, channels)
        steps.append(f"crop+resize(top={top}, left={left}, {height}x{width} to "
                     f"{geometry.resized[0]}x{geometry.resized[1]}, bilinear half_pixel as Gather + lerp)")
    else:
        pixels = frame
        if (height, width) != tuple(size):
            pixels = nodes.op("Slice", [frame, nodes.const([top, left]), nodes.const([top + height, left + width]),
                                        nodes.const([1, 2])])
            steps.append(f"crop(top={top}, left={left}, height={height}, width={width})")
        pixels = nodes.op("Cast", [pixels], to=1)  # float32
        if resizing:
            pixels = _resize(nodes, pixels, nodes.const(list(geometry.resized)))
            steps.append(f"resize({geometry.resized[0]}x{geometry.resized[1]}, linear, half_pixel)")
    if geometry.resized != geometry.size:
        pad_top, pad_left = geometry.pad
        bottom = geometry.size[0] - geometry.resized[0] - pad_top
        right = geometry.size[1] - geometry.resized[1] - pad_left
        c = nodes.const
        pixels = _pad(nodes, pixels, c([pad_top]), c([pad_left]), c([bottom]), c([right]))
        steps.append(f"pad(top={pad_top}, left={pad_left}, bottom={bottom}, right={right}, value={LETTERBOX_FILL})")
    return pixels


def _resize_to(nodes: Nodes, pixels: str, source: tuple[str, str], target: tuple[str, str], resize_op: str,
               channels: int) -> str:
    """uint8 NHWC ``pixels`` of int64 [1] ``source`` (h, w) → float32 at ``target`` (h, w)."""
    if resize_op == "gather":
        from edgekit.exporters.fuse_bilinear import dynamic_bilinear

        return dynamic_bilinear(nodes, pixels, *source, *target, channels)
    pixels = nodes.op("Cast", [pixels], to=1)
    return _resize(nodes, pixels, nodes.op("Concat", list(target), axis=0))


def _dynamic_geometry(nodes: Nodes, frame: str, meta: ModelMeta, steps: list[str], resize_op: str,
                      channels: int) -> str:
    """The geometry of ``plan_geometry`` in int64 graph arithmetic on the frame's shape."""
    shape = nodes.op("Shape", [frame])
    height = nodes.op("Slice", [shape, nodes.const([1]), nodes.const([2])])
    width = nodes.op("Slice", [shape, nodes.const([2]), nodes.const([3])])
    dst_h, dst_w = (int(v) for v in meta.input_size)
    c = nodes.const
    op = nodes.op

    def div(a: str, b: str) -> str:  # both non-negative: integer Div truncates = floors
        return op("Div", [a, b])

    pixels, source = frame, (height, width)
    how = "bilinear half_pixel as Gather + lerp" if resize_op == "gather" else "linear, half_pixel"
    if meta.resize == "center-crop":
        num, den = CROP_FRACTION
        side = op("Mul", [op("Min", [height, width]), c([num])])
        longest = c([den * max(dst_h, dst_w)])
        crop_h = op("Max", [op("Min", [height, div(op("Mul", [side, c([dst_h])]), longest)]), c([1])])
        crop_w = op("Max", [op("Min", [width, div(op("Mul", [side, c([dst_w])]), longest)]), c([1])])
        top = div(op("Sub", [height, crop_h]), c([2]))
        left = div(op("Sub", [width, crop_w]), c([2]))
        starts = op("Concat", [top, left], axis=0)
        ends = op("Concat", [op("Add", [top, crop_h]), op("Add", [left, crop_w])], axis=0)
        pixels, source = op("Slice", [frame, starts, ends, c([1, 2])]), (crop_h, crop_w)
        steps.append("crop(center, 7/8 of the shorter side, computed in-graph)")
    if meta.resize != "letterbox":
        steps.append(f"resize({dst_h}x{dst_w}, {how})")
        return _resize_to(nodes, pixels, source, (c([dst_h]), c([dst_w])), resize_op, channels)
    # letterbox: scale to fit, rounded half up, centred
    width_limits = op("LessOrEqual", [op("Mul", [c([dst_w]), height]), op("Mul", [c([dst_h]), width])])
    fit_h = div(op("Add", [op("Mul", [c([2 * dst_w]), height]), width]), op("Mul", [c([2]), width]))
    fit_w = div(op("Add", [op("Mul", [c([2 * dst_h]), width]), height]), op("Mul", [c([2]), height]))
    new_h = op("Max", [op("Where", [width_limits, fit_h, c([dst_h])]), c([1])])
    new_w = op("Max", [op("Where", [width_limits, c([dst_w]), fit_w]), c([1])])
    pixels = _resize_to(nodes, pixels, source, (new_h, new_w), resize_op, channels)
    spare_h, spare_w = op("Sub", [c([dst_h]), new_h]), op("Sub", [c([dst_w]), new_w])
    pad_top, pad_left = div(spare_h, c([2])), div(spare_w, c([2]))
    pixels = _pad(nodes, pixels, pad_top, pad_left, op("Sub", [spare_h, pad_top]), op("Sub", [spare_w, pad_left]))
    steps += [f"resize(fit, {how}, computed in-graph)", f"pad(centre, value={LETTERBOX_FILL})"]
    return pixels


def _colour(nodes: Nodes, pixels: str, frame_color: str, model_color: str, steps: list[str]) -> str:
    """Frame channels → the model's colour order, on the resized image (cheaper; linear, so equal)."""
    if model_color == "GRAY":
        if frame_color == "GRAY":
            return pixels
        weights = GRAY_WEIGHTS[::-1] if frame_color == "BGR" else GRAY_WEIGHTS
        steps.append(f"{frame_color}->GRAY")
        return nodes.op("MatMul", [pixels, nodes.const(np.reshape(weights, (3, 1)), np.float32, "gray")])
    if frame_color == "GRAY":
        steps.append(f"GRAY->{model_color}")
        return nodes.op("Concat", [pixels, pixels, pixels], axis=3)
    if frame_color != model_color:
        steps.append(f"{frame_color}->{model_color}")
        return nodes.op("Gather", [pixels, nodes.const([2, 1, 0])], axis=3)
    return pixels
