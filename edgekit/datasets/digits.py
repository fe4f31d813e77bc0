"""scikit-learn's bundled handwritten digits (1,797 real 8×8 scans), placed like MNIST in 32×32.

Each 8×8 image (values 0..16) is scaled to 0..255, upsampled bilinearly to 20×20 and
centred in a 32×32 black canvas: the layout LeNet-5 saw on MNIST (a 20×20 digit box in
a 28×28 image, padded to 32×32). No download: the data ships inside scikit-learn.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from edgekit.datasets.base import Split, split_indices
from edgekit.errors import BadInputError

IMAGE_SIZE = 32
DIGIT_BOX = 20
TEST_FRACTION = VAL_FRACTION = 0.15


def load_digits(
    split: str = "test", seed: int = 0, classes: Iterable[int] | str | None = None,
    test_fraction: float = TEST_FRACTION, val_fraction: float = VAL_FRACTION,
) -> Split:
    """One split of the digits, fixed by ``seed``; ``classes`` keeps a subset (e.g. "5-9").

    The split is drawn over all 1,797 images before any class filter, so an image stays in
    the same split whichever classes are kept. With the default fractions the test split
    has 270 images (one image = 0.37 points of accuracy).
    """
    images, digits = _all_digits()
    count = len(digits)
    if not (0 < test_fraction < 1 and 0 <= val_fraction < 1 and test_fraction + val_fraction < 1):
        raise BadInputError(f"test/val fractions must be in (0, 1) and sum below 1, "
                            f"got {test_fraction}, {val_fraction}")
    # exact counts (round each of val and test; train takes the rest)
    n_test, n_val = round(test_fraction * count), round(val_fraction * count)
    fractions = ((count - n_test - n_val) / count, n_val / count, n_test / count)
    index = split_indices(count, fractions, seed)[split]
    kept = parse_classes(classes)
    if kept:
        index = index[np.isin(digits[index], kept)]
        remap = {digit: position for position, digit in enumerate(kept)}
        targets = np.array([remap[d] for d in digits[index]], dtype=np.int64)
    else:
        kept = tuple(range(10))
        targets = digits[index].astype(np.int64)
    labels = tuple(str(d) for d in kept)
    info = {"dataset": "digits", "seed": seed, "classes": list(kept), "source": "sklearn.datasets.load_digits"}
    return Split(split, "classification", images[index], targets, labels, info)


def parse_classes(classes: Iterable[int] | str | None) -> tuple[int, ...]:
    """'0-4', '5,7,9', [1, 2] or None → sorted digits (empty tuple: all)."""
    if classes is None:
        return ()
    if isinstance(classes, str):
        values: list[int] = []
        try:
            for part in classes.replace(" ", "").split(","):
                low, dash, high = part.partition("-")
                values.extend(range(int(low), int(high) + 1) if dash else [int(low)])
        except ValueError:
            raise BadInputError(f"classes must look like 0-4 or 1,3,5, got '{classes}'") from None
    else:
        values = [int(c) for c in classes]
    kept = tuple(sorted(set(values)))
    if not kept or kept[0] < 0 or kept[-1] > 9:
        raise BadInputError(f"digit classes must be between 0 and 9, got '{classes}'")
    if len(kept) < 2:
        raise BadInputError(f"a classifier needs at least 2 classes, got '{classes}'")
    return kept


@lru_cache(maxsize=1)
def _all_digits() -> tuple[np.ndarray, np.ndarray]:
    from edgekit.deps import require

    datasets = require("sklearn.datasets", "eval")
    bunch = datasets.load_digits()
    images = place_scans(bunch.images.astype(np.float32) * (255.0 / 16.0))  # (n, 8, 8) in 0..255
    images.setflags(write=False)
    return images, bunch.target.astype(np.int64)


def place_scans(scans: np.ndarray) -> np.ndarray:
    """(n, 8, 8) scans in 0..255 → (n, 32, 32, 1) uint8: each upsampled bilinearly to 20×20 and centred."""
    from edgekit.tasks.preprocess import bilinear

    offset = (IMAGE_SIZE - DIGIT_BOX) // 2
    images = np.zeros((len(scans), IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8)
    for i, image in enumerate(scans):
        big = bilinear(image[:, :, None], DIGIT_BOX, DIGIT_BOX)
        images[i, offset : offset + DIGIT_BOX,
               offset : offset + DIGIT_BOX] = np.clip(big.round(), 0, 255).astype(np.uint8)
    return images
