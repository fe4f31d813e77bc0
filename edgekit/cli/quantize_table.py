"""`edgekit quantize`'s precision table: the library's PrecisionReport drawn with rich (the library
returns data; this module renders it)."""

from __future__ import annotations

from edgekit.quantize.report import PrecisionReport


def render(report: PrecisionReport, kept: tuple[str, str] | None = None):
    """A rich table; ``kept`` (variant, runtime) is marked. Names are text, never markup."""
    from rich.markup import escape
    from rich.table import Table

    title = f"{report.model}: precision vs speed" + (f" on {report.dataset}" if report.dataset else "")
    if report.threads:
        title += f" ({report.threads} threads, batch 1)"
    table = Table(title=escape(title))
    for column in ("variant", "runtime", "size MB", "p50 ms", "p90 ms", "speedup", "accuracy", "drop",
                   "cosine", "top-1 agree"):
        table.add_column(column, justify="left" if column in ("variant", "runtime") else "right")
    for row in report.rows:
        mark = " ◀ kept" if kept == (row.variant, row.runtime) else ""
        speed = "-" if row.speedup is None else _speed(row.speedup)
        table.add_row(
            escape(row.variant + mark), escape(row.runtime), f"{row.size_mb:.2f}", f"{row.p50_ms:.3f}",
            f"{row.p90_ms:.3f}", speed,
            _fmt(row.accuracy, "{:.2f}", row.metric), _fmt(row.accuracy_drop, "{:+.2f}"),
            _fmt(row.cosine, "{:.4f}"), _fmt(row.top1_agreement_pct, "{:.1f}%"),
        )
    return table


def _speed(speedup: float) -> str:
    """``0.53x (slower)``; three decimals where two would round a slower row up to 1.00x."""
    if speedup >= 1:
        return f"{speedup:.2f}x"
    return (f"{speedup:.3f}x" if speedup >= 0.995 else f"{speedup:.2f}x") + " (slower)"


def _fmt(value: float | None, pattern: str, suffix: str = "") -> str:
    if value is None:
        return "-"
    return pattern.format(value) + (f" {suffix}" if suffix else "")
