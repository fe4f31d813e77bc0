"""Choosing what to ship with the one selection rule (``matrix.choice``, shared with `edgekit quantize
--max-drop`): the fastest candidate within the accuracy budget that beats the best FP32 configuration
by a real margin; and, when nothing qualifies, the closest candidates to show the user."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgekit.matrix.choice import MIN_SPEEDUP, fastest, speedup, verdict
from edgekit.matrix.quality import Quality
from edgekit.optimize.measure import Timed
from edgekit.optimize.space import Candidate

NOISE = 0.25          # the latency pass keeps judging candidates within 25 % of the best in budget (a loaded CPU)


@dataclass
class Entry:
    """A candidate's state during the search. ``verdict`` says why it was kept, pruned or skipped."""

    candidate: Candidate
    status: str = "pending"          # pending | ok | unsupported | failed | not measured
    quick: Timed | None = None
    full: Timed | None = None
    recheck: Timed | None = None     # the default FP32 timed again after the other confirmations
    quality: Quality | None = None
    drop: float | None = None        # points lost against FP32 (accuracy, else 100 - top-1 agreement)
    verdict: str = ""
    reason: str = ""
    reused_from: int | None = None
    variant_path: str = ""
    variant_options: dict[str, Any] | None = None

    @property
    def ms(self) -> float | None:
        """ms per item: the confirmation's when there is one, else the latency pass's."""
        timed = self.full or self.quick
        return timed.per_item_ms if timed else None

    @property
    def size_mb(self) -> float:
        timed = self.full or self.quick
        return timed.size_mb if timed else float("inf")

    @property
    def cold_start_ms(self) -> float:
        timed = self.full or self.quick
        return timed.cold_start_ms if timed else float("inf")

    def in_budget(self, max_drop: float) -> bool:
        return self.drop is not None and self.drop <= max_drop + 1e-9


def quality_drop(baseline: Quality, quality: Quality) -> float | None:
    """Points lost: the task metric when both have it, else top-1 disagreement with FP32 in percent."""
    if baseline.accuracy is not None and quality.accuracy is not None:
        return baseline.accuracy - quality.accuracy
    if quality.agreement_top1_pct is not None:
        return 100.0 - quality.agreement_top1_pct
    return None


def best_fp32(entries: list[Entry], baseline: Entry) -> Entry:
    """The fastest FP32 configuration measured in the baseline's timing pass (confirmed figures when
    the baseline was confirmed): the basis every speed-up is stated against."""
    confirmed = baseline.full is not None
    fp32 = [e for e in entries if e.status == "ok" and e.candidate.precision == "fp32" and e.ms is not None
            and (e.full is not None) == confirmed]
    return min(fp32, key=lambda e: e.ms, default=baseline)


def pick(finalists: list[Entry], baseline: Entry, max_drop: float) -> Entry | None:
    """The finalist ``matrix.choice`` selects: within budget and at least ``MIN_SPEEDUP`` faster than the
    best FP32 configuration among the finalists (the default FP32 is ``baseline``), the fastest, ties by
    size then cold start. When no reduced precision qualifies, that FP32 configuration is the pick if it
    beats the default by the margin."""
    basis = best_fp32(finalists, baseline)
    eligible = [e for e in finalists if e is not baseline and e.candidate.precision != "fp32"
                and verdict(e.drop, speedup(basis.ms, e.ms), max_drop) == "ok"]
    if not eligible:
        return basis if basis is not baseline and (speedup(baseline.ms, basis.ms) or 0) >= MIN_SPEEDUP else None
    return fastest(eligible, lambda e: e.ms, lambda e: e.size_mb, lambda e: e.cold_start_ms)


def closest(entries: list[Entry], baseline: Entry, max_drop: float, count: int = 3) -> list[Entry]:
    """Judged candidates faster than FP32 but over budget, smallest drop first."""
    over = [e for e in entries if e is not baseline and e.drop is not None and not e.in_budget(max_drop)
            and (speedup(baseline.ms, e.ms) or 0) >= MIN_SPEEDUP]
    return sorted(over, key=lambda e: e.drop)[:count]


def describe(entry: Entry, baseline: Entry) -> str:
    """'openvino int8-nncf b1: 3.4x, drop +0.40 pt'."""
    gain = speedup(baseline.ms, entry.ms)
    text = f"{entry.candidate.label}: " + (f"{gain:.2f}x FP32" if gain else "not timed")
    if entry.drop is not None:
        text += f", drop {entry.drop:+.2f} pt"
    return text
