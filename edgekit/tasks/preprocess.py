"""Image preprocessing described by ModelMeta: colour, resize mode, normalization, layout.

numpy only, so the same code runs on a robot and in evaluation on every runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta

LETTERBOX_FILL = 114
CROP_FRACTION = 0.875  # ImageNet convention: resize to size / 0.875, then center-crop


@dataclass(frozen=True)
class ImageTransform:
    """Maps original image pixels to model-input pixels: model = original · scale + offset."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float
    original_size: tuple[int, int]  # (height, width)

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Map x1 y1 x2 y2 boxes from model-input pixels back to the original image, clipped."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        boxes[:, 0::2] = (boxes[:, 0::2] - self.offset_x) / self.scale_x
        boxes[:, 1::2] = (boxes[:, 1::2] - self.offset_y) / self.scale_y
        height, width = self.original_size
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        return boxes


def preprocess_images(images: Sequence[np.ndarray], meta: ModelMeta) -> tuple[np.ndarray, list[ImageTransform]]:
    """Turn HxW(xC) uint8 images into one NCHW float32 batch as ``meta`` prescribes."""
    if meta.input_layout != "NCHW":
        raise BadInputError(f"only NCHW inputs are supported, model says {meta.input_layout}")
    if not len(images):
        raise BadInputError("no images to preprocess")
    height, width = meta.input_size
    batch = np.empty((len(images), meta.channels, height, width), dtype=np.float32)
    transforms = []
    for index, image in enumerate(images):
        pixels = convert_color(_as_hwc(image), meta.color)
        resized, transform = resize(pixels, (height, width), meta.resize)
        batch[index] = resized.transpose(2, 0, 1)
        transforms.append(transform)
    mean = np.asarray(meta.mean, dtype=np.float32).reshape(1, -1, 1, 1) * 255.0
    std = np.asarray(meta.std, dtype=np.float32).reshape(1, -1, 1, 1) * 255.0
    batch -= mean
    batch /= std
    return batch, transforms


def _as_hwc(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise BadInputError(f"expected an HxW, HxWx1 or HxWx3 image, got shape {image.shape}")
    return image[:, :, :3]


def convert_color(image: np.ndarray, color: str) -> np.ndarray:
    """RGB (or gray) HWC image → the model's colour order, as float32."""
    pixels = image.astype(np.float32)
    if color == "GRAY":
        if pixels.shape[2] == 3:
            pixels = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            pixels = pixels[:, :, None]
        return pixels
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    if color == "BGR":
        pixels = pixels[:, :, ::-1]
    elif color != "RGB":
        raise BadInputError(f"unknown colour order '{color}' (expected RGB, BGR or GRAY)")
    return pixels


def resize(image: np.ndarray, size: tuple[int, int], mode: str) -> tuple[np.ndarray, ImageTransform]:
    """Resize an HWC float image to ``size`` by ``mode``: stretch, letterbox or center-crop."""
    src_h, src_w = image.shape[:2]
    dst_h, dst_w = size
    if mode == "stretch":
        sx, sy = dst_w / src_w, dst_h / src_h
        return bilinear(image, dst_h, dst_w), ImageTransform(sx, sy, 0.0, 0.0, (src_h, src_w))
    if mode == "letterbox":
        scale = min(dst_w / src_w, dst_h / src_h)
        new_w, new_h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
        canvas = np.full((dst_h, dst_w, image.shape[2]), LETTERBOX_FILL, dtype=np.float32)
        left, top = (dst_w - new_w) // 2, (dst_h - new_h) // 2
        canvas[top : top + new_h, left : left + new_w] = bilinear(image, new_h, new_w)
        return canvas, ImageTransform(new_w / src_w, new_h / src_h, float(left), float(top), (src_h, src_w))
    if mode == "center-crop":
        scale = max(dst_w, dst_h) / CROP_FRACTION / min(src_w, src_h)
        new_w, new_h = max(dst_w, round(src_w * scale)), max(dst_h, round(src_h * scale))
        left, top = (new_w - dst_w) // 2, (new_h - dst_h) // 2
        cropped = bilinear(image, new_h, new_w)[top : top + dst_h, left : left + dst_w]
        return cropped, ImageTransform(new_w / src_w, new_h / src_h, -float(left), -float(top), (src_h, src_w))
    raise BadInputError(f"unknown resize mode '{mode}' (expected stretch, letterbox or center-crop)")


def bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of an HWC array with half-pixel centres (as OpenCV's INTER_LINEAR)."""
    src_h, src_w = image.shape[:2]
    if (src_h, src_w) == (height, width):
        return image.astype(np.float32, copy=False)
    ys, y0, y1 = _axis(src_h, height)
    xs, x0, x1 = _axis(src_w, width)
    top = image[y0][:, x0] * (1 - xs)[None, :, None] + image[y0][:, x1] * xs[None, :, None]
    bottom = image[y1][:, x0] * (1 - xs)[None, :, None] + image[y1][:, x1] * xs[None, :, None]
    return (top * (1 - ys)[:, None, None] + bottom * ys[:, None, None]).astype(np.float32)


def _axis(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    coords = (np.arange(dst, dtype=np.float32) + 0.5) * (src / dst) - 0.5
    coords = coords.clip(0, src - 1)
    low = np.floor(coords).astype(np.int64)
    high = np.minimum(low + 1, src - 1)
    return coords - low, low, high
