"""RetinaFace as biubug6/Pytorch_Retinaface exports it: anchor boxes, two-way scores and 5 landmarks.

Outputs (``outputs`` names them in this order; by default the outputs named ``loc``, ``conf`` and
``landms``, else, as its ``convert_to_onnx.py`` names only the first, the ones whose last dim is 4, 2, 10):

- ``loc`` [N, A, 4]: offsets (dx, dy, dw, dh) from the priors;
- ``conf`` [N, A, 2]: background, face (softmax in the test-phase graph; ``score_activation: softmax``
  for raw logits); more columns are more classes after the background;
- ``landms`` [N, A, 10]: 5 × (dx, dy) from the prior's centre.

The priors are not an output: they come from the input size as its ``PriorBox`` makes them. Per step s
(``steps`` [8, 16, 32]) a ceil(H/s) × ceil(W/s) grid, row-major, and per cell one prior for each of the
level's ``min_sizes`` ([[16, 32], [64, 128], [256, 512]]): centre ((j + 0.5)·s/W, (i + 0.5)·s/H), size
(m/W, m/H), clamped to [0, 1] when ``clip``. Boxes: centre + offset · v0 · prior size, size ·
exp(offset · v1) with ``variances`` [v0, v1] = [0.1, 0.2]; landmarks: centre + offset · v0 · prior size;
all normalised, then × (W, H). NMS follows in DetectionTask: agnostic at IoU 0.4 (its ``nms_threshold``),
the best ``candidates`` (its ``top_k`` 5000) first.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.tasks.decoders.base import Decoded, Decoder, number
from edgekit.tasks.decoders.ssd import decode_priors
from edgekit.tasks.decoders.yolo import shape_text

KINDS = ("loc", "conf", "landms")  # what each of ``outputs`` is, in order


class RetinaFaceDecoder(Decoder):
    """Prior-relative boxes and landmarks with two-way (background, face) scores → faces with 5 points."""

    name: ClassVar[str] = "retinaface"
    defaults: ClassVar[dict[str, Any]] = {"outputs": None, "min_sizes": [[16, 32], [64, 128], [256, 512]],
                                          "steps": [8, 16, 32], "variances": [0.1, 0.2], "clip": False,
                                          "score_activation": "none", "candidates": 5000, "nms": "agnostic",
                                          "iou_threshold": 0.4}
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {"score_activation": ("none", "softmax"), "clip": (True, False)}

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> None:
        super().check_settings(settings)
        if "steps" in settings or "min_sizes" in settings:  # one given: it must fit the other's default
            levels = {**cls.defaults, **settings}
            _min_sizes(levels, len(_steps(levels)))
        if "variances" in settings:
            _variances(settings)
        if "candidates" in settings:
            number(settings, "candidates", positive=True)

    def decode(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> list[Decoded]:
        loc, conf, landms = self.outputs_of(outputs, settings)
        height, width = (int(v) for v in settings["input_size"])
        steps = _steps(settings)
        sizes = _min_sizes(settings, len(steps))
        priors = retinaface_priors(height, width, tuple(steps), tuple(map(tuple, sizes)), bool(settings["clip"]))
        if loc.shape[1] != len(priors):
            grids = ", ".join(f"{-(-height // s)}x{-(-width // s)}×{len(m)}" for s, m in zip(steps, sizes))
            raise BadInputError(f"retinaface decoder: the outputs have {loc.shape[1]} rows, but decoder.min_sizes "
                                f"{sizes} at decoder.steps {steps} give {len(priors)} priors at input "
                                f"{height}x{width} ({grids}): check decoder.steps and decoder.min_sizes")
        scores = conf.astype(np.float32)
        if settings["score_activation"] == "softmax":
            scores = np.exp(scores - scores.max(axis=2, keepdims=True))
            scores /= scores.sum(axis=2, keepdims=True)
        scores = scores[..., 1:]  # column 0 is the background
        return [self._one(*arrays, priors, settings) for arrays in zip(loc, scores, landms)]

    def num_classes(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> int | None:
        return self.outputs_of(outputs, settings)[1].shape[2] - 1

    def outputs_of(self, outputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> list[np.ndarray]:
        """loc [N, A, 4], conf [N, A, 1 + C], landms [N, A, 2P]: as named, else loc, conf, landms, else by shape."""
        names = settings["outputs"]
        if names is None and all(name in outputs for name in KINDS):
            names = KINDS
        if names is None:
            pairs = _by_shape(outputs)
        elif isinstance(names, (list, tuple)) and len(names) == 3 and all(isinstance(n, str) for n in names):
            pairs = list(zip(names, self.named_outputs(outputs, {**settings, "outputs": names}, 3)))
        else:
            raise BadInputError(f"metadata key 'decoder.outputs' must name 3 outputs (loc, conf, landms), "
                                f"got {names!r}")
        (loc_name, loc), (conf_name, conf), (landms_name, landms) = pairs
        fits = loc.ndim == conf.ndim == landms.ndim == 3 and loc.shape[2] == 4 and conf.shape[2] >= 2 \
            and landms.shape[2] >= 2 and landms.shape[2] % 2 == 0 \
            and loc.shape[:2] == conf.shape[:2] == landms.shape[:2]
        if not fits:
            shapes = f"{loc_name} {shape_text(loc.shape)}, {conf_name} {shape_text(conf.shape)} and " \
                     f"{landms_name} {shape_text(landms.shape)}"
            raise BadInputError(f"retinaface decoder expects loc [N, A, 4], conf [N, A, 2] and landms [N, A, 10], "
                                f"got {shapes}: check decoder.outputs (loc, conf, landms in that order)")
        return [loc, conf, landms]

    @staticmethod
    def _one(loc: np.ndarray, scores: np.ndarray, landms: np.ndarray, priors: np.ndarray,
             settings: Mapping[str, Any]) -> Decoded:
        """One image: the rows above the threshold, best first, decoded to model-input pixels."""
        labels = scores.argmax(axis=1)
        best = scores[np.arange(len(labels)), labels]
        keep = np.flatnonzero(best >= settings["score_threshold"])
        keep = keep[np.argsort(-best[keep], kind="stable")][: int(settings["candidates"])]
        prior, variances = priors[keep], tuple(float(v) for v in _variances(settings))
        height, width = (int(v) for v in settings["input_size"])
        scale = np.asarray([width, height], np.float32)
        centre_size = decode_priors(loc[keep].astype(np.float32), prior, variances)
        corner = centre_size[:, :2] - centre_size[:, 2:] / 2  # as its ``decode``: x1 y1, then + w h
        boxes = np.concatenate([corner, corner + centre_size[:, 2:]], axis=1) * np.tile(scale, 2)
        offsets = landms[keep].astype(np.float32).reshape(len(keep), landms.shape[1] // 2, 2)
        points = (prior[:, None, :2] + offsets * np.float32(variances[0]) * prior[:, None, 2:]) * scale
        return (boxes.astype(np.float32), best[keep].astype(np.float32), labels[keep].astype(np.int64),
                points.astype(np.float32))


@lru_cache(maxsize=16)
def retinaface_priors(height: int, width: int, steps: tuple[int, ...], min_sizes: tuple[tuple[float, ...], ...],
                      clip: bool = False) -> np.ndarray:
    """(A, 4) normalised centre x, y, width, height, in PriorBox's order: level, row, column, min size."""
    levels = []
    for step, sizes in zip(steps, min_sizes):
        rows, cols = -(-height // step), -(-width // step)
        ys, xs = np.mgrid[:rows, :cols].astype(np.float64)
        cx = np.repeat(((xs + 0.5) * step / width).reshape(-1, 1), len(sizes), axis=1)
        cy = np.repeat(((ys + 0.5) * step / height).reshape(-1, 1), len(sizes), axis=1)
        sx = np.broadcast_to(np.asarray(sizes, np.float64) / width, cx.shape)
        sy = np.broadcast_to(np.asarray(sizes, np.float64) / height, cx.shape)
        levels.append(np.stack([cx, cy, sx, sy], axis=-1).reshape(-1, 4))
    priors = np.concatenate(levels).astype(np.float32) if levels else np.zeros((0, 4), np.float32)
    if clip:
        priors = np.clip(priors, 0, 1)
    priors.flags.writeable = False
    return priors


def _by_shape(outputs: Mapping[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """The outputs that are loc, conf and landms by their last dim (4, 2, 10), the default names absent."""
    arrays = [(name, np.asarray(value)) for name, value in outputs.items()]
    found = [[(name, array) for name, array in arrays if array.ndim == 3 and array.shape[2] == last]
             for last in (4, 2, 10)]
    if any(len(group) != 1 for group in found):
        listed = ", ".join(f"{name} ({shape_text(array.shape)})" for name, array in arrays)
        raise BadInputError(f"retinaface decoder expects outputs {', '.join(KINDS)} or one each of [N, A, 4], "
                            f"[N, A, 2] and [N, A, 10] among {listed}: set decoder.outputs (loc, conf, landms)")
    return [group[0] for group in found]


def _steps(settings: Mapping[str, Any]) -> list[int]:
    steps = settings["steps"]
    if not (isinstance(steps, (list, tuple)) and steps and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in steps)):
        raise BadInputError(f"metadata key 'decoder.steps' must be a list of positive integers (JSON: "
                            f"decoder.steps=[8,16,32]), got {steps!r}")
    return list(steps)


def _min_sizes(settings: Mapping[str, Any], levels: int | None) -> list[list[float]]:
    sizes = settings["min_sizes"]
    valid = isinstance(sizes, (list, tuple)) and sizes and all(
        isinstance(level, (list, tuple)) and level and all(
            isinstance(m, (int, float)) and not isinstance(m, bool) and np.isfinite(m) and m > 0 for m in level)
        for level in sizes)
    if not valid:
        raise BadInputError(f"metadata key 'decoder.min_sizes' must be a list of lists of positive sizes (one "
                            f"list per step, e.g. [[16, 32], [64, 128], [256, 512]]), got {sizes!r}")
    if levels is not None and len(sizes) != levels:
        raise BadInputError(f"metadata keys 'decoder.min_sizes' and 'decoder.steps' must have one entry per "
                            f"feature map, got {len(sizes)} lists of min sizes and {levels} steps")
    return [list(level) for level in sizes]


def _variances(settings: Mapping[str, Any]) -> list[float]:
    variances = settings["variances"]
    if not (isinstance(variances, (list, tuple)) and len(variances) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v > 0
            for v in variances)):
        raise BadInputError(f"metadata key 'decoder.variances' must be two positive numbers (centre, size), "
                            f"got {variances!r}")
    return [float(v) for v in variances]
