"""benchmarks/sidebyside.py: the paired per-round ratio and the RESULTS.md section (no models, fast)."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from sidebyside import Results, paired_ratio  # noqa: E402

ISSUE_RATIOS = [1.011, 1.012, 1.823, 0.989, 0.920]  # overhead.py's resnet18 rounds in the issue


def test_paired_median_ignores_a_slow_spell():
    bare = [2.0, 2.0, 1.0, 2.0, 1.0]  # a slow spell changes the column medians, not the rounds' ratios
    ours = [b * r for b, r in zip(bare, ISSUE_RATIOS)]
    median, ratios = paired_ratio(ours, bare)
    assert median == pytest.approx(1.011)
    assert ratios == pytest.approx(ISSUE_RATIOS)
    assert statistics.median(ours) / statistics.median(bare) != pytest.approx(1.011)


def test_odd_and_even_round_counts():
    assert paired_ratio([3.0], [2.0])[0] == pytest.approx(1.5)
    assert paired_ratio([1.0, 2.0, 9.0], [1.0, 1.0, 1.0])[0] == pytest.approx(2.0)
    assert paired_ratio([1.0, 2.0, 3.0, 9.0], [1.0] * 4)[0] == pytest.approx(2.5)  # the middle two's mean


@pytest.mark.parametrize("numerator, denominator, message", [
    ([1.0, 2.0], [1.0], "differ in length"),
    ([], [], "no rounds"),
    ([1.0, 0.0], [1.0, 1.0], "positive"),
    ([1.0, 1.0], [-1.0, 1.0], "positive"),
    ([float("nan")], [1.0], "positive"),
])
def test_bad_columns_raise(numerator, denominator, message):
    with pytest.raises(ValueError, match=message):
        paired_ratio(numerator, denominator)


def test_results_section_written(tmp_path, capsys):
    facts = {"cpu": "Test CPU 9000", "cpus": 2, "machine": "x86_64", "os": "Linux", "python": "3.11",
             "edgekit": "0.1.0", "cpu_flags": ["avx2", "avx512f"], "libraries": {"onnxruntime": "1.0"},
             "git_commit": "abcdef1234567"}
    target = tmp_path / "RESULTS.md"
    results = Results("demo", path=target, facts=facts)
    assert "Test CPU 9000" in capsys.readouterr().out
    results.ratio("ours / bare", [2.2, 2.0, 4.0], [2.0, 2.0, 2.0], "bare")
    results.note("an accuracy")
    assert results.write() == target
    text = target.read_text()
    assert "## demo, 20" in text and " UTC" in text
    assert "Test CPU 9000, 2 cores" in text and "avx2, avx512f" in text and "onnxruntime 1.0" in text
    assert "| ours / bare | bare | 1.100x | 1.100, 1.000, 2.000 |" in text and "- an accuracy" in text
    assert Results("off", enabled=False, path=tmp_path / "none.md", facts=facts).write() is None
    assert not (tmp_path / "none.md").exists()
