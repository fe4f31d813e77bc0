"""Detector output formats by name (``meta.extra["decoder"]["type"]``). Listing names imports nothing."""

from __future__ import annotations

from typing import Any

from edgekit.registry import Registry
from edgekit.tasks.decoders.base import COMMON_SETTINGS, Decoded, Decoder

DECODERS: Registry[type[Decoder]] = Registry("detection decoder", entry_point_group="edgekit.decoders")
DECODERS.add("centernet", "edgekit.tasks.decoders.centernet:CenterNetDecoder")
DECODERS.add("yolo", "edgekit.tasks.decoders.yolo:YoloDecoder")
DECODERS.add("yolo-end2end", "edgekit.tasks.decoders.yolo:YoloEnd2EndDecoder")
DECODERS.add("ssd", "edgekit.tasks.decoders.ssd:SsdDecoder")
DECODERS.add("faces", "edgekit.tasks.decoders.faces:FaceDecoder")
DECODERS.add("scrfd", "edgekit.tasks.decoders.faces:ScrfdDecoder")
DECODERS.add("yunet", "edgekit.tasks.decoders.faces:YunetDecoder")
DECODERS.add("retinaface", "edgekit.tasks.decoders.retinaface:RetinaFaceDecoder")
DECODERS.add("torchvision", "edgekit.tasks.decoders.torchvision:TorchvisionDecoder")
DECODERS.add("boxes", "edgekit.tasks.decoders.boxes:BoxesDecoder")
DECODERS.add("boxes-nms", "edgekit.tasks.decoders.boxes:BoxesNMSDecoder")


def decoder_settings(decoder: type[Decoder], given: dict[str, Any]) -> dict[str, Any]:
    """Common settings, then the decoder's defaults, then ``given`` (the model's metadata)."""
    return {**COMMON_SETTINGS, **decoder.defaults, **given, "type": decoder.name}


__all__ = ["COMMON_SETTINGS", "DECODERS", "Decoded", "Decoder", "decoder_settings"]
