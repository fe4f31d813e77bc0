"""The identity data sets embedders learn and are verified on: digits-identities and the generated
glyph-identities (unseen identities kept out, fixed test drawings, character lists from the command
line, one-line refusals), and the matrix's fallback when a recorded data set cannot be read."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta


def test_identities_split_keeps_the_test_identities_unseen():
    from edgekit.datasets import load_split

    splits = {s: load_split("digits-identities", s, seed=0) for s in ("train", "val", "test")}
    assert {s.task for s in splits.values()} == {"embedding"}
    assert splits["train"].labels == splits["val"].labels == ("0", "1", "2", "3", "4")
    assert splits["test"].labels == ("5", "6", "7", "8", "9") and len(splits["test"]) > 850
    with pytest.raises(BadInputError, match="overlap"):
        load_split("digits-identities", "test", known="0-5", unseen="5-9")


def test_glyph_identities_keep_the_unseen_characters_out_and_the_test_drawings_fixed():
    pytest.importorskip("cv2")
    from edgekit.datasets import load_split
    from edgekit.datasets.glyph_identities import DIGIT_LOOKALIKES, UNSEEN

    train = load_split("glyph-identities", "train", seed=0, known="ABC", unseen="012")
    other_seed = load_split("glyph-identities", "train", seed=1, known="ABC", unseen="012")
    test = load_split("glyph-identities", "test", seed=0, known="ABC", unseen="012")
    assert train.labels == ("A", "B", "C") and test.labels == ("0", "1", "2") and train.task == "embedding"
    assert train.images.shape == (300, 32, 32, 1) and train.images.dtype == np.uint8 and len(test) == 270
    assert np.bincount(train.targets).tolist() == [100] * 3
    assert not np.array_equal(train.images, other_seed.images)  # the training seed draws new images...
    assert np.array_equal(test.images, load_split("glyph-identities", "test", seed=7, known="ABC", unseen="012").images)
    # ...but not new test images, and a character's drawings do not depend on the other characters chosen
    wider = load_split("glyph-identities", "train", seed=0, known="XB", unseen="01")
    assert np.array_equal(train.images[100:200], wider.images[100:200])
    digits = load_split("digits", "test", seed=0)
    assert train.images.shape[1:] == digits.images.shape[1:]  # laid out like the scanned digits
    default = load_split("glyph-identities", "val", seed=0)
    assert len(default.labels) == 49 and not set(default.labels) & set(DIGIT_LOOKALIKES + UNSEEN)
    # a drawing fills a 20×20 box inside the 32×32 canvas, as the digits do
    assert train.images[:, :6].max() == 0 and train.images[:, 26:].max() == 0 and train.images[:, 6:26].max() > 200


@pytest.mark.parametrize("options, fragment", [
    ({"known": "AB", "unseen": "B0"}, "overlap: B"),
    ({"known": "AA", "unseen": "01"}, "repeat"),
    ({"known": "A B", "unseen": "01"}, "printable ASCII without spaces"),
    ({"known": "A", "unseen": "01"}, "at least 2 characters"),
])
def test_glyph_identities_refuse_bad_character_sets(options, fragment):
    from edgekit.datasets import load_split

    with pytest.raises(BadInputError, match=fragment):
        load_split("glyph-identities", "train", **options)


def test_character_lists_keep_their_digits_from_the_command_line_to_the_data_set():
    """-O unseen=0123456789 arrived as the number 123456789 (the 0 silently gone) and 1.50 as 1.5."""
    pytest.importorskip("cv2")
    from edgekit.cli.common import parse_options
    from edgekit.datasets import load_split

    options = parse_options(["unseen=0123", "known=ABC", "threads=2", "shrinkage=0.010", "dims=-3"])
    assert options == {"unseen": "0123", "known": "ABC", "threads": 2, "shrinkage": 0.01, "dims": -3}
    test = load_split("glyph-identities", "test", known=options["known"], unseen=options["unseen"])
    assert test.labels == ("0", "1", "2", "3")
    assert load_split("glyph-identities", "val", known=["A", "B"], unseen=56).labels == ("A", "B")
    assert load_split("glyph-identities", "test", known="AB", unseen=56).labels == ("5", "6")
    with pytest.raises(BadInputError, match="must be characters such as ABC or 0123, got 1.5"):
        load_split("glyph-identities", "test", known="AB", unseen=1.5)


def test_the_matrix_scores_agreement_only_when_the_recorded_data_needs_a_missing_extra(monkeypatch):
    from edgekit.datasets import glyph_identities
    from edgekit.matrix.cells import Evaluation
    from edgekit.matrix.quality import eval_data

    glyph_identities._drawings.cache_clear()
    monkeypatch.setitem(__import__("sys").modules, "cv2", None)  # OpenCV (the camera extra) not installed
    meta = ModelMeta(task="embedding", input_size=(16, 16), color="GRAY",
                     extra={"source": {"recipe": "embedder", "dataset": "glyph-identities", "seed": 0}})
    data = eval_data(meta, Evaluation(samples=8, agreement_samples=2))
    assert data.split is None and "glyph-identities, cannot be read" in data.no_accuracy
    assert "edgekit[camera]" in data.no_accuracy and len(data.agreement_images) == 2
    glyph_identities._drawings.cache_clear()
