"""The OpenCV preprocessing route: ``cv2.resize`` (INTER_LINEAR, half-pixel centres) in float32.

Same geometry as the numpy reference (``plan_geometry``): the crop is a view of the source and
only it is converted and resized. Resizing float32 rather than uint8 keeps the result equal to
the reference (uint8 resizing rounds to whole levels, enough to move a weak detector's boxes).
On a strong downscale (a 640×480 frame letterboxed to 128×128) only the source rows the
bilinear filter reads are converted: OpenCV resizes them across, numpy blends them down.
Mean/std, colour order and the NCHW layout are one ``cv2.dnn`` blob call on the small resized
image. Robot tier: imports cv2 (``pip install 'edgekit[camera]'``) and numpy only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from edgekit.deps import require
from edgekit.meta import ModelMeta
from edgekit.tasks.preprocess import (
    GRAY_WEIGHTS, LETTERBOX_FILL, ImageTransform, as_hwc, bilinear_axis, place, plan_geometry,
)

#: rows converted one by one only when at most this share of the source rows is read
ROW_SHARE = 0.75


def opencv_route(images: Sequence[np.ndarray], meta: ModelMeta, color: str = "RGB"
                 ) -> tuple[np.ndarray, list[ImageTransform]]:
    """HxW(xC) uint8 images → NCHW float32 batch, resized by OpenCV."""
    cv2 = require("cv2", "camera")
    height, width = meta.input_size
    batch = np.empty((len(images), meta.channels, height, width), dtype=np.float32)
    mean = np.asarray(meta.mean, dtype=np.float32) * 255.0
    std = np.asarray(meta.std, dtype=np.float32) * 255.0
    transforms = []
    for index, image in enumerate(images):
        image = as_hwc(image, color)
        geometry = plan_geometry(image.shape[:2], (height, width), meta.resize)
        top, left, crop_h, crop_w = geometry.crop
        pixels = resize_float(cv2, image[top : top + crop_h, left : left + crop_w], geometry.resized)
        if meta.color == "GRAY":
            gray = _gray(place(pixels, geometry), given=color)
            batch[index] = (gray - mean.reshape(-1, 1, 1)) / std.reshape(-1, 1, 1)
        else:
            _normalized_chw(cv2, pixels, geometry, swap=(color == "BGR") != (meta.color == "BGR"),
                            mean=mean, std=std, out=batch[index])
        transforms.append(geometry.transform)
    return batch, transforms


def resize_float(cv2, crop: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a uint8 HxWxC crop to ``size`` (h, w) as float32 HxWxC."""
    height, width = size
    if crop.shape[:2] == (height, width):
        return crop.astype(np.float32)
    if 2 * height > ROW_SHARE * crop.shape[0]:  # most rows are read: resize the whole crop
        return _as_hwc(cv2.resize(crop.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR))
    rows, upper_rows, lower_rows, blend = _row_plan(crop.shape[0], height)
    across = _as_hwc(cv2.resize(crop[rows].astype(np.float32), (width, len(rows)), interpolation=cv2.INTER_LINEAR))
    upper = across[upper_rows]
    if blend is None:  # the output rows fall on source rows (an odd whole-number factor)
        return upper
    return upper * (1 - blend) + across[lower_rows] * blend


@functools.lru_cache(maxsize=32)
def _row_plan(source: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """For ``size`` output rows from ``source``: the source rows read, each output row's two rows
    among them, and the weight of the second (None when every weight is 0). Read-only arrays."""
    weights, low, high = bilinear_axis(source, size)
    rows = np.union1d(low, high[weights > 0])
    upper = np.searchsorted(rows, low)
    lower = np.minimum(np.searchsorted(rows, high), len(rows) - 1)
    blend = weights[:, None, None].astype(np.float32) if weights.any() else None
    for array in (rows, upper, lower, blend):
        if array is not None:
            array.flags.writeable = False
    return rows, upper, lower, blend


def _as_hwc(pixels: np.ndarray) -> np.ndarray:
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def _normalized_chw(cv2, pixels: np.ndarray, geometry, swap: bool, mean: np.ndarray, std: np.ndarray,
                    out: np.ndarray) -> None:
    """(pixels − mean) / std as CHW into ``out`` (the padding of a letterbox: the fill, normalized)."""
    if pixels.shape[2] == 1:  # a gray image for a colour model: the same value in every channel
        pixels = np.repeat(pixels, 3, axis=2)
    blob = normalized_blob(cv2, pixels, swap, mean, std)
    if geometry.resized == geometry.size:
        out[...] = blob
        return
    fill = ((np.float32(LETTERBOX_FILL) - mean) / std).reshape(-1, 1, 1)
    top, left = geometry.pad
    bottom, right = top + blob.shape[1], left + blob.shape[2]
    out[:, :top], out[:, bottom:] = fill, fill  # only the border is filled: the image is written once
    out[:, top:bottom, :left], out[:, top:bottom, right:] = fill, fill
    out[:, top:bottom, left:right] = blob


def normalized_blob(cv2, pixels: np.ndarray, swap: bool, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """CHW (pixels − mean) / std in the model's channel order; numpy where cv2 lacks the dnn blob
    call (OpenCV < 4.8 or a build without dnn)."""
    blob_call = getattr(getattr(cv2, "dnn", None), "blobFromImageWithParams", None)
    if blob_call is None:
        chw = (pixels[:, :, ::-1] if swap else pixels).transpose(2, 0, 1)
        return (chw - mean.reshape(-1, 1, 1)) / std.reshape(-1, 1, 1)
    params = cv2.dnn.Image2BlobParams()
    params.scalefactor = tuple(float(1 / s) for s in std)
    params.mean = tuple(float(m) for m in mean)  # mean and scale are in the output (model) order
    params.swapRB = swap
    params.ddepth = cv2.CV_32F
    return blob_call(np.ascontiguousarray(pixels), params)[0]


def _gray(pixels: np.ndarray, given: str) -> np.ndarray:
    """A 1xHxW float array of a gray model's input."""
    if pixels.shape[2] == 1:
        return pixels.transpose(2, 0, 1)
    weights = np.array(GRAY_WEIGHTS[::-1] if given == "BGR" else GRAY_WEIGHTS, dtype=np.float32)
    return (pixels.astype(np.float32) @ weights)[None]
