"""Image preprocessing described by ModelMeta: colour, resize mode, normalization, layout.

The geometry (which source region, resized to what, padded where) is planned once in integer
arithmetic by ``plan_geometry``, so every route computes the same pixels: this module's numpy
code (the dependency-free reference), OpenCV (``edgekit.tasks.preprocess_opencv``) and the
nodes ``edgekit fuse`` puts in front of the graph (``edgekit.tasks.fused`` reads those files);
``opencv-uint8`` rounds them to whole levels. Routes are picked by name from ``ROUTES``; the
default is ``opencv`` when OpenCV is installed. Robot tier.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError
from edgekit.meta import DEFAULT_LETTERBOX, LETTERBOX_FILL, Letterbox, ModelMeta, letterbox_of
from edgekit.registry import Registry

CROP_FRACTION = (7, 8)  # ImageNet convention: the crop is 0.875 of the shorter side
GIVEN_COLORS = ("RGB", "BGR", "GRAY")
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # of R, G, B
FUSED_KEY = "fused_preprocess"  # meta.extra entry of a model whose graph starts with the preprocessing

#: a route: (images, meta, colour of the given images) → (NCHW float32 batch, transforms)
Route = Callable[[Sequence[np.ndarray], ModelMeta, str], tuple[np.ndarray, list["ImageTransform"]]]
ROUTES: Registry[Route] = Registry("preprocessing route")
ROUTES.add("numpy", "edgekit.tasks.preprocess:numpy_route")
ROUTES.add("opencv", "edgekit.tasks.preprocess_opencv:opencv_route", aliases=("cv2",))
ROUTES.add("opencv-uint8", "edgekit.tasks.preprocess_opencv:opencv_uint8_route")
OPENCV_ROUTES = ("opencv", "cv2", "opencv-uint8")  # names of the routes that run OpenCV
# a fused model (its graph starts with the pre-processing) takes stacked uint8 frames: tasks.fused builds
# on this module, so it is reached through the registry rather than imported back
FUSED: Registry[Route] = Registry("fused pre-processing")
FUSED.add("frames", "edgekit.tasks.fused:stack_frames")




@dataclass(frozen=True)
class ImageTransform:
    """Maps original image pixels to model-input pixels: model = original · scale + offset."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float
    original_size: tuple[int, int]  # (height, width)

    def points_to_original(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 2) x y points (keypoints) from model-input pixels back to the original image. Not
        clipped: a landmark of a face at the border may lie outside the frame (as CenterFace, SCRFD and
        YuNet give it)."""
        offset = np.array([self.offset_x, self.offset_y], np.float32)
        return (np.asarray(points, dtype=np.float32) - offset) / np.array([self.scale_x, self.scale_y], np.float32)

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Map x1 y1 x2 y2 boxes from model-input pixels back to the original image, clipped."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        offset = np.array([self.offset_x, self.offset_y] * 2, dtype=np.float32)
        scale = np.array([self.scale_x, self.scale_y] * 2, dtype=np.float32)
        height, width = self.original_size
        boxes = (boxes - offset) / scale
        return np.clip(boxes, 0, np.array([width, height] * 2, dtype=np.float32), out=boxes)


@dataclass(frozen=True)
class Geometry:
    """Crop ``crop`` (top, left, height, width) of the source, resize it to ``resized`` (h, w),
    then pad it by ``pad`` (top, left) with level ``fill`` into the model's input size (letterbox only)."""

    source: tuple[int, int]
    crop: tuple[int, int, int, int]
    resized: tuple[int, int]
    pad: tuple[int, int]
    size: tuple[int, int]
    fill: float = LETTERBOX_FILL

    @property
    def transform(self) -> ImageTransform:
        top, left, height, width = self.crop
        scale_x, scale_y = self.resized[1] / width, self.resized[0] / height
        return ImageTransform(scale_x, scale_y, self.pad[1] - left * scale_x, self.pad[0] - top * scale_y,
                              self.source)


def plan_geometry(source: tuple[int, int], size: tuple[int, int], mode: str,
                  letterbox: Letterbox = DEFAULT_LETTERBOX) -> Geometry:
    """Where the model input comes from in a ``source`` (h, w) image, in integers (no float ties).

    stretch: the whole image to ``size``; letterbox: scaled to fit (rounded half up; not above 1 without
    ``scale_up``), centred or at the top left, padded with ``pad_value``; center-crop: the centred region that
    ImageNet's resize-to-size/0.875-then-crop keeps,
    cut from the source first so only the surviving pixels are resized.
    """
    src_h, src_w = int(source[0]), int(source[1])
    dst_h, dst_w = int(size[0]), int(size[1])
    if min(src_h, src_w) < 1:
        raise BadInputError(f"image has no pixels: {src_h}x{src_w}")
    whole = (0, 0, src_h, src_w)
    if mode == "stretch":
        return Geometry((src_h, src_w), whole, (dst_h, dst_w), (0, 0), (dst_h, dst_w))
    if mode == "letterbox":
        if dst_w * src_h <= dst_h * src_w:  # width limits
            new_w, new_h = dst_w, (2 * src_h * dst_w + src_w) // (2 * src_w)
        else:
            new_h, new_w = dst_h, (2 * src_w * dst_h + src_h) // (2 * src_h)
        new_h, new_w = max(1, new_h), max(1, new_w)
        if not letterbox.scale_up and dst_w > src_w and dst_h > src_h:  # it fits as it is: not enlarged
            new_h, new_w = src_h, src_w
        pad = ((dst_h - new_h) // 2, (dst_w - new_w) // 2) if letterbox.align == "center" else (0, 0)
        return Geometry((src_h, src_w), whole, (new_h, new_w), pad, (dst_h, dst_w), letterbox.pad_value)
    if mode == "center-crop":
        num, den = CROP_FRACTION
        side, longest = min(src_h, src_w) * num, den * max(dst_h, dst_w)
        crop_h = max(1, min(src_h, dst_h * side // longest))
        crop_w = max(1, min(src_w, dst_w * side // longest))
        crop = ((src_h - crop_h) // 2, (src_w - crop_w) // 2, crop_h, crop_w)
        return Geometry((src_h, src_w), crop, (dst_h, dst_w), (0, 0), (dst_h, dst_w))
    raise BadInputError(f"unknown resize mode '{mode}' (expected stretch, letterbox or center-crop)")


def preprocess_images(
    images: Sequence[np.ndarray], meta: ModelMeta, color: str = "RGB", route: str | None = None
) -> tuple[np.ndarray, list[ImageTransform]]:
    """Turn HxW(xC) uint8 images into one NCHW float32 batch as ``meta`` prescribes.

    ``color`` is the channel order of the given images (RGB, BGR for OpenCV frames, GRAY);
    ``route`` picks the implementation (``numpy``, ``opencv``, ``opencv-uint8``; default: opencv
    when installed).
    A model with fused preprocessing (``edgekit fuse``) gets its uint8 NHWC frames stacked instead.
    """
    if FUSED_KEY in meta.extra:
        return FUSED.get("frames")(images, meta, color)
    if meta.input_layout != "NCHW":
        raise BadInputError(f"only NCHW inputs are supported, model says {meta.input_layout}")
    if not len(images):
        raise BadInputError("no images to preprocess")
    check_color(color)
    return ROUTES.get(route or default_route())(images, meta, color)


def default_route(exact: bool = True) -> str:
    """``opencv`` when cv2 imports (a broken or blocked install counts as absent), else ``numpy``;
    ``opencv-uint8`` instead of ``opencv`` where pixels may be rounded to whole levels (not exact)."""
    if not _opencv_imports():
        return "numpy"
    return "opencv" if exact else "opencv-uint8"


@functools.lru_cache(maxsize=1)
def _opencv_imports() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def check_color(color: str) -> None:
    if color not in GIVEN_COLORS:
        raise BadInputError(f"unknown colour order '{color}' of the given images (expected RGB, BGR or GRAY)")


def numpy_route(images: Sequence[np.ndarray], meta: ModelMeta, color: str = "RGB"
                ) -> tuple[np.ndarray, list[ImageTransform]]:
    """The reference: float32 numpy throughout, no dependency beyond numpy."""
    height, width = meta.input_size
    batch = np.empty((len(images), meta.channels, height, width), dtype=np.float32)
    transforms = []
    letterbox = letterbox_of(meta)
    for index, image in enumerate(images):
        image = as_hwc(image, color)
        geometry = plan_geometry(image.shape[:2], (height, width), meta.resize, letterbox)
        top, left, crop_h, crop_w = geometry.crop
        pixels = convert_color(image[top : top + crop_h, left : left + crop_w], meta.color, given=color)
        batch[index] = place(bilinear(pixels, *geometry.resized), geometry).transpose(2, 0, 1)
        transforms.append(geometry.transform)
    batch -= np.asarray(meta.mean, dtype=np.float32).reshape(1, -1, 1, 1) * 255.0
    batch /= np.asarray(meta.std, dtype=np.float32).reshape(1, -1, 1, 1) * 255.0
    return batch, transforms


def as_hwc(image: np.ndarray, color: str = "RGB") -> np.ndarray:
    """An HxWxC view of an HxW, HxWx1, HxWx3 or HxWx4 image (alpha dropped)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise BadInputError(f"expected an HxW, HxWx1 or HxWx3 image, got shape {image.shape}")
    if color == "GRAY" and image.shape[2] != 1:
        raise BadInputError(f"color='GRAY' images must be HxW or HxWx1, got shape {image.shape}")
    return image[:, :, :3]


def convert_color(image: np.ndarray, color: str, given: str = "RGB") -> np.ndarray:
    """HWC image in the ``given`` colour order (or gray) → the model's ``color`` order, as float32."""
    if given == "BGR" and image.shape[2] == 3:
        image = image[:, :, ::-1]  # a view: the astype below is the only copy
    pixels = image.astype(np.float32)
    if color == "GRAY":
        if pixels.shape[2] == 3:
            pixels = pixels @ np.array(GRAY_WEIGHTS, dtype=np.float32)
            pixels = pixels[:, :, None]
        return pixels
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    if color == "BGR":
        pixels = pixels[:, :, ::-1]
    elif color != "RGB":
        raise BadInputError(f"unknown colour order '{color}' (expected RGB, BGR or GRAY)")
    return pixels


def resize(image: np.ndarray, size: tuple[int, int], mode: str,
           letterbox: Letterbox = DEFAULT_LETTERBOX) -> tuple[np.ndarray, ImageTransform]:
    """Resize an HWC float image to ``size`` by ``mode``: stretch, letterbox or center-crop."""
    geometry = plan_geometry(image.shape[:2], size, mode, letterbox)
    top, left, crop_h, crop_w = geometry.crop
    resized = bilinear(image[top : top + crop_h, left : left + crop_w], *geometry.resized)
    return place(resized, geometry), geometry.transform


def place(resized: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The resized HWC image, padded with the geometry's fill to the model's size where it says."""
    if geometry.resized == geometry.size:
        return resized
    canvas = np.full((*geometry.size, resized.shape[2]), geometry.fill, dtype=resized.dtype)
    pad_top, pad_left = geometry.pad
    canvas[pad_top : pad_top + resized.shape[0], pad_left : pad_left + resized.shape[1]] = resized
    return canvas


def bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of an HWC array with half-pixel centres (as OpenCV's INTER_LINEAR)."""
    src_h, src_w = image.shape[:2]
    if (src_h, src_w) == (height, width):
        return image.astype(np.float32, copy=False)
    ys, y0, y1 = bilinear_axis(src_h, height)
    xs, x0, x1 = bilinear_axis(src_w, width)
    top = image[y0][:, x0] * (1 - xs)[None, :, None] + image[y0][:, x1] * xs[None, :, None]
    bottom = image[y1][:, x0] * (1 - xs)[None, :, None] + image[y1][:, x1] * xs[None, :, None]
    return (top * (1 - ys)[:, None, None] + bottom * ys[:, None, None]).astype(np.float32)


def bilinear_axis(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``dst`` outputs along one axis of length ``src``: the weight of the high neighbour, and
    the low and high source indices (half-pixel centres, clamped at the edges)."""
    coords = (np.arange(dst, dtype=np.float32) + 0.5) * (src / dst) - 0.5
    coords = coords.clip(0, src - 1)
    low = np.floor(coords).astype(np.int64)
    high = np.minimum(low + 1, src - 1)
    return coords - low, low, high
