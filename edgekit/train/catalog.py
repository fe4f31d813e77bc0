"""The reference models edgekit trains itself (`edgekit train RECIPE`), as data for `edgekit models`.

Listing them builds and imports nothing; a test builds each from ``builder`` and checks ``parameters``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ReferenceModel:
    """One training recipe: its task, the offline data it learns from, the network and its metric."""

    recipe: str
    task: str
    data: str
    architecture: str
    input_size: tuple[int, int] | None  # None: its backbone's
    color: str
    metric: str
    parameters: int | None = None  # None: depends on the backbone it is given
    builder: str | None = None  # "module:function" building the trained network (for the count test)
    kwargs: dict[str, Any] = field(default_factory=dict)


_REFERENCE = [
    ReferenceModel("lenet5", "classification", "digits", "LeNet-5", (32, 32), "GRAY", "top-1",
                   61706, "edgekit.zoo.lenet:lenet5", {"num_classes": 10}),
    ReferenceModel("detector", "detection", "shapes", "CenterNet-style, stride 4", (128, 128), "RGB", "COCO mAP",
                   323735, "edgekit.zoo.detector:centernet_small", {"num_classes": 3}),
    ReferenceModel("transfer", "classification", "digits, a folder", "a backbone + a new head", None, "",
                   "top-1"),
    ReferenceModel("segmenter", "segmentation", "shapes-masks", "encoder-decoder, skips", (128, 128), "RGB",
                   "mIoU", 254868, "edgekit.train.segmenter:build_segmenter", {"num_classes": 4}),
    ReferenceModel("embedder", "embedding", "glyph-identities, digits-identities", "3 conv stages, SupCon",
                   (16, 16), "GRAY", "AUC, unseen ids", 147232, "edgekit.train.embedder:build_embedder", {"dims": 128}),
]


def reference_models() -> list[ReferenceModel]:
    return list(_REFERENCE)
