"""Generated detection dataset: circles, squares and triangles on cluttered backgrounds.

Deterministic by seed. Each image is 128×128 RGB with 1–5 objects of 12–48 px on a
gradient + blotch + noise background; two objects overlap by at most 40 % of the smaller
one's area, and each object's colour is far from the background under it. Targets carry
``boxes`` (x1 y1 x2 y2, the tight pixel extent), ``labels``, ``area`` (pixels of the shape)
and ``image_id``. Generated splits are cached under ``cache_dir("datasets")``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from edgekit.datasets.base import SPLITS, Split
from edgekit.errors import BadInputError

LABELS = ("circle", "square", "triangle")
IMAGE_SIZE = 128
MIN_SIZE, MAX_SIZE = 12, 48
MAX_OBJECTS = 5
MAX_OVERLAP = 0.4  # of the smaller object's area
MIN_CONTRAST = 80.0  # RGB distance between an object and (almost all of) the background under it
NOISE_STD = 6.0
DEFAULT_SIZES = {"train": 4000, "val": 500, "test": 500}
VERSION = 1  # bump when the generator changes so caches are not reused
_CHUNK = 250


def load_shapes(
    split: str = "test", seed: int = 0, train_size: int | None = None, val_size: int | None = None,
    test_size: int | None = None, cache: bool = True,
) -> Split:
    """The ``split`` of the shapes dataset generated from ``seed`` (sizes default to 4000/500/500)."""
    if split not in SPLITS:
        raise BadInputError(f"split must be one of {', '.join(SPLITS)}, got '{split}'")
    sizes = {"train": train_size, "val": val_size, "test": test_size}
    count = sizes[split] if sizes[split] is not None else DEFAULT_SIZES[split]
    if not isinstance(count, int) or count < 1:
        raise BadInputError(f"{split}_size must be a positive integer, got {count!r}")
    images, targets = _cached(split, seed, count) if cache else generate(count, _split_seed(seed, split))
    info = {"dataset": "shapes", "seed": seed, "image_size": IMAGE_SIZE}
    return Split(split, "detection", images, targets, LABELS, info)


def _split_seed(seed: int, split: str) -> list[int]:
    return [VERSION, seed, SPLITS.index(split)]


def _cached(split: str, seed: int, count: int) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    from edgekit.fileio import atomic_path
    from edgekit.paths import cache_dir

    key = hashlib.sha256(repr((VERSION, split, seed, count)).encode()).hexdigest()[:16]
    path = cache_dir("datasets") / f"shapes-{split}-{count}-{key}.npz"
    if path.is_file():
        try:
            return _unpack(np.load(path))
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a damaged cache entry is regenerated
    images, targets = generate(count, _split_seed(seed, split))
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as stream:
            np.savez(stream, **_pack(images, targets))
    return images, targets


def _pack(images: np.ndarray, targets: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    counts = np.array([len(t["labels"]) for t in targets], dtype=np.int64)
    return {"images": images, "counts": counts,
            "boxes": np.concatenate([t["boxes"] for t in targets]),
            "labels": np.concatenate([t["labels"] for t in targets]),
            "area": np.concatenate([t["area"] for t in targets])}


def _unpack(data: Any) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    ends = np.cumsum(data["counts"])
    starts = ends - data["counts"]
    boxes, labels, area = data["boxes"], data["labels"], data["area"]
    targets = [{"boxes": boxes[s:e], "labels": labels[s:e], "area": area[s:e], "image_id": i}
               for i, (s, e) in enumerate(zip(starts, ends))]
    return data["images"], targets


def generate(count: int, seed: Any) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    """``count`` images (N×128×128×3 uint8) and their targets, from ``seed``."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    targets = []
    for start in range(0, count, _CHUNK):
        canvas = backgrounds(min(_CHUNK, count - start), rng)
        for index, image in enumerate(canvas):
            targets.append(_draw_objects(image, rng, start + index))
        canvas += rng.normal(0.0, NOISE_STD, canvas.shape).astype(np.float32)
        images[start : start + len(canvas)] = canvas.clip(0, 255).round().astype(np.uint8)
    return images, targets


def backgrounds(count: int, rng: np.random.Generator) -> np.ndarray:
    """Linear colour gradients plus a few soft Gaussian blotches, N×H×W×3 float32."""
    grid = (np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5) / IMAGE_SIZE
    ys, xs = grid[:, None], grid[None, :]
    angle = rng.uniform(0, 2 * np.pi, count).astype(np.float32)
    ramp = np.cos(angle)[:, None, None] * xs + np.sin(angle)[:, None, None] * ys  # N×H×W
    ramp = (ramp - ramp.min(axis=(1, 2), keepdims=True)) / np.ptp(ramp, axis=(1, 2), keepdims=True)
    start, end = rng.uniform(0, 255, (2, count, 1, 1, 3)).astype(np.float32)
    canvas = start + (end - start) * ramp[..., None]
    for _ in range(3):
        cx, cy = rng.uniform(0, 1, (2, count, 1, 1)).astype(np.float32)
        sigma = rng.uniform(0.08, 0.25, (count, 1, 1)).astype(np.float32)
        weight = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2)) * rng.uniform(0.3, 0.8, (count, 1, 1))
        colour = rng.uniform(0, 255, (count, 1, 1, 3)).astype(np.float32)
        canvas += (colour - canvas) * weight[..., None].astype(np.float32)
    return canvas


def shape_mask(kind: int, size: int) -> np.ndarray:
    """A size×size boolean mask of a filled circle (0), square (1) or upright triangle (2)."""
    centres = np.arange(size, dtype=np.float32) + 0.5
    ys, xs = centres[:, None], centres[None, :]
    if kind == 0:
        half = size / 2
        return (xs - half) ** 2 + (ys - half) ** 2 <= half**2
    if kind == 1:
        return np.ones((size, size), dtype=bool)
    # apex at the top centre, base on the bottom row: |x - s/2| ≤ y / 2
    return np.abs(xs - size / 2) <= ys / 2 + 0.25


def _draw_objects(image: np.ndarray, rng: np.random.Generator, image_id: int) -> dict[str, Any]:
    wanted = int(rng.integers(1, MAX_OBJECTS + 1))
    placed: list[tuple[np.ndarray, np.ndarray, int, float]] = []  # box, mask (full image), kind, area
    for _ in range(wanted * 20):
        if len(placed) == wanted:
            break
        kind, size = int(rng.integers(0, len(LABELS))), int(rng.integers(MIN_SIZE, MAX_SIZE + 1))
        x0, y0 = (int(v) for v in rng.integers(0, IMAGE_SIZE - size + 1, 2))
        local = shape_mask(kind, size)
        rows, cols = np.nonzero(local)
        box = np.array([x0 + cols.min(), y0 + rows.min(), x0 + cols.max() + 1, y0 + rows.max() + 1], np.float32)
        area = float(local.sum())
        if all(_box_overlap(box, other) <= MAX_OVERLAP * min(area, other_area) for other, _, _, other_area in placed):
            mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
            mask[y0 : y0 + size, x0 : x0 + size] = local
            placed.append((box, mask, kind, area))
    for _, mask, _, _ in placed:
        image[mask] = _contrasting_colour(image[mask], rng)
    return {
        "boxes": np.array([p[0] for p in placed], dtype=np.float32).reshape(-1, 4),
        "labels": np.array([p[2] for p in placed], dtype=np.int64),
        "area": np.array([p[3] for p in placed], dtype=np.float32),
        "image_id": image_id,
    }


def _box_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection area of two boxes: an upper bound of the overlap of the shapes inside them."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return float(max(width, 0.0) * max(height, 0.0))


def _contrasting_colour(under: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random colour whose distance to the 5th-percentile-closest background pixel is large."""
    best, best_distance = None, -1.0
    for _ in range(32):
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        distance = float(np.percentile(np.linalg.norm(under - colour, axis=1), 5))
        if distance >= MIN_CONTRAST:
            return colour
        if distance > best_distance:
            best, best_distance = colour, distance
    return best

