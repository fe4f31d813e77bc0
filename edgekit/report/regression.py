"""The regression gate: compare a run with a baseline run, cell by cell.

Method. Every cell is timed in ``rounds`` rounds and keeps one figure per round (p50 latency, or
ms per item offline). For a cell present in both runs, with medians ``a`` (baseline) and ``b``
(candidate) of those round figures, the noise is the pooled median absolute deviation of the
rounds, scaled to a standard deviation: ``σ = 1.4826 · sqrt((MAD_a² + MAD_b²) / 2)``. The cell is
slower when ``b − a > max(k · σ, x % of a)`` (defaults k = 3, x = 10 %), faster in the mirror case.
Rounds run back to back, so that σ is the noise *within* a run; when the store holds three or more
other runs of the same cell, the spread of their medians (1.4826 · MAD) is the run-to-run noise,
and σ is the larger of the two.
It is less accurate when its accuracy (percentage points) dropped by more than the tolerance
(default 0.5), or — without labelled data — its top-1 agreement with FP32 by more than the
agreement tolerance (default 10 points); a cell that ran in the baseline and fails now regresses.
Cells are matched by model name, runtime, precision, batch, threads, scenario and options, so a
changed model file (new sha256) is compared with the one it replaces; ``ignore`` pairs cells that
differ only in the settings it names. Two runs with no cell in common compare nothing: that is an
error naming the settings that differ, never a pass.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from edgekit.errors import BadInputError

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class GateConfig:
    k: float = 3.0
    min_change_pct: float = 10.0
    accuracy_tolerance: float = 0.5
    agreement_tolerance: float = 10.0

    def __post_init__(self) -> None:
        for name in ("k", "min_change_pct", "accuracy_tolerance", "agreement_tolerance"):
            if getattr(self, name) < 0 or math.isnan(getattr(self, name)):
                raise BadInputError(f"{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")


@dataclass(frozen=True)
class Verdict:
    """One cell's comparison. ``status``: slower | less-accurate | fails | faster | same | only-in-baseline |
    only-in-candidate; times in ms (per query, or per item offline)."""

    cell: str
    status: str
    baseline_ms: float | None = None
    candidate_ms: float | None = None
    threshold_ms: float | None = None
    noise_ms: float | None = None
    baseline_accuracy: float | None = None
    candidate_accuracy: float | None = None
    note: str = ""

    @property
    def regressed(self) -> bool:
        return self.status in ("slower", "less-accurate", "fails")

    @property
    def change_pct(self) -> float | None:
        if self.baseline_ms and self.candidate_ms is not None:
            return 100.0 * (self.candidate_ms - self.baseline_ms) / self.baseline_ms
        return None


SETTINGS = ("model", "runtime", "precision", "batch", "threads", "scenario", "options")


def identity(row: dict[str, Any], ignore: tuple[str, ...] = ()) -> tuple:
    """The settings that pair a cell with its counterpart in another run (``ignore``d ones as '*')."""
    options = tuple(sorted((row.get("options") or {}).items()))
    values = (row.get("model_name") or row["model"], row["runtime"], row["precision"], row["batch"], row["threads"],
              row["scenario"], options)
    return tuple("*" if name in ignore else value for name, value in zip(SETTINGS, values))


def check_ignore(names: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [name for name in names if name not in SETTINGS]
    if unknown:
        raise BadInputError(f"--ignore takes {', '.join(SETTINGS)}; got {', '.join(unknown)}")
    return names


def unmatched_reason(baseline: list[dict[str, Any]], candidate: list[dict[str, Any]]) -> str:
    """Which settings keep two runs' cells apart: 'threads: baseline default, candidate 1; ...'."""
    differing = []
    for index, name in enumerate(SETTINGS):
        old = {identity(row)[index] for row in baseline}
        new = {identity(row)[index] for row in candidate}
        if old != new:
            shown = lambda values: ", ".join(sorted(_setting_text(v) for v in values)) or "none"  # noqa: E731
            differing.append(f"{name}: baseline {shown(old)}, candidate {shown(new)}")
    return "; ".join(differing) or "no setting differs"


def _setting_text(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, tuple):
        return " ".join(f"{k}={v}" for k, v in value) or "no options"
    return str(value)


def _by_identity(rows: list[dict[str, Any]], ignore: tuple[str, ...] = ()) -> dict[tuple, dict[str, Any]]:
    """Rows by identity; where one run holds two models of the same name (a zoo model and a trained
    file of that architecture), those are told apart by what the suite named (zoo name or path)."""
    counts: dict[tuple, int] = {}
    for row in rows:
        counts[identity(row, ignore)] = counts.get(identity(row, ignore), 0) + 1
    keyed = {}
    for row in rows:
        key = identity(row, ignore)
        if counts[key] > 1:
            key = (f"{key[0]} ({row['model']})", *key[1:])
        keyed[key] = row
    return keyed


def describe(key: tuple) -> str:
    model, runtime, precision, batch, threads, scenario, options = key
    text = f"{model} · {runtime} · {precision} · b{batch}" + (f" t{threads}" if threads else "") + f" · {scenario}"
    return text + ("".join(f" {k}={v}" for k, v in options))


def compare_runs(baseline: list[dict[str, Any]], candidate: list[dict[str, Any]],
                 config: GateConfig = GateConfig(), history: list[dict[str, Any]] = (),
                 ignore: tuple[str, ...] = ()) -> list[Verdict]:
    """A verdict for every cell of either run (rows as the store returns them). ``history``: rows of
    other runs (the candidate's excluded) whose spread per cell measures the run-to-run noise."""
    old, new = _by_identity(baseline, ignore), _by_identity(candidate, ignore)
    spread = run_to_run_sigma(history, exclude={r["run_id"] for r in candidate if "run_id" in r})
    verdicts = []
    for key in list(old) + [k for k in new if k not in old]:
        name = describe(key)
        if key not in new:
            verdicts.append(Verdict(name, "only-in-baseline"))
        elif key not in old:
            verdicts.append(Verdict(name, "only-in-candidate"))
        else:
            verdicts.append(_compare(name, old[key], new[key], config, spread.get(key, 0.0)))
    return verdicts


def run_to_run_sigma(rows: list[dict[str, Any]], exclude: set[int] = frozenset()) -> dict[tuple, float]:
    """Per cell, 1.4826 · MAD of the medians of its runs' round figures, where it has 3 runs or more."""
    medians: dict[tuple, dict[int, float]] = {}
    for row in rows:
        if row["status"] == "ok" and row.get("round_ms") and row.get("run_id") not in exclude:
            medians.setdefault(identity(row), {})[row["run_id"]] = statistics.median(row["round_ms"])
    return {key: MAD_TO_SIGMA * _mad(list(values.values())) for key, values in medians.items() if len(values) >= 3}


def _compare(name: str, old: dict[str, Any], new: dict[str, Any], config: GateConfig, between_runs: float) -> Verdict:
    if old["status"] == "ok" and new["status"] != "ok":
        return Verdict(name, "fails", note=f"{new['status']}: {new['reason']}")
    if new["status"] != "ok" or old["status"] != "ok":
        return Verdict(name, "same", note=f"not comparable (baseline {old['status']}, candidate {new['status']})")
    a_rounds, b_rounds = list(old.get("round_ms") or []), list(new.get("round_ms") or [])
    if not a_rounds or not b_rounds:
        return Verdict(name, "same", note="no timing rounds stored")
    a, b = statistics.median(a_rounds), statistics.median(b_rounds)
    noise = max(MAD_TO_SIGMA * math.sqrt((_mad(a_rounds) ** 2 + _mad(b_rounds) ** 2) / 2), between_runs)
    threshold = max(config.k * noise, config.min_change_pct / 100.0 * a)
    common = dict(baseline_ms=a, candidate_ms=b, threshold_ms=threshold, noise_ms=noise,
                  baseline_accuracy=old.get("accuracy"), candidate_accuracy=new.get("accuracy"))
    accuracy_note = _accuracy_drop(old, new, config)
    if accuracy_note:
        return Verdict(name, "less-accurate", note=accuracy_note, **common)
    if b - a > threshold:
        return Verdict(name, "slower", note=f"+{b - a:.3f} ms > threshold {threshold:.3f} ms", **common)
    if a - b > threshold:
        return Verdict(name, "faster", **common)
    return Verdict(name, "same", **common)


def _accuracy_drop(old: dict[str, Any], new: dict[str, Any], config: GateConfig) -> str:
    if old.get("accuracy") is not None and new.get("accuracy") is not None:
        drop = old["accuracy"] - new["accuracy"]
        if drop > config.accuracy_tolerance:
            return f"{old.get('metric') or 'accuracy'} {old['accuracy']:.2f} → {new['accuracy']:.2f} " \
                   f"(−{drop:.2f} > {config.accuracy_tolerance:g} points)"
        return ""
    if old.get("agreement_top1_pct") is not None and new.get("agreement_top1_pct") is not None:
        drop = old["agreement_top1_pct"] - new["agreement_top1_pct"]
        if drop > config.agreement_tolerance:
            return f"top-1 agreement with FP32 {old['agreement_top1_pct']:.1f} → {new['agreement_top1_pct']:.1f} %"
    return ""


def _mad(values: list[float]) -> float:
    center = statistics.median(values)
    return statistics.median(abs(v - center) for v in values)
