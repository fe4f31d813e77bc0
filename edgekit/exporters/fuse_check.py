"""The check a fused model must pass before ``edgekit fuse`` keeps it (ONNX Runtime, a few frames).

1. the graph's normalized input tensor equals the numpy route's (``pixel_atol``);
2. its outputs equal the original model's fed by the numpy route (``atol``/``rtol``);
3. in-graph decoding gives the numpy decoder's boxes (IoU ≥ 0.99, scores within 1e-4), or a
   segmenter's class map, pixel for pixel.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.errors import CheckFailedError
from edgekit.exporters.config import FuseConfig
from edgekit.meta import ModelMeta
from edgekit.parity import ParityReport, compare_fp32

CHECK_FRAMES = ((480, 640), (360, 270), (97, 131))  # dynamic frames: landscape, portrait, upsampled
BOX_IOU, SCORE_ATOL = 0.99, 1e-4


@dataclass(frozen=True)
class FuseCheck:
    pixel_max_abs: float | None
    parity: ParityReport
    boxes_checked: int  # a segmenter: class-map pixels


def check_frames(frame: tuple[int, int] | None, color: str, seed: int = 0) -> list[np.ndarray]:
    """Deterministic uint8 frames with smooth structure and noise (edges stress the resize)."""
    rng = np.random.default_rng(seed)
    frames = []
    for index, (height, width) in enumerate([frame] * 3 if frame else CHECK_FRAMES):
        y, x = np.mgrid[:height, :width].astype(np.float32)
        channels = []
        for channel in range(1 if color == "GRAY" else 3):
            wave = np.sin(x / (9 + 4 * channel) + index) * np.cos(y / (13 + 3 * channel))
            channels.append(127 + 90 * wave + rng.normal(0, 25, (height, width)))
        frames.append(np.stack(channels, axis=2).clip(0, 255).astype(np.uint8))
    return frames


def verify_fused(source: Path, fused: Path, meta: ModelMeta, new_meta: ModelMeta, config: FuseConfig) -> FuseCheck:
    """Run ``fused`` (with its intermediate tensors exposed) and ``source`` on ``check_frames``."""
    import onnx
    from onnx import helper

    from edgekit.runtimes import open_runtime
    from edgekit.tasks.preprocess import preprocess_images

    model = onnx.load(str(fused))
    raw = _raw_outputs(meta, new_meta) if config.postprocess else []
    exposed = ([meta.input_name] if config.preprocess else []) + raw
    for name in exposed:
        model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    reference, candidate, pixel_diffs, decoded = {}, {}, [], []
    with tempfile.TemporaryDirectory(prefix="edgekit-fuse-") as folder:
        probe = Path(folder) / "check.onnx"
        onnx.save(model, str(probe))
        with open_runtime("ort-cpu", source) as plain, open_runtime("ort-cpu", probe) as graph:
            batch = plain.inputs[meta.input_name].shape[0]
            for frame in check_frames(config.frame, config.frame_color, config.seed):
                tensor, _ = preprocess_images([frame], meta, color=config.frame_color, route="numpy")
                feed = frame[None] if config.preprocess else tensor
                outputs = graph.run({new_meta.input_name: _batched(feed, batch)})
                expected = plain.run({meta.input_name: _batched(tensor, batch)})
                if config.preprocess:
                    pixel_diffs.append(float(np.abs(outputs[meta.input_name][:1] - tensor).max()))
                for name, value in expected.items():
                    if name in outputs:
                        reference.setdefault(name, []).append(value[:1])
                        candidate.setdefault(name, []).append(outputs[name][:1])
                if config.postprocess:
                    decoded.append({name: value[:1] for name, value in outputs.items()})
    parity = compare_fp32({k: np.concatenate(v) for k, v in reference.items()},
                             {k: np.concatenate(v) for k, v in candidate.items()}, config.atol, config.rtol)
    pixel = max(pixel_diffs) if pixel_diffs else None
    if pixel is not None and pixel > config.pixel_atol:
        raise CheckFailedError(f"fused preprocessing differs from the numpy reference by {pixel:.3g} "
                               f"(tolerance {config.pixel_atol:g}), file not written")
    if not parity.passed:
        raise CheckFailedError(f"fused model does not match the original fed by numpy, file not written: "
                               f"{parity.summary()}")
    check = _check_class_map if meta.task == "segmentation" else _check_decoding
    checked = sum(check(outputs, meta, new_meta) for outputs in decoded)
    return FuseCheck(pixel, parity, checked)


def _raw_outputs(meta: ModelMeta, new_meta: ModelMeta) -> list[str]:
    """The original outputs the in-graph decoding reads (exposed to check it against the numpy decoder)."""
    if meta.task == "segmentation":
        return [new_meta.extra["class_map"]["in_graph_from"]]
    return list(meta.extra.get("decoder", {}).get("outputs", ()))


def _check_class_map(outputs: dict[str, np.ndarray], meta: ModelMeta, new_meta: ModelMeta) -> int:
    """The in-graph class map against the numpy argmax of the same scores: every pixel equal; returns pixels."""
    from edgekit.tasks.segmentation import class_maps

    record = new_meta.extra["class_map"]
    scores = outputs[record["in_graph_from"]]
    expected, _ = class_maps((record["in_graph_from"], scores), len(meta.labels))
    actual = outputs[record["output"]]
    if actual.shape != expected.shape or actual.dtype != np.uint8:
        raise CheckFailedError(f"in-graph class map is {actual.dtype} {actual.shape}, expected uint8 "
                               f"{expected.shape}; file not written")
    differ = int(np.count_nonzero(actual != expected))
    if differ:
        raise CheckFailedError(f"in-graph argmax differs from the numpy decoder at {differ} of {expected.size} "
                               "pixels; file not written")
    return int(expected.size)


def _batched(array: np.ndarray, batch) -> np.ndarray:
    return np.repeat(array, batch, axis=0) if isinstance(batch, int) and batch > 1 else array


def _check_decoding(outputs: dict[str, np.ndarray], meta: ModelMeta, new_meta: ModelMeta) -> int:
    """In-graph boxes against the numpy decoder on the same raw outputs; returns boxes matched."""
    from edgekit.tasks.detection import DetectionTask

    decoder, settings = DetectionTask().decoder(meta)
    top_scores = decoder.decode(outputs, settings)[0][1]
    # every peak above the top-k cut: cells tied at the cut (plateaus, zeros) may be picked in any order
    cut = float(top_scores.min()) if len(top_scores) >= settings["max_detections"] else 0.0
    task = DetectionTask(score_threshold=float(np.nextafter(np.float32(cut), np.float32(1))))
    transform = _identity_transform()
    expected = task.postprocess(outputs, meta, [transform])[0]
    actual = task.postprocess(outputs, new_meta, [transform])[0]
    matched, worst_iou, worst_score = match_detections(expected, actual)
    if matched != len(expected) or len(actual) != len(expected) or worst_iou < BOX_IOU or worst_score > SCORE_ATOL:
        raise CheckFailedError(
            f"in-graph decoding differs from the numpy decoder: {matched}/{len(expected)} boxes matched "
            f"({len(actual)} found), worst IoU {worst_iou:.4f}, worst score diff {worst_score:.2g}; file not written")
    return matched


def _identity_transform():
    from edgekit.tasks.preprocess import ImageTransform

    return ImageTransform(1.0, 1.0, 0.0, 0.0, (1 << 20, 1 << 20))


def match_detections(expected, actual, min_iou: float = BOX_IOU) -> tuple[int, float, float]:
    """One-to-one match of two ``Detection``s: same label, IoU ≥ ``min_iou``, closest score first
    (plateau peaks give near-identical boxes); then tied alternatives (same label and score).
    Returns (matched, worst IoU, worst score difference among the IoU matches)."""
    from edgekit.tasks.boxes import box_iou

    used = np.zeros(len(actual), dtype=bool)
    matched_rows = np.zeros(len(expected), dtype=bool)
    matched, worst_iou, worst_score = 0, 1.0, 0.0
    ious = box_iou(expected.boxes, actual.boxes) if len(expected) and len(actual) else np.zeros((len(expected), 0))
    for row in range(len(expected)):
        fits = ~used & (actual.labels == expected.labels[row]) & (ious[row] >= min_iou)
        if not fits.any():
            continue
        gaps = np.where(fits, np.abs(actual.scores - expected.scores[row]), np.inf)
        best = int(np.argmin(gaps))
        used[best] = matched_rows[row] = True
        matched += 1
        worst_iou = min(worst_iou, float(ious[row, best]))
        worst_score = max(worst_score, float(gaps[best]))
    return matched + _tied_alternatives(expected, actual, used, matched_rows), worst_iou, worst_score


def _tied_alternatives(expected, actual, used: np.ndarray, matched_rows: np.ndarray) -> int:
    """Unmatched pairs with one label and one score: greedy NMS kept the other of two tied boxes
    (adjacent cells of a plateau), an ambiguity of NMS rather than a decoding difference."""
    count = 0
    for row in np.flatnonzero(~matched_rows):
        same = ~used & (actual.labels == expected.labels[row]) & (np.abs(actual.scores - expected.scores[row]) <= 1e-6)
        if same.any():
            used[int(np.argmax(same))] = True
            count += 1
    return count
