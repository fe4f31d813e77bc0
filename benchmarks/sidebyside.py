"""Shared by the benchmarks: side-by-side ratios, where they ran, and their section in RESULTS.md.

A side-by-side ratio is the median of the paired per-round ratios: each round measures A, then B,
and the ratio of that round is B / A; a slow spell hits one round, not the headline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

RESULTS = Path(__file__).resolve().with_name("RESULTS.md")
OTHER_LIBRARIES = ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "scikit-learn")


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> tuple[float, list[float]]:
    """Median of ``numerator[i] / denominator[i]`` over the rounds, and those per-round ratios."""
    if len(numerator) != len(denominator):
        raise ValueError(f"paired columns differ in length: {len(numerator)} vs {len(denominator)} rounds")
    if not numerator:
        raise ValueError("no rounds to pair")
    bad = [v for v in (*numerator, *denominator) if not v > 0]  # also catches NaN
    if bad:
        raise ValueError(f"per-round values must be positive, got {bad[0]!r}")
    ratios = [float(n) / float(d) for n, d in zip(numerator, denominator)]
    return statistics.median(ratios), ratios


def rounds_text(ratios: Sequence[float], digits: int = 3) -> str:
    return ", ".join(f"{r:.{digits}f}" for r in ratios)


def add_results_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-results", action="store_true", help="do not append this run to benchmarks/RESULTS.md")


def environment() -> dict:
    """Where this runs: edgekit's manifest (CPU, ISA flags, library versions) plus OpenCV and scikit-learn."""
    from importlib.metadata import PackageNotFoundError, version

    from edgekit.bench.environment import manifest

    facts = manifest()
    for name in OTHER_LIBRARIES:
        try:
            facts.setdefault("libraries", {})[name] = version(name)
        except PackageNotFoundError:
            pass
    return facts


def environment_lines(facts: dict) -> list[str]:
    commit = facts.get("git_commit", "")[:10]
    versions = [f"Python {facts['python']}", f"edgekit {facts['edgekit']}" + (f" ({commit})" if commit else ""),
                *(f"{name} {v}" for name, v in facts.get("libraries", {}).items())]
    load = facts.get("load_average")
    return [f"CPU: {facts['cpu']}, {facts['cpus']} cores ({facts['machine']})"
            + (f", load average {load[0]:.2f}" if load else ""),
            f"ISA: {', '.join(facts.get('cpu_flags', [])) or 'unknown'}",
            f"versions: {', '.join(versions)}; {facts['os']}"]


class Results:
    """One benchmark run: prints where it runs, collects its paired ratios, appends them to RESULTS.md."""

    def __init__(self, name: str, enabled: bool = True, path: Path = RESULTS, facts: dict | None = None):
        self.name, self.enabled, self.path = name, enabled, Path(path)
        self.facts = facts if facts is not None else environment()
        self.rows: list[tuple[str, str, float, list[float]]] = []
        self.notes: list[str] = []
        print("\n".join(environment_lines(self.facts)), flush=True)

    def ratio(self, label: str, numerator: Sequence[float], denominator: Sequence[float],
              basis: str) -> tuple[float, list[float]]:
        """The paired median of ``numerator / denominator``, recorded with ``basis`` (what is 1.0x)."""
        median, ratios = paired_ratio(numerator, denominator)
        self.rows.append((label, basis, median, ratios))
        return median, ratios

    def note(self, line: str) -> None:
        """A result that is not a ratio (an accuracy, a verdict): listed under the table."""
        self.notes.append(line)

    def markdown(self) -> str:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        lines = [f"## {self.name}, {now}", "", *(f"- {line}" for line in environment_lines(self.facts)),
                 f"- command: `{' '.join(['python', *sys.argv])}`", ""]
        if self.rows:
            lines += ["| ratio | basis (1.0x) | median of rounds | per-round ratios |", "|---|---|---:|---|"]
            lines += [f"| {label} | {basis} | {median:.3f}x | {rounds_text(ratios)} |"
                      for label, basis, median, ratios in self.rows]
            lines.append("")
        lines += [f"- {line}" for line in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def write(self) -> Path | None:
        """Append this run's section to the results file (nothing with --no-results)."""
        if not self.enabled:
            return None
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write("\n" + self.markdown())
        print(f"results appended to {self.path}")
        return self.path
