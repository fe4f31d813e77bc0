"""Semantic segmentation: per-pixel class scores → a class mask at frame resolution, with class areas.

Robot tier: numpy only. The per-pixel output is the one ``meta.extra["output"]`` names, else ``out``
(torchvision's segmentation models), else the model's first output. It is N×C×h×w scores (argmax;
C = 1: a logit above 0 is class 1) or an N×h×w integer class map (argmax already in the graph).

The class map is taken back to each frame like boxes: every frame pixel gets the class of the model
pixel its centre lands on through the pre-processing's transform (letterbox padding is never
sampled); frame pixels the model never saw (cut off by a centre crop) get ``OUTSIDE``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.tasks.base import Task, check_label_count
from edgekit.tasks.preprocess import ImageTransform

OUTSIDE = 255  # mask value of frame pixels outside the model's view; also the most classes a mask holds
PREFERRED_OUTPUT = "out"


@dataclass(frozen=True)
class Segmentation:
    """One frame's class mask (H×W uint8, class index per pixel) and its pixels per class."""

    mask: np.ndarray
    areas: np.ndarray  # (classes,) int64: frame pixels of each class
    names: tuple[str, ...]  # class names by index

    def fractions(self) -> np.ndarray:
        """Share of the frame's pixels each class covers."""
        return self.areas / max(self.mask.size, 1)

    def present(self) -> list[dict[str, Any]]:
        """The classes present, largest first: class index, name, pixels and share of the frame."""
        fractions = self.fractions()
        order = [int(c) for c in np.argsort(-self.areas, kind="stable") if self.areas[c]]
        return [{"class": c, "name": self.names[c], "pixels": int(self.areas[c]),
                 "fraction": round(float(fractions[c]), 5)} for c in order]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"segmentation": {"size": [H, W], "classes": present()}}`` (the mask stays out)."""
        return {"segmentation": {"size": list(self.mask.shape), "classes": self.present()}}

    def summary(self) -> str:
        """'background 84.1 %, square 9.3 %, circle 6.6 %' (classes present, largest first)."""
        return ", ".join(f"{c['name']} {100 * c['fraction']:.1f} %" for c in self.present())


class SegmentationTask(Task):
    name: ClassVar[str] = "segmentation"
    dataset: ClassVar[str | None] = "shapes-masks"

    def postprocess(
        self, outputs: Mapping[str, np.ndarray], meta: ModelMeta, transforms: Sequence[ImageTransform]
    ) -> list[Segmentation]:
        classes, count = class_maps(pixel_output(outputs, meta), len(meta.labels))
        check_label_count(meta, count)
        names = tuple(meta.labels[c] if c < len(meta.labels) else str(c) for c in range(count))
        results = []
        for class_map, transform in zip(classes, transforms, strict=True):
            rows, cols = frame_indices(class_map.shape, transform, meta.input_size)
            results.append(Segmentation(to_frame(class_map, rows, cols), areas(class_map, rows, cols, count), names))
        return results


def pixel_output(outputs: Mapping[str, np.ndarray], meta: ModelMeta) -> tuple[str, np.ndarray]:
    """(name, array) of the per-pixel output; a one-line error when the model has none."""
    wanted = meta.extra.get("output")
    if wanted is not None and wanted not in outputs:
        raise BadInputError(f"metadata key 'output' names '{wanted}', not an output of the model "
                            f"(it has {', '.join(outputs)})")
    name = wanted if wanted is not None else PREFERRED_OUTPUT if PREFERRED_OUTPUT in outputs else next(iter(outputs))
    array = np.asarray(outputs[name])
    per_pixel = array.ndim == 4 or (array.ndim == 3 and np.issubdtype(array.dtype, np.integer))
    if not per_pixel or min(array.shape[-2:], default=0) < 1:
        raise BadInputError(f"a segmentation model must output per-pixel scores (batch, classes, height, width) "
                            f"or a class map (batch, height, width); output '{name}' has shape {array.shape}")
    return name, array


def class_maps(named: tuple[str, np.ndarray], labels: int = 0) -> tuple[np.ndarray, int]:
    """(N×h×w uint8 class maps, number of classes) from scores, or from a class map (whose classes are
    its ``labels``, or as many as its largest index says)."""
    name, array = named
    if array.ndim == 3:
        count = max(int(array.max(initial=0)) + 1, labels)
        negative = array.dtype.kind == "i" and array.min(initial=0) < 0
        if negative or count > OUTSIDE:
            raise BadInputError(f"class map '{name}' holds classes outside 0..{OUTSIDE - 1}")
        return array.astype(np.uint8, copy=False), count
    count = array.shape[1]
    if count > OUTSIDE:
        raise BadInputError(f"output '{name}' has {count} classes; a mask holds at most {OUTSIDE}")
    if count == 1:
        return (array[:, 0] > 0).astype(np.uint8), 2
    return channel_argmax(array), count


def channel_argmax(scores: np.ndarray) -> np.ndarray:
    """``scores.argmax(axis=1)`` as uint8 (the first best class on ties), one comparison per class:
    ~8x faster than argmax over the strided class axis for the few classes a segmenter has."""
    if scores.shape[1] > 32:
        return scores.argmax(axis=1).astype(np.uint8)
    best = scores[:, 0].copy()
    index = np.zeros(best.shape, np.uint8)
    for klass in range(1, scores.shape[1]):
        channel = scores[:, klass]
        better = channel > best
        index[better] = klass
        np.maximum(best, channel, out=best)
    return index


def frame_indices(shape: tuple[int, int], transform: ImageTransform, input_size: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the h×w map under the centre of each frame row and column (-1: outside)."""
    height, width = transform.original_size
    return (_source_index(height, transform.scale_y, transform.offset_y, shape[0], input_size[0]),
            _source_index(width, transform.scale_x, transform.offset_x, shape[1], input_size[1]))


def to_frame(class_map: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The class map sampled at ``rows`` × ``cols`` (nearest), OUTSIDE where an index is -1. Columns are
    gathered on the small map first, then whole rows copied (3.5× faster than rows first at 640×480)."""
    inside_rows, inside_cols = rows >= 0, cols >= 0
    if inside_rows.all() and inside_cols.all():
        return class_map.take(cols, axis=1).take(rows, axis=0)
    mask = np.full((len(rows), len(cols)), OUTSIDE, dtype=np.uint8)
    inner = class_map.take(cols[inside_cols], axis=1).take(rows[inside_rows], axis=0)
    row_span, col_span = _span(inside_rows), _span(inside_cols)
    if row_span is not None and col_span is not None:   # a centre crop cuts off the edges only
        mask[row_span, col_span] = inner
    else:
        mask[np.ix_(inside_rows, inside_cols)] = inner
    return mask


def _span(inside: np.ndarray) -> slice | None:
    """``inside`` as one slice when its True entries are contiguous, else None."""
    where = np.flatnonzero(inside)
    if not len(where) or where[-1] - where[0] + 1 != len(where):
        return None
    return slice(int(where[0]), int(where[-1]) + 1)


def areas(class_map: np.ndarray, rows: np.ndarray, cols: np.ndarray, count: int) -> np.ndarray:
    """Frame pixels per class, counted at the map's resolution: each map cell weighs as many frame
    pixels as sample it (the same as counting the frame mask, ~20× fewer values at 640×480)."""
    row_weight = np.bincount(rows[rows >= 0], minlength=class_map.shape[0])
    col_weight = np.bincount(cols[cols >= 0], minlength=class_map.shape[1])
    weights = np.outer(row_weight, col_weight).ravel()
    return np.bincount(class_map.ravel(), weights=weights, minlength=count)[:count].round().astype(np.int64)


def _source_index(length: int, scale: float, offset: float, cells: int, pixels: int) -> np.ndarray:
    """Output cell (of ``cells`` over ``pixels`` model pixels) under the centre of each of ``length``
    frame pixels along one axis; -1 where that centre falls outside the model's input."""
    model = (np.arange(length, dtype=np.float64) + 0.5) * scale + offset
    index = np.floor(model * (cells / pixels)).astype(np.int64)
    return np.where((model >= 0) & (model < pixels), np.minimum(index, cells - 1), -1)


@dataclass(frozen=True)
class MaskAgreement:
    """Two runs of one segmenter compared by their class masks, the reference's as ground truth: the
    share of pixels whose class agrees and the mIoU (mean over classes either side has). Nothing to
    compare when both sides' masks are one and the same class everywhere, or the reference's masks
    are the same for every input; ``problem``: the masks could not be compared (a failure). Passes at
    ``min_pixels`` and ``min_miou``. ``edgekit.parity.dense_agreement`` builds it from model outputs."""

    masks: int
    pixel_agreement: float  # fraction of pixels
    miou: float
    classes: int  # classes present on either side
    min_pixels: float
    min_miou: float
    nothing_to_compare: str = ""
    problem: str = ""
    kind: ClassVar[str] = "masks"

    @property
    def passed(self) -> bool:
        return (not self.nothing_to_compare and not self.problem and self.pixel_agreement >= self.min_pixels
                and self.miou >= self.min_miou)

    def summary(self) -> str:
        """'masks: 99.80 % pixels agree, mIoU 0.995 vs reference (16 masks, 4 classes; ≥ 99 % pixels,
        mIoU ≥ 0.95): ok'."""
        if self.nothing_to_compare:
            return f"masks: nothing to compare: {self.nothing_to_compare}"
        if self.problem:
            return f"masks: {self.problem}: FAILED"
        return (f"masks: {100 * self.pixel_agreement:.2f} % pixels agree, mIoU {self.miou:.3f} vs reference "
                f"({self.masks} masks, {self.classes} classes; ≥ {100 * self.min_pixels:g} % pixels, mIoU ≥ "
                f"{self.min_miou:g}): {'ok' if self.passed else 'FAILED'}")


def mask_agreement(reference: np.ndarray, candidate: np.ndarray, min_pixels: float = 0.99, min_miou: float = 0.95,
                   labels: int = 0) -> MaskAgreement:
    """Agreement of the class masks of two per-pixel outputs (N×C×h×w scores or N×h×w class maps)."""
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    rule = (min_pixels, min_miou)
    failed = [f"the {side}'s scores hold NaN or infinite values" for side, array in
              (("reference", reference), ("candidate", candidate))
              if array.dtype.kind in "fc" and not np.isfinite(array).all()]
    if reference.shape != candidate.shape:
        failed.insert(0, f"outputs differ in shape: {reference.shape} vs {candidate.shape}")
    if failed:
        return MaskAgreement(len(reference), 0.0, 0.0, 0, *rule, problem=failed[0])
    truth, _ = class_maps(("reference", reference), labels)
    guess, _ = class_maps(("candidate", candidate), labels)
    if truth.size == 0:
        return MaskAgreement(len(truth), 0.0, 0.0, 0, *rule, nothing_to_compare="the masks are empty")
    classes = int(max(truth.max(), guess.max())) + 1
    confusion = np.bincount(truth.ravel().astype(np.int64) * classes + guess.ravel(),
                            minlength=classes * classes).reshape(classes, classes)
    hits = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - hits
    present = union > 0
    miou = float(np.mean(hits[present] / union[present]))
    agreement = MaskAgreement(len(truth), float(hits.sum() / truth.size), miou, int(present.sum()), *rule)
    if present.sum() == 1:
        reason = (f"every pixel of both sides' masks is class {int(np.flatnonzero(present)[0])}: random weights? "
                  "use trained weights and real inputs")
    elif len(truth) >= 2 and bool((truth == truth[:1]).all()):
        reason = f"all {len(truth)} reference masks are the same: they do not depend on the input (constant inputs?)"
    else:
        return agreement
    return replace(agreement, nothing_to_compare=reason)
