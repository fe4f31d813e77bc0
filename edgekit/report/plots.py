"""The report's figures as inline SVG (matplotlib, Agg): latency vs accuracy with the Pareto
front, latency distributions per runtime, speedup per precision. Every title names the scenario."""

from __future__ import annotations

import functools
import io
import math
from collections import defaultdict
from typing import Any

from edgekit.report.tables import model_label

MAX_PANELS = 24


def _plain_text(function):
    """Every text of the figure drawn as typed: a '$' in a model name is not TeX (mathtext would fail on it);
    the SVG backend escapes <, > and & itself."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any):
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
            return function(*args, **kwargs)

    return wrapper


def _figure(rows: int, cols: int, width: float = 4.2, height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    return figure, [ax for line in axes for ax in line]


def _svg(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.tight_layout()
    figure.savefig(buffer, format="svg")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _quality(row: dict[str, Any]) -> tuple[float | None, str]:
    if row.get("accuracy") is not None:
        return row["accuracy"], row.get("metric") or "accuracy"
    if row.get("agreement_top1_pct") is not None:
        return row["agreement_top1_pct"], "top-1 agreement with FP32 %"
    return None, ""


def _speed(row: dict[str, Any]) -> float | None:
    """ms per query (p50) for latency scenarios, ms per item offline."""
    if row.get("p50_ms") is not None:
        return row["p50_ms"]
    throughput = row.get("throughput_items_s")
    return 1000.0 / throughput if throughput else None


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both lower latency (x) and higher quality (y), by latency."""
    front, best = [], -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


@_plain_text
def latency_vs_accuracy(rows: list[dict[str, Any]]) -> str | None:
    """One panel per model and scenario: each runtime × precision × batch × threads cell a point."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok" and _speed(row) is not None and _quality(row)[0] is not None:
            groups[(model_label(row), row["scenario"])].append(row)
    if not groups:
        return None
    keys = sorted(groups)[:MAX_PANELS]
    cols = min(3, len(keys))
    figure, axes = _figure(math.ceil(len(keys) / cols), cols)
    for ax, key in zip(axes, keys):
        points = [(_speed(r), _quality(r)[0], r) for r in groups[key]]
        for x, y, row in points:
            ax.scatter([x], [y], s=28)
            ax.annotate(f"{row['runtime']} {row['precision']} b{row['batch']}", (x, y), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
        front = pareto_front([(x, y) for x, y, _ in points])
        ax.plot([p[0] for p in front], [p[1] for p in front], "r--", linewidth=1, label="Pareto front")
        ax.set_title(f"{key[0]} · {key[1]}", fontsize=9)
        ax.set_xlabel("p50 ms" if key[1] != "offline" else "ms per item", fontsize=8)
        ax.set_ylabel(_quality(groups[key][0])[1], fontsize=8)
        ax.legend(fontsize=6)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    return _svg(figure)


@_plain_text
def latency_distributions(rows: list[dict[str, Any]]) -> str | None:
    """One panel per runtime and scenario: a box per cell from its stored percentiles (p5…p95)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok" and len(row.get("percentiles_ms") or []) == 19:
            groups[(row["runtime"], row["scenario"])].append(row)
    if not groups:
        return None
    keys = sorted(groups)[:MAX_PANELS]
    cols = min(2, len(keys))
    figure, axes = _figure(math.ceil(len(keys) / cols), cols, width=6.0)
    for ax, key in zip(axes, keys):
        stats = []
        for row in groups[key][:30]:
            p = row["percentiles_ms"]   # p5, p10, ..., p95
            stats.append({"label": f"{model_label(row)}\n{row['precision']} b{row['batch']}",
                          "whislo": p[0], "q1": p[4], "med": p[9], "q3": p[14], "whishi": p[18], "fliers": []})
        ax.bxp(stats, showfliers=False)
        ax.set_yscale("log")
        ax.set_ylabel("latency ms (p5–p95)", fontsize=8)
        ax.set_title(f"{key[0]} · {key[1]}", fontsize=9)
        ax.tick_params(axis="x", labelsize=6, rotation=45)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    return _svg(figure)


@_plain_text
def speedup_per_precision(rows: list[dict[str, Any]]) -> str | None:
    """Speed of each precision over FP32 of the same model, runtime, batch, threads and scenario."""
    base: dict[tuple, float] = {}
    for row in rows:
        if row["status"] == "ok" and row["precision"] == "fp32" and _speed(row):
            base[_group(row)] = _speed(row)
    bars: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        speed = _speed(row)
        if row["status"] == "ok" and row["precision"] != "fp32" and speed and _group(row) in base:
            model, runtime, batch, threads, scenario = _group(row)
            bars[f"{model}\n{runtime} b{batch} · {scenario}"][row["precision"]] = base[_group(row)] / speed
    if not bars:
        return None
    labels = sorted(bars)[:40]
    precisions = sorted({p for values in bars.values() for p in values})
    figure, axes = _figure(1, 1, width=max(6.0, 0.6 * len(labels) * len(precisions)), height=3.8)
    ax = axes[0]
    width = 0.8 / len(precisions)
    for index, precision in enumerate(precisions):
        xs = [i + index * width for i in range(len(labels))]
        ax.bar(xs, [bars[label].get(precision, 0.0) for label in labels], width, label=precision)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels, fontsize=6, rotation=45, ha="right")
    ax.set_ylabel("speedup over FP32 (×)", fontsize=8)
    ax.set_title("speedup per precision (same runtime, batch, threads, scenario)", fontsize=9)
    ax.legend(fontsize=7)
    return _svg(figure)


def _group(row: dict[str, Any]) -> tuple:
    return (model_label(row), row["runtime"], row["batch"], row["threads"], row["scenario"])
