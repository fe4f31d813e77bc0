"""Digits as identities: the embedding data set ``digits-identities``.

An embedding model learns from some identities and must tell apart identities it never saw:
``train`` and ``val`` hold the known digits (0–4 by default; digits' own train and val images),
``test`` every image of the unseen digits (5–9 by default, ≈ 900 images from all three digits
splits). Targets are identity indices into the split's labels. Robot tier: numpy only.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from edgekit.datasets.base import SPLITS, Split
from edgekit.datasets.digits import load_digits, parse_classes
from edgekit.errors import BadInputError

KNOWN, UNSEEN = "0-4", "5-9"


def load_identities(split: str = "test", seed: int = 0, known: Iterable[int] | str = KNOWN,
                    unseen: Iterable[int] | str = UNSEEN) -> Split:
    """``split`` of the digit identities: train/val of the ``known`` digits, test of the ``unseen`` ones."""
    if split not in SPLITS:
        raise BadInputError(f"split must be one of {', '.join(SPLITS)}, got '{split}'")
    known_digits, unseen_digits = parse_classes(_spec(known)), parse_classes(_spec(unseen))
    if set(known_digits) & set(unseen_digits):
        raise BadInputError(f"known digits {known_digits} and unseen digits {unseen_digits} overlap")
    if split in ("train", "val"):
        part = load_digits(split, seed, classes=known_digits)
        images, targets, labels = part.images, part.targets, part.labels
    else:
        parts = [load_digits(name, seed, classes=unseen_digits) for name in SPLITS]
        images = np.concatenate([p.images for p in parts])
        targets = np.concatenate([p.targets for p in parts])
        labels = parts[0].labels
    info = {"dataset": "digits-identities", "seed": seed, "known": list(known_digits), "unseen": list(unseen_digits),
            "identities": [int(label) for label in labels]}
    return Split(split, "embedding", images, np.asarray(targets, dtype=np.int64), labels, info)


def _spec(value: Iterable[int] | str) -> Iterable[int] | str:
    return str(value) if isinstance(value, (int, float)) else value
