"""The one selection rule of `quantize --max-drop` and `optimize`: a variant is chosen only when it
fits the accuracy budget *and* beats its FP32 basis by ``MIN_SPEEDUP`` (repeated runs on a busy CPU
vary by a few percent, and INT8 can be slower than FP32, so "no gain" is never the best choice);
among those, the fastest, with latencies within ``TIE`` of it a tie broken by file size, then cold start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

MIN_SPEEDUP = 1.05
TIE = 0.03            # latencies within 3 % are a tie on a noisy, shared CPU

T = TypeVar("T")


def speedup(basis_ms: float | None, ms: float | None) -> float | None:
    """How many times faster ``ms`` is than ``basis_ms`` (None when either is missing)."""
    return basis_ms / ms if basis_ms and ms else None


def verdict(drop: float | None, gain: float | None, max_drop: float) -> str:
    """'ok', or why a candidate with this accuracy ``drop`` (points) and ``gain`` over FP32 is not chosen."""
    if drop is None:
        return "no accuracy measured"
    if drop > max_drop + 1e-9:
        return f"drop {drop:+.2f} pt over budget {max_drop:g}"
    if gain is None or gain < MIN_SPEEDUP:
        return f"not faster than FP32 by {MIN_SPEEDUP - 1:.0%} ({gain or 0:.2f}x)"
    return "ok"


def fastest(eligible: Sequence[T], ms: Callable[[T], float], size_mb: Callable[[T], float],
            cold_start_ms: Callable[[T], float] = lambda _: 0.0) -> T | None:
    """The fastest of ``eligible``; candidates within ``TIE`` of it are a tie, broken by the smaller
    file, then the quicker cold start."""
    if not eligible:
        return None
    best = min(ms(item) for item in eligible)
    tied = [item for item in eligible if ms(item) <= best * (1 + TIE)]
    return min(tied, key=lambda item: (round(size_mb(item), 2), cold_start_ms(item), ms(item)))
