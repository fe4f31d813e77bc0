"""Frames as the Predictor takes them: uint8 HxW or HxWxC numpy arrays, from arrays, files or PIL.

Robot tier: numpy only; reading an image file uses Pillow or OpenCV, whichever is installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import BadInputError

ACCEPTED = "uint8 images: HxW, HxWx1, HxWx3 or HxWx4 numpy arrays (0–255), PIL images or image file paths"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
COLORS = ("RGB", "BGR")


def is_single(images: Any) -> bool:
    """Whether ``images`` is one image (an array of rank 2 or 3, a path, a PIL image), not a batch."""
    if isinstance(images, np.ndarray):
        return images.ndim in (2, 3)
    return isinstance(images, (str, Path)) or _is_pil(images)


def as_items(images: Any) -> tuple[Sequence[Any], bool]:
    """(images as a sequence, was_single), not yet read or checked (see ``to_frame``)."""
    if is_single(images):
        return [images], True
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise BadInputError(f"expected one image (HxW or HxWxC) or a batch NxHxWxC, "
                                f"got shape {images.shape}; {ACCEPTED}")
        items: Sequence[Any] = images
    elif isinstance(images, Sequence):
        items = images
    else:
        raise BadInputError(f"expected an image or a list of images, got {type(images).__name__}; "
                            f"Predictor takes {ACCEPTED}")
    if not len(items):
        raise BadInputError("no images given")
    return items, False


def to_frame(image: Any, index: int = 0) -> np.ndarray:
    """One image as a checked uint8 array."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if _is_pil(image):
        return np.asarray(image.convert("L" if image.mode in ("L", "1", "I;16", "I") else "RGB"))
    if not isinstance(image, np.ndarray):
        raise BadInputError(f"image {index} is a {type(image).__name__}; Predictor takes {ACCEPTED}")
    return check_frame(image, index)


def check_frame(frame: np.ndarray, index: int = 0) -> np.ndarray:
    """``frame`` itself if it is a uint8 HxW, HxWx1, HxWx3 or HxWx4 array, else a one-line error."""
    if frame.dtype != np.uint8:
        raise BadInputError(f"image {index} has dtype {frame.dtype.name}; Predictor takes {ACCEPTED} "
                            "(for floats in [0, 1]: (x * 255).round().astype(np.uint8))")
    if frame.ndim == 3 and frame.shape[2] not in (1, 3, 4):
        raise BadInputError(f"image {index} has {frame.shape[2]} channels (shape {frame.shape}); "
                            f"Predictor takes {ACCEPTED}")
    if frame.ndim not in (2, 3) or 0 in frame.shape:
        raise BadInputError(f"image {index} has shape {frame.shape}; Predictor takes {ACCEPTED}")
    return frame


MAX_IMAGE_PIXELS = 8192 * 8192   # a 64-megapixel photo decodes; a decompression bomb is refused before it does


def read_image(path: str | Path, what: str = "image") -> np.ndarray:
    """An image file as an RGB (or gray) uint8 array, through Pillow or else OpenCV. Its size is read
    from the header first: more than ``MAX_IMAGE_PIXELS`` is refused before anything is decoded."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{what} file not found: {path}")
    check_image_size(path, header_size(path), what)
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        return _read_with_opencv(path, what)
    try:
        with Image.open(path) as image:
            check_image_size(path, image.size, what)
            image.load()
            return np.asarray(image.convert("L" if image.mode in ("L", "1", "I;16", "I") else "RGB"))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise BadInputError(f"cannot read {what} {path}: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def check_image_size(path: Path, size: tuple[int, int] | None, what: str = "image") -> None:
    """Refuse an image whose header declares more than ``MAX_IMAGE_PIXELS`` (width, height)."""
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise BadInputError(f"{what} {path} declares {size[0]}x{size[1]} pixels, more than the "
                            f"{MAX_IMAGE_PIXELS // 10**6} megapixels edgekit decodes (a decompression bomb?)")


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, GIF or BMP header without decoding; None for other formats."""
    import struct

    with open(path, "rb") as stream:
        head = stream.read(32)
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", head[6:10])
        if head.startswith(b"BM") and len(head) >= 26:
            width, height = struct.unpack("<ii", head[18:26])
            return abs(width), abs(height)
        if head.startswith(b"\xff\xd8"):
            return _jpeg_size(stream)
    return None


def _jpeg_size(stream) -> tuple[int, int] | None:
    """The frame size from a JPEG's first SOF marker."""
    import struct

    stream.seek(2)
    while True:
        marker = stream.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        if marker[1] in (0xD8, 0x01) or 0xD0 <= marker[1] <= 0xD7:
            continue
        length = struct.unpack(">H", stream.read(2))[0]
        if 0xC0 <= marker[1] <= 0xCF and marker[1] not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">xHH", stream.read(5))
            return width, height
        stream.seek(length - 2, 1)


def _read_with_opencv(path: Path, what: str = "image") -> np.ndarray:
    import os

    try:
        import cv2
    except ImportError:
        raise BadInputError(f"reading {path.name} needs Pillow or OpenCV: "
                            "pip install pillow, or pip install 'edgekit[camera]'") from None
    # formats whose header we do not read (TIFF, WebP, ...): OpenCV's own cap, set to ours unless the user set it
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))
    frame = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if frame is None or frame.dtype != np.uint8:
        raise BadInputError(f"cannot read {what} {path}")
    if frame.ndim == 3 and frame.shape[2] >= 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB if frame.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return frame


def check_color(color: str) -> str:
    """The colour order of the frames a caller passes: RGB or BGR (gray frames are gray either way)."""
    upper = str(color).upper()
    if upper not in COLORS:
        raise BadInputError(f"color must be RGB or BGR (the order of your frames' channels), got '{color}'")
    return upper


def _is_pil(image: Any) -> bool:
    return type(image).__module__.startswith("PIL.") and hasattr(image, "convert")
