"""Characters as identities: the generated embedding data set ``glyph-identities``.

The handwritten digits give an embedder five identities to learn from, and verifying identities it
never saw needs many more. Here an identity is a printable character; each image is one drawing of
it in one of OpenCV's Hershey fonts (8 faces, a third of them italic, strokes 6–14 % of the capital
height) under a random rotation (±12°), shear (±0.25) and scale (±15 % per axis), size-normalised
into a box, shifted and scanned like the digits (8×8 block averages placed in 32×32 as ``digits``
places them, at a random gain), so a model trained on one runs on the other.

``train`` (100 images per identity) and ``val`` (30) hold the ``known`` characters, ``test`` the
``unseen`` ones: the digits 0–9 by default, 90 images each, drawn from one fixed seed whatever the
training seed. The 49 known characters by default are letters and symbols without the ones that
pass for a digit in some font (O D Q: 0, I ! l: 1, Z: 2, S $: 5, G b: 6, T ?: 7, B &: 8, g q: 9), so
no unseen identity has a near-copy among the known ones, and without the lowercase letters that are
a smaller copy of their capital once size-normalised (c o p s v w x z). A character's drawings do
not depend on which other characters are chosen; they may differ slightly between OpenCV versions
(anti-aliased drawing), which ``VERSION`` does not track. Needs OpenCV (the ``camera`` extra).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from edgekit.datasets.base import SPLITS, Split
from edgekit.datasets.digits import place_scans
from edgekit.errors import BadInputError

VERSION = 1
LETTERS_AND_SYMBOLS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghijkmnqrtuy#$%&*+/<=>?@[]^{}~()!\\"  # no c o p s v w x z l
DIGIT_LOOKALIKES = "ODQI!lZS$GbT?B&gq"
KNOWN = "".join(c for c in LETTERS_AND_SYMBOLS if c not in DIGIT_LOOKALIKES)  # 49
UNSEEN = "0123456789"
PER_IDENTITY = {"train": 100, "val": 30, "test": 90}
TEST_SEED = 1_000_003  # the test drawings are the same for every training seed
ITALIC = 1 / 3
CAP_HEIGHT = 48  # pixels of a capital before the random affine
BOX = 128  # the size-normalising box, scanned to 8×8 (16×16 pixel blocks)


def load_glyph_identities(split: str = "test", seed: int = 0, known: object = KNOWN, unseen: object = UNSEEN) -> Split:
    """``split`` of the glyph identities: train/val of the ``known`` characters, test of the ``unseen`` ones."""
    if split not in SPLITS:
        raise BadInputError(f"split must be one of {', '.join(SPLITS)}, got '{split}'")
    known, unseen = _characters(known, "known"), _characters(unseen, "unseen")
    if set(known) & set(unseen):
        raise BadInputError(f"known and unseen characters overlap: {''.join(sorted(set(known) & set(unseen)))}")
    characters = unseen if split == "test" else known
    draw_seed = TEST_SEED if split == "test" else seed
    scans = np.concatenate([_drawings(c, split, draw_seed) for c in characters])
    images = place_scans(scans)
    images.setflags(write=False)
    targets = np.repeat(np.arange(len(characters), dtype=np.int64), PER_IDENTITY[split])
    info = {"dataset": "glyph-identities", "seed": seed, "known": known, "unseen": unseen,
            "identities": list(characters), "version": VERSION}
    return Split(split, "embedding", images, targets, tuple(characters), info)


def _characters(value: object, name: str) -> str:
    """The characters of ``value``: a string, an integer written as digits (the CLI's -O unseen=56789),
    or single characters; anything else is refused rather than turned into text."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, (list, tuple)) and all(isinstance(c, str) and len(c) == 1 for c in value):
        text = "".join(value)
    else:
        raise BadInputError(f"{name} must be characters such as ABC or 0123, got {value!r}")
    bad = sorted({c for c in text if not 33 <= ord(c) <= 126})
    if bad:
        raise BadInputError(f"{name} characters must be printable ASCII without spaces, got {''.join(bad)!r}")
    if len(set(text)) != len(text):
        raise BadInputError(f"{name} characters repeat: '{text}'")
    if len(text) < 2:
        raise BadInputError(f"{name} needs at least 2 characters (identities), got '{text}'")
    return text


@lru_cache(maxsize=256)
def _drawings(character: str, split: str, seed: int) -> np.ndarray:
    """(n, 8, 8) float32 scans in 0..255 of one character, from its own random stream."""
    from edgekit.deps import require

    cv2 = require("cv2", "camera")
    rng = np.random.default_rng([VERSION, seed, SPLITS.index(split), ord(character)])
    scans = np.stack([_draw(cv2, character, rng) for _ in range(PER_IDENTITY[split])])
    scans.setflags(write=False)
    return scans


def _draw(cv2, character: str, rng: np.random.Generator) -> np.ndarray:
    faces = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
             cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
             cv2.FONT_HERSHEY_SCRIPT_COMPLEX)
    face = faces[rng.integers(len(faces))] | (cv2.FONT_ITALIC if rng.random() < ITALIC else 0)
    (_, cap), _ = cv2.getTextSize("H", face, 1.0, 1)
    scale = CAP_HEIGHT / cap
    thickness = max(1, round(rng.uniform(0.06, 0.14) * CAP_HEIGHT))
    canvas = np.zeros((4 * CAP_HEIGHT, 4 * CAP_HEIGHT), np.uint8)
    cv2.putText(canvas, character, (CAP_HEIGHT, int(2.5 * CAP_HEIGHT)), face, scale, 255, thickness, cv2.LINE_AA)
    angle, shear = np.deg2rad(rng.uniform(-12, 12)), rng.uniform(-0.25, 0.25)
    linear = (np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
              @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag(rng.uniform(0.85, 1.15, 2)))
    rows, cols = np.nonzero(canvas)
    centroid = np.array([cols.mean(), rows.mean()])
    centre = np.array(canvas.shape[::-1], dtype=np.float64) / 2
    affine = np.hstack([linear, (centre - linear @ centroid)[:, None]])
    canvas = cv2.warpAffine(canvas, affine, canvas.shape[::-1], flags=cv2.INTER_LINEAR)
    rows, cols = np.nonzero(canvas > 40)
    glyph = canvas[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    height, width = glyph.shape
    fit = rng.uniform(0.8, 0.95) * BOX / max(height, width)
    glyph = cv2.resize(glyph, (max(1, round(width * fit)), max(1, round(height * fit))), interpolation=cv2.INTER_AREA)
    height, width = glyph.shape
    top = int(np.clip((BOX - height) // 2 + rng.integers(-6, 7), 0, BOX - height))
    left = int(np.clip((BOX - width) // 2 + rng.integers(-6, 7), 0, BOX - width))
    box = np.zeros((BOX, BOX), np.uint8)
    box[top:top + height, left:left + width] = glyph
    scan = cv2.resize(box, (8, 8), interpolation=cv2.INTER_AREA).astype(np.float32)
    return np.clip(scan * rng.uniform(0.9, 1.4), 0, 255)
