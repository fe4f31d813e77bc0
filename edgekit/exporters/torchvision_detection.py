"""torchvision detectors (Faster R-CNN, SSD/SSDlite, RetinaNet, FCOS) as one-image ONNX graphs that
keep their in-graph post-processing: outputs ``boxes`` (k, 4), ``scores`` (k,), ``labels`` (k,),
already NMS'd, with k known only at run time (decoder ``torchvision``)."""

from __future__ import annotations

from typing import Any

from edgekit.meta import ModelMeta

DEFAULT_SIZE = (320, 320)


def _detector_types() -> tuple[type, ...]:
    try:
        from torchvision.models.detection.fcos import FCOS
        from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
        from torchvision.models.detection.retinanet import RetinaNet
        from torchvision.models.detection.ssd import SSD
    except ImportError:  # torchvision absent (or reorganised): nothing to recognise
        return ()
    return (GeneralizedRCNN, SSD, RetinaNet, FCOS)


def wrap_detector(module: Any, meta: ModelMeta) -> tuple[Any, ModelMeta]:
    """A torchvision detector → (a module taking a 1×3×H×W batch in [0, 1], detection metadata);
    any other module is returned unchanged."""
    types = _detector_types()
    if not types or not isinstance(module, types):
        return module, meta
    import torch

    class OneImageDetector(torch.nn.Module):
        """Feeds the detector a one-image list and returns its boxes, scores and labels as tensors."""

        def __init__(self, detector: torch.nn.Module) -> None:
            super().__init__()
            self.detector = detector

        def forward(self, images: torch.Tensor):
            result = self.detector([images[0]])[0]
            return {"boxes": result["boxes"], "scores": result["scores"], "labels": result["labels"]}

    labels = _labels(module)
    decoder = {"type": "torchvision", "outputs": ["boxes", "scores", "labels"]}
    meta = meta.with_(task="detection", input_size=DEFAULT_SIZE, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                      color="RGB", resize="stretch", labels=labels,
                      extra={**meta.extra, "decoder": decoder, "detector": type(module).__name__})
    return OneImageDetector(module.eval()), meta


def _labels(module: Any) -> tuple[str, ...]:
    """COCO category names when the head has torchvision's 91 classes (index = COCO category id)."""
    try:
        from torchvision.models._meta import _COCO_CATEGORIES
    except ImportError:
        return ()
    classes = _class_count(module)
    return tuple(_COCO_CATEGORIES) if classes in (None, len(_COCO_CATEGORIES)) else ()


def _class_count(module: Any) -> int | None:
    head = getattr(getattr(module, "roi_heads", None), "box_predictor", None)
    if head is not None and hasattr(head, "cls_score"):
        return int(head.cls_score.out_features)
    classification = getattr(getattr(module, "head", None), "classification_head", None)
    return getattr(classification, "num_classes", None)
