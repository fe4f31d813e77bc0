"""Checks that compared nothing are loud: outputs without spread, input-independent outputs, empty
box matches and constant inputs never pass, and say why (edgekit.parity)."""

from types import SimpleNamespace

import numpy as np
import pytest

from edgekit.parity import (
    compare_fp32, compare_outputs, constant_input_reason, match_boxes, spread_of,
)

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((8, 10)).astype(np.float32)


def test_logits_of_1e_9_have_nothing_to_compare():
    tiny = {"output": (LOGITS * 1.9e-9).astype(np.float32)}
    report = compare_outputs(tiny, {"output": tiny["output"] * np.float32(1 + 1e-6)})
    (output,) = report.outputs
    assert output.within_tolerance and not output.passed and not report.passed   # agreeing means nothing
    assert 0 < output.spread < 1e-6 and output.nothing_to_compare.startswith("outputs have no spread (std 1.")
    assert "random weights? use trained weights" in output.nothing_to_compare
    assert report.nothing_to_compare == output.nothing_to_compare
    assert report.summary().endswith(f"nothing to compare: {output.nothing_to_compare}")
    assert ": ok" not in report.summary()


def test_outputs_with_spread_compare_as_before():
    report = compare_outputs({"output": LOGITS}, {"output": LOGITS + 1e-6})
    (output,) = report.outputs
    assert report.passed and output.passed and not output.nothing_to_compare and not report.nothing_to_compare
    assert output.spread == pytest.approx(float(LOGITS.astype(np.float64).std()))
    assert report.summary().endswith(": ok")
    bad = compare_outputs({"output": LOGITS}, {"output": -LOGITS})
    assert not bad.passed and bad.summary().endswith("FAILED on output")
    small = {"output": LOGITS * 1e-4}   # tiny but with spread: atol accepts anything, the cosine does not
    assert not compare_outputs(small, {"output": -small["output"]}).passed
    assert compare_outputs(small, {"output": small["output"] * (1 + 1e-6)}).passed


def test_input_independent_outputs_and_constants():
    same = np.repeat(LOGITS[:1], 4, axis=0)
    report = compare_outputs({"output": same}, {"output": same})
    assert not report.passed and "all 4 samples give the same output" in report.nothing_to_compare
    assert report.outputs[0].spread > 1e-6
    assert not compare_outputs({"output": np.full((1, 10), 0.3)}, {"output": np.full((1, 10), 0.3)}).passed
    assert spread_of(np.zeros((0, 4)))[1] == "the output is empty"
    assert spread_of(LOGITS[:1])[1] == ""   # one sample: independence cannot be told
    assert compare_outputs({}, {}).nothing_to_compare == "no outputs to compare"


def test_an_uncompared_output_beside_a_compared_one():
    reference = {"boxes": LOGITS, "scores": np.full(8, 1 / 91, np.float32)}
    report = compare_outputs(reference, dict(reference))
    assert report.passed and not report.nothing_to_compare
    assert report.summary().endswith("ok; not compared: scores (outputs have no spread (std 0): random weights? "
                                     "use trained weights)")
    contradicted = compare_outputs(reference, {"boxes": LOGITS, "scores": np.full(8, 0.5, np.float32)})
    assert not contradicted.passed and contradicted.summary().endswith("FAILED on scores")
    same = {"a": np.zeros(3), "b": np.tile([[1.0, 2.0, 3.0]], (2, 1))}
    both = compare_outputs(same, dict(same))
    assert both.nothing_to_compare.startswith("a: outputs have no spread (std 0)")
    assert "; b: all 2 samples give the same output" in both.nothing_to_compare


def test_fp32_comparison_compares_tiny_outputs_in_units_of_their_std():
    tiny = {"output": (LOGITS * 1.9e-9).astype(np.float32)}
    same = compare_fp32(tiny, {"output": tiny["output"] * np.float32(1 + 1e-6)})
    assert same.passed and not same.nothing_to_compare and same.outputs[0].spread < 1e-6
    assert "output has no spread (std 1." in same.note and "compared in units of its std" in same.summary()
    noise = compare_fp32(tiny, {"output": (RNG.standard_normal((8, 10)) * 1.9e-9).astype(np.float32)})
    assert not noise.passed and "FAILED on output" in noise.summary()
    constant = {"output": np.full((1, 10), 1 / 91, np.float32)}
    assert compare_fp32(constant, constant).nothing_to_compare.startswith("outputs have no spread (std 0)")
    rounding = {"output": (1000 + LOGITS * 1e-7).astype(np.float32)}   # spread below float32's resolution
    assert not compare_fp32(rounding, rounding).passed
    plain = compare_fp32({"output": LOGITS}, {"output": LOGITS})
    assert plain.passed and plain.note == ""


def test_boxes_below_the_threshold_compare_nothing():
    def detections(scores):
        count = len(scores)
        boxes = np.tile(np.array([[0, 0, 10, 10]], np.float32), (count, 1)) + np.arange(count)[:, None] * 20
        return SimpleNamespace(boxes=boxes, scores=np.asarray(scores, np.float32), labels=np.zeros(count, np.int64))

    empty = match_boxes([detections([])], [detections([])], score_threshold=0.25)
    assert not empty.passed and empty.nothing_to_compare == "no box above the score threshold 0.25 on either side"
    assert empty.summary().startswith("0/0 boxes matched") and empty.summary().endswith(
        "nothing to compare: no box above the score threshold 0.25 on either side")
    low = match_boxes([detections([0.1, 0.2])], [detections([0.1, 0.2])], score_threshold=0.25)
    assert low.nothing_to_compare and not low.passed
    found = match_boxes([detections([0.9, 0.2])], [detections([0.9, 0.2])], score_threshold=0.25)
    assert found.passed and not found.nothing_to_compare and found.summary().endswith(": ok")
    one_side = match_boxes([detections([0.9])], [detections([])], score_threshold=0.25)
    assert not one_side.nothing_to_compare and not one_side.passed and one_side.missing == 1


def test_constant_input_reason():
    image = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert constant_input_reason({"input": image}) == ""
    reason = constant_input_reason({"input": np.zeros_like(image)})
    assert reason == ("input 'input' is constant (every element 0): the outputs cannot depend on the data; "
                      "give real inputs")
    assert "input 'frame' is constant (every element 128)" in constant_input_reason(
        {"input": image, "frame": np.full((1, 4, 4, 3), 128, np.uint8)})
    assert constant_input_reason({"input": image, "mask": np.ones((2, 8), np.int64)}) == ""   # masks, ids
    assert constant_input_reason({"scale": np.ones(1, np.float32)}) == ""   # one element is not "constant"
