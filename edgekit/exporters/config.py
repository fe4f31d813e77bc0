"""Export settings and results (plain values, no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import BadInputError
from edgekit.limits import MAX_INPUT_SIDE
from edgekit.meta import ModelMeta
from edgekit.parity import ParityReport, check_tolerance

MIN_OPSET, MAX_OPSET = 9, 20


@dataclass(frozen=True)
class ExportConfig:
    """How to export: opset, batch (fixed or dynamic), input size, validation tolerance."""

    opset: int = 17
    batch: int = 1
    dynamic_batch: bool = False
    input_size: tuple[int, int] | None = None
    atol: float = 1e-4
    rtol: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise BadInputError(f"opset must be between {MIN_OPSET} and {MAX_OPSET}, got {self.opset}")
        if self.batch < 1:
            raise BadInputError(f"batch must be at least 1, got {self.batch}")
        check_tolerance(self.atol, self.rtol)
        if self.input_size is not None and not all(1 <= side <= MAX_INPUT_SIDE for side in self.input_size):
            raise BadInputError(f"input size must be 1 to {MAX_INPUT_SIDE} pixels a side, got {self.input_size}")


@dataclass(frozen=True)
class ExportResult:
    """The written file, the metadata it carries and how it compared to torch."""

    path: Path
    meta: ModelMeta
    parity: ParityReport
    boxes: Any = None  # detectors: BoxAgreement of the decoded detections (the verdict when raw tensors differ)

    @property
    def summary(self) -> str:
        return self.boxes.summary() if self.boxes is not None else self.parity.summary()


def parse_input_size(text: str) -> tuple[int, int]:
    """Parse '224', '224x224' or '224,224' into (height, width)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        sizes = [int(part) for part in parts if part.strip()]
    except ValueError:
        sizes = []
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or min(sizes) < 1:
        raise BadInputError(f"input size must look like 224 or 224x224, got '{text}'")
    if max(sizes) > MAX_INPUT_SIDE:
        raise BadInputError(f"input size must be at most {MAX_INPUT_SIDE} pixels a side, got '{text}'")
    return sizes[0], sizes[1]


FRAME_COLORS = ("RGB", "BGR", "GRAY")
RESIZE_OPS = ("resize", "gather")  # ONNX Resize, or bilinear as Gather + lerp nodes


@dataclass(frozen=True)
class FuseConfig:
    """What ``edgekit fuse`` puts into the graph: preprocessing for frames of ``frame`` (h, w;
    None: any size) in ``frame_color`` order, and/or the detector's decoding (+ NMS); and the
    tolerances of the check against the numpy reference (normalized pixels, then outputs)."""

    preprocess: bool = True
    frame: tuple[int, int] | None = None
    frame_color: str = "RGB"
    resize_op: str = "resize"
    postprocess: bool = False
    nms: bool = False
    pixel_atol: float = 1e-3
    atol: float = 1e-3
    rtol: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.frame_color not in FRAME_COLORS:
            raise BadInputError(f"frame colour must be one of {', '.join(FRAME_COLORS)}, got '{self.frame_color}'")
        if self.resize_op not in RESIZE_OPS:
            raise BadInputError(f"resize op must be one of {', '.join(RESIZE_OPS)}, got '{self.resize_op}'")
        if self.frame is not None and min(self.frame) < 1:
            raise BadInputError(f"frame size must be positive, got {self.frame}")
        if not (self.preprocess or self.postprocess):
            raise BadInputError("nothing to fuse: ask for the preprocessing and/or --postprocess")
        if self.nms and not self.postprocess:
            raise BadInputError("--nms needs --postprocess (NMS runs on the decoded boxes)")
        check_tolerance(self.atol, self.rtol)
        check_tolerance(self.pixel_atol, 0.0)


def parse_frame(text: str) -> tuple[int, int] | None:
    """Parse a camera frame size '480x640' (height x width) or 'dynamic' (any size: None)."""
    import re

    text = text.strip().lower()
    if text == "dynamic":
        return None
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise BadInputError(f"--frame must look like 480x640 (height x width) or 'dynamic', got '{text}'")
    return int(match[1]), int(match[2])
