"""The OpenCV preprocessing routes: ``cv2.resize`` (INTER_LINEAR, half-pixel centres) on the crop.

Same geometry as the numpy reference (``plan_geometry``): the crop is a view of the source and
only it is resized. Two precisions:

- ``opencv`` (the default, detectors' too): uint8 pixels are widened to 16 bits (level · 256)
  before resizing, so OpenCV's 16-bit filter rounds to 1/256 of a level and the tensor equals the
  float32 numpy reference to within 0.02 of a level (< 1e-3 after mean/std). On a strong downscale (a
  640×480 frame letterboxed to 128×128) only the source rows the filter reads are widened: OpenCV
  resizes them across, numpy blends them down. Where every output lands on a source pixel (an odd
  whole-number factor, as 640×480 → 128×96) there is nothing to blend: the pixels are picked.
- ``opencv-uint8`` (the default for classifiers, ``Task.exact_pixels``): OpenCV resizes the uint8
  pixels themselves, as ``cv2.dnn.blobFromImage``, PIL and most detector pipelines do. Each pixel
  is rounded to a whole level (up to about 0.8 levels off the reference, -0.13 on average): top-1
  agrees, a weak detector's boxes move. It reads and writes a third of the bytes: about 0.1 ms
  less per 640×480 frame right after an inference.

Mean/std and the NCHW layout are one ``cv2.addWeighted`` per channel, written straight into the
batch. Robot tier: imports cv2 (``pip install 'edgekit[camera]'``) and numpy only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from edgekit.deps import require
from edgekit.meta import ModelMeta
from edgekit.tasks.preprocess import (
    GRAY_WEIGHTS, Geometry, ImageTransform, as_hwc, bilinear_axis, letterbox_of, plan_geometry,
)

#: rows widened one by one only when at most this share of the source rows is read
ROW_SHARE = 0.75
#: uint8 levels are resized as uint16 levels · WIDEN
WIDEN = 256


def opencv_route(images: Sequence[np.ndarray], meta: ModelMeta, color: str = "RGB"
                 ) -> tuple[np.ndarray, list[ImageTransform]]:
    """HxW(xC) uint8 images → NCHW float32 batch, resized by OpenCV on 16-bit pixels."""
    return _route(images, meta, color, widen=True)


def opencv_uint8_route(images: Sequence[np.ndarray], meta: ModelMeta, color: str = "RGB"
                       ) -> tuple[np.ndarray, list[ImageTransform]]:
    """HxW(xC) uint8 images → NCHW float32 batch, resized by OpenCV on the uint8 pixels."""
    return _route(images, meta, color, widen=False)


def _route(images: Sequence[np.ndarray], meta: ModelMeta, color: str, widen: bool
           ) -> tuple[np.ndarray, list[ImageTransform]]:
    cv2 = require("cv2", "camera")
    height, width = meta.input_size
    batch = np.empty((len(images), meta.channels, height, width), dtype=np.float32)
    std = np.asarray(meta.std, dtype=np.float64) * 255.0
    scale, shift = 1.0 / std, -np.asarray(meta.mean, dtype=np.float64) * 255.0 / std
    transforms = []
    letterbox = letterbox_of(meta)
    for index, image in enumerate(images):
        image = as_hwc(image, color)
        geometry = plan_geometry(image.shape[:2], (height, width), meta.resize, letterbox)
        top, left, crop_h, crop_w = geometry.crop
        pixels, unit = resize(cv2, image[top : top + crop_h, left : left + crop_w], geometry.resized, widen)
        planes = model_planes(cv2, pixels, meta.color, given=color)
        normalize_into(cv2, planes, unit, geometry, scale, shift, out=batch[index])
        transforms.append(geometry.transform)
    return batch, transforms


def resize(cv2, crop: np.ndarray, size: tuple[int, int], widen: bool = True) -> tuple[np.ndarray, float]:
    """Bilinear resize of an HxWxC crop to ``size`` (h, w): (HxWxC pixels, the level of one unit).

    uint8 pixels are resized widened (uint16, unit 1/256) or blended down in float32 (unit 1/256),
    or with ``widen=False`` as uint8 (unit 1); an exact fit comes back as it is and an odd whole
    factor picks pixels (unit 1); other dtypes are resized in float32."""
    height, width = size
    if crop.dtype != np.uint8:  # (OpenCV has no bool or int64 kernels; numpy's route takes any dtype)
        crop = crop.astype(np.float32)
    if crop.shape[:2] == (height, width):
        return crop, 1.0
    if _samples_pixels(crop.shape[0], height) and _samples_pixels(crop.shape[1], width):
        # bilinear weights all 0: the pixels at the half-pixel centres, which is what nearest picks
        return _as_hwc(cv2.resize(crop, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)), 1.0
    if crop.dtype != np.uint8 or not widen:
        return _as_hwc(cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)), 1.0
    if 2 * height > ROW_SHARE * crop.shape[0]:  # most rows are read: resize the whole crop
        wide = np.multiply(crop, np.uint16(WIDEN), dtype=np.uint16)
        return _as_hwc(cv2.resize(wide, (width, height), interpolation=cv2.INTER_LINEAR)), 1.0 / WIDEN
    rows, upper_rows, lower_rows, blend = _row_plan(crop.shape[0], height)
    wide = np.multiply(crop[rows], np.uint16(WIDEN), dtype=np.uint16)
    across = _as_hwc(cv2.resize(wide, (width, len(rows)), interpolation=cv2.INTER_LINEAR))
    if blend is None:  # the output rows fall on source rows (an odd whole-number factor)
        return across[upper_rows], 1.0 / WIDEN
    return across[upper_rows] * (1 - blend) + across[lower_rows] * blend, 1.0 / WIDEN


@functools.lru_cache(maxsize=64)
def _samples_pixels(source: int, size: int) -> bool:
    """Whether every output lands on a source pixel (an odd whole-number factor: 640 → 128)."""
    return not bilinear_axis(source, size)[0].any()


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


def model_planes(cv2, pixels: np.ndarray, color: str, given: str) -> list[np.ndarray]:
    """The HxW planes of the model's channels, in its order: a colour model given a gray image
    gets it three times, a gray model given a colour image gets the weighted sum (float32)."""
    if color == "GRAY":
        if pixels.shape[2] == 1:
            return [pixels[:, :, 0]]
        weights = np.array(GRAY_WEIGHTS[::-1] if given == "BGR" else GRAY_WEIGHTS, dtype=np.float32)
        return [pixels.astype(np.float32) @ weights]
    if pixels.shape[2] == 1:
        return [pixels[:, :, 0]] * 3
    planes = list(cv2.split(np.ascontiguousarray(pixels)))
    return planes[::-1] if (given == "BGR") != (color == "BGR") else planes


def normalize_into(cv2, planes: list[np.ndarray], unit: float, geometry: Geometry, scale: np.ndarray,
                   shift: np.ndarray, out: np.ndarray) -> None:
    """level · scale + shift per channel (level = plane · ``unit``) into ``out`` (CxHxW), the image
    at the geometry's pad offset and the letterbox border filled with the normalized fill: every
    value is written once."""
    top, left = geometry.pad
    bottom, right = top + planes[0].shape[0], left + planes[0].shape[1]
    for channel, plane in enumerate(planes):
        target = out[channel]
        if geometry.resized != geometry.size:
            fill = np.float32(geometry.fill * scale[channel] + shift[channel])
            target[:top], target[bottom:] = fill, fill
            target[top:bottom, :left], target[top:bottom, right:] = fill, fill
        view = target[top:bottom, left:right]
        result = cv2.addWeighted(plane, float(scale[channel] * unit), plane, 0.0, float(shift[channel]), dst=view,
                                 dtype=cv2.CV_32F)
        if not np.shares_memory(result, view):  # an OpenCV build that would not write into the view
            view[...] = result
