"""``edgekit fuse``: put the preprocessing (and a detector's decoding or a segmenter's argmax) into an edgekit .onnx.

The written model takes uint8 NHWC frames (fixed camera size, or any size) and carries the
original metadata plus ``extra["fused_preprocess"]`` (what was fused, for which frame). Before the
file is kept, the fused model runs on ONNX Runtime on a few frames and is checked against the
numpy reference: the normalized input tensor, the outputs of the original model fed by numpy,
and in-graph decoding against the numpy decoder. Workstation tier (onnx).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from edgekit.deps import require
from edgekit.errors import BadInputError, CheckFailedError
from edgekit.exporters.config import FuseConfig
from edgekit.exporters.graph_ops import Nodes, dims, prepend, upgrade_opset
from edgekit.fileio import atomic_path
from edgekit.meta import ModelMeta, read_meta
from edgekit.parity import ParityReport
from edgekit.tasks.preprocess import FUSED_KEY

FRAME_INPUT = "frame"


@dataclass(frozen=True)
class FuseResult:
    """The written file, its metadata, and how far it is from the numpy reference."""

    path: Path
    meta: ModelMeta
    steps: tuple[str, ...]
    pixel_max_abs: float | None  # normalized-input difference (None: preprocessing not fused)
    parity: ParityReport
    boxes_checked: int = 0  # in-graph decoded boxes (a segmenter: class-map pixels) matched against numpy


def fuse_model(source: str | Path, output: str | Path, config: FuseConfig = FuseConfig(),
               settings: ModelMeta | None = None) -> FuseResult:
    """Write ``output``: ``source`` with ``config``'s steps fused in, verified; ``settings`` stand in
    for the metadata of a model exported without edgekit."""
    check_frame(config.frame)
    onnx = require("onnx", "torch")
    source = Path(source)
    meta = _source_meta(source, settings)
    if config.preprocess and FUSED_KEY in meta.extra:
        raise BadInputError(f"{source} already has fused preprocessing ({meta.extra[FUSED_KEY].get('steps')})")
    model = upgrade_opset(onnx.load(str(source)))
    pre_steps = _fuse_preprocess(model, meta, config) if config.preprocess else []
    new_meta, post_steps = meta, []
    if config.postprocess:
        from edgekit.exporters.fuse_postprocess import append_postprocess

        new_meta, post_steps = append_postprocess(model, meta, config.nms)
    if config.preprocess:
        record = {"frame": list(config.frame) if config.frame else None, "color": config.frame_color,
                  "resize_op": config.resize_op, "dtype": "uint8", "steps": pre_steps,
                  "source_sha256": _sha256(source), "source_input": meta.input_name}
        new_meta = new_meta.with_(input_name=FRAME_INPUT, input_layout="NHWC",
                                  extra={**new_meta.extra, FUSED_KEY: record})
    steps = [*pre_steps, *post_steps]
    from edgekit.exporters.metadata import set_metadata

    set_metadata(model, new_meta)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise CheckFailedError(f"the fused graph is not valid ONNX: {str(exc).splitlines()[0]}") from None
    from edgekit.exporters.fuse_check import verify_fused

    with atomic_path(output) as temporary:
        onnx.save(model, str(temporary))
        check = verify_fused(source, temporary, meta, new_meta, config)
    return FuseResult(Path(output), new_meta, tuple(steps), check.pixel_max_abs, check.parity, check.boxes_checked)


def check_frame(frame: tuple[int, int] | None) -> None:
    """A fixed frame size within the cap of every other size (a larger side allocates tens of GB)."""
    from edgekit.exporters.config import MAX_INPUT_SIDE

    if frame is not None and max(frame) > MAX_INPUT_SIDE:
        raise BadInputError(f"--frame must be at most {MAX_INPUT_SIDE} pixels a side, got {frame[0]}x{frame[1]}")


def _source_meta(source: Path, settings: ModelMeta | None) -> ModelMeta:
    meta = read_meta(source)
    described = meta.task != "unknown" or bool(meta.model_name)
    if settings is not None:
        if described:
            raise BadInputError(f"{source} has edgekit metadata: the preprocessing settings are only for "
                                "models without it")
        return settings
    if not described:
        raise BadInputError(f"{source} has no edgekit metadata: pass the preprocessing settings "
                            "(--resize, --color, --mean, --std) or export it with edgekit")
    return meta


def _fuse_preprocess(model, meta: ModelMeta, config: FuseConfig) -> list[str]:
    from onnx import TensorProto, helper

    from edgekit.exporters.fuse_preprocess import preprocess_nodes

    graph_input = next((value for value in model.graph.input if value.name == meta.input_name), None)
    if graph_input is None:
        raise BadInputError(f"the model has no input '{meta.input_name}' named in its metadata")
    shape = dims(graph_input)
    expected = [meta.channels, *meta.input_size]
    if meta.input_layout != "NCHW" or len(shape) != 4 or any(
            isinstance(dim, int) and dim != want for dim, want in zip(shape[1:], expected)):
        raise BadInputError(f"input '{meta.input_name}' is {shape}, expected N×{expected[0]}×{expected[1]}"
                            f"×{expected[2]} (NCHW) as the metadata says")
    nodes = Nodes("edgekit_preprocess")
    steps = preprocess_nodes(nodes, FRAME_INPUT, meta.input_name, meta, config.frame, config.frame_color,
                             config.resize_op)
    height, width = config.frame or ("height", "width")
    channels = 1 if config.frame_color == "GRAY" else 3
    frame = helper.make_tensor_value_info(FRAME_INPUT, TensorProto.UINT8, [shape[0] or "batch", height, width,
                                                                             channels])
    prepend(model, nodes, frame, meta.input_name)
    return steps


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

