"""The models the robot-path benchmark (benchmarks/robot_path.py) measures besides zoo exports: the
shapes detector, the reference segmenter and embedder (randomly initialised unless a trained file is
given), and a model with its pre-processing for a 480x640 frame fused into the graph."""

from __future__ import annotations

from pathlib import Path


def detector_model(folder: Path, given: str | None) -> Path:
    if given:
        return Path(given)
    import torch

    from edgekit.exporters.config import ExportConfig
    from edgekit.exporters.torch_onnx import export_module
    from edgekit.train.detector import detector_meta
    from edgekit.zoo.detector import OUTPUT_NAMES, centernet_small

    torch.manual_seed(0)
    target = folder / "detector-random.onnx"
    export_module(centernet_small(3).eval(), detector_meta(("circle", "square", "triangle"), {}), target,
                  ExportConfig(dynamic_batch=True, batch=2), output_names=OUTPUT_NAMES)
    return target


def segmenter_model(folder: Path, given: str | None) -> Path:
    """The reference segmenter (4 classes, 64x64 input; randomly initialised unless ``given``): its
    Predictor returns a class mask at the frame's 640x480 with per-class areas."""
    if given:
        return Path(given)
    import torch

    from edgekit.exporters.config import ExportConfig
    from edgekit.exporters.torch_onnx import export_module
    from edgekit.train.segmenter import OUTPUT_NAME, build_segmenter, segmenter_meta

    torch.manual_seed(0)
    target = folder / "segmenter-random.onnx"
    export_module(build_segmenter(4).eval(), segmenter_meta(("background", "circle", "square", "triangle"), {}),
                  target, ExportConfig(dynamic_batch=True, batch=2), output_names=(OUTPUT_NAME,))
    return target


def embedder_model(folder: Path, given: str | None) -> Path:
    """The reference embedder (16x16 gray input, 128-d vector; randomly initialised unless ``given``):
    its Predictor returns an L2-normalised vector per frame."""
    if given:
        return Path(given)
    import torch

    from edgekit.exporters.config import ExportConfig
    from edgekit.exporters.torch_onnx import export_module
    from edgekit.meta import ModelMeta
    from edgekit.train.embedder import INPUT_SIZE, OUTPUT_NAME, build_embedder

    torch.manual_seed(0)
    target = folder / "embedder-random.onnx"
    meta = ModelMeta(task="embedding", model_name="embedder", input_size=(INPUT_SIZE, INPUT_SIZE), color="GRAY",
                     mean=(0.3,), std=(0.4,), resize="stretch")
    export_module(build_embedder().eval(), meta, target, ExportConfig(dynamic_batch=True, batch=2),
                  output_names=(OUTPUT_NAME,))
    return target


# The resize op each runtime runs fastest in a fused graph (benchmarks/preprocess_routes.py).
FUSED_RESIZE_OP = {"ort-cpu": "resize", "openvino": "gather"}


def fused_model(name: str, plain: Path, runtime: str, folder: Path) -> Path:
    """``plain`` with its pre-processing for a fixed 480x640 RGB frame fused into the graph (the detector
    also with its decoding, the segmenter with its argmax), verified against numpy by ``fuse_model``."""
    from edgekit.exporters.config import FuseConfig
    from edgekit.exporters.fuse import fuse_model

    target = folder / f"{name}-{runtime}-fused.onnx"
    if not target.is_file():
        config = FuseConfig(frame=(480, 640), resize_op=FUSED_RESIZE_OP.get(runtime, "resize"),
                            postprocess=name in ("detector", "segmenter"))
        fuse_model(plain, target, config)
    return target
