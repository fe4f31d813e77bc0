"""The report's table: one row per stored cell, as Markdown, CSV or data for the HTML page."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

# (header, row key, format) — the order of every table the report writes
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("run", "run_id", "{}"), ("started", "started", "{}"), ("device", "device", "{}"), ("model", "model_name", "{}"),
    ("runtime", "runtime", "{}"), ("precision", "precision", "{}"), ("batch", "batch", "{}"),
    ("threads", "threads", "{}"), ("scenario", "scenario", "{}"), ("status", "status", "{}"),
    ("size MB", "size_mb", "{:.2f}"), ("accuracy", "accuracy", "{:.2f}"), ("metric", "metric", "{}"),
    ("agree % (top-1/pixels)", "agreement_top1_pct", "{:.1f}"), ("cosine", "cosine", "{:.5f}"),
    ("mask mIoU vs FP32", "miou_vs_fp32", "{:.4f}"),
    ("p50 ms", "p50_ms", "{:.3f}"), ("p90 ms", "p90_ms", "{:.3f}"), ("p99 ms", "p99_ms", "{:.3f}"),
    ("FPS (p50)", "throughput_items_s", "{:.1f}"), ("cold start ms", "cold_start_ms", "{:.1f}"),
    ("reason", "reason", "{}"), ("model sha256", "model_sha256", "{}"),
)


def model_label(row: dict[str, Any]) -> str:
    """The model's name, and the file it came from when the suite named a file (a trained LeNet-5
    and the zoo's lenet5 share a name)."""
    from pathlib import PurePath

    name, model = row.get("model_name") or "", str(row.get("model") or "")
    if PurePath(model).suffix:
        return f"{name} ({PurePath(model).name})" if name else PurePath(model).name
    return name or model


def threads_text(threads: int | None, config: dict[str, Any] | None) -> str:
    """A cell's thread count as used: the one asked for, or the runtime's default with what it was."""
    if threads:
        return str(threads)
    used = ((config or {}).get("runtime") or {}).get("threads_used")
    return f"{used} (default)" if used else "default"


def quality_notes(config: dict[str, Any] | None) -> str:
    """Why a cell that ran has no accuracy or agreement figure ('' when it has both)."""
    config = config or {}
    notes = [f"no accuracy: {config['no_accuracy']}"] if config.get("no_accuracy") else []
    if config.get("nothing_to_compare"):
        notes.append(f"no agreement: nothing to compare: {config['nothing_to_compare']}")
    return "; ".join(notes)


#: figures a record keeps in its config, shown as columns of their own
FROM_CONFIG = ("miou_vs_fp32",)


def row_value(row: dict[str, Any], key: str) -> Any:
    return (row.get("config") or {}).get(key) if key in FROM_CONFIG else row.get(key)


def cell_text(row: dict[str, Any], key: str, pattern: str) -> str:
    value = row_value(row, key)
    if key == "threads" and not value:
        return threads_text(None, row.get("config"))
    if key == "reason" and not value:
        return quality_notes(row.get("config"))
    if value is None or value == "":
        return "" if key in ("reason", "metric") else "-"
    if key == "started" and hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M")
    if key == "model_sha256":
        return str(value)[:12]
    if key == "model_name":
        return model_label(row)
    if key == "threads":
        return threads_text(value, row.get("config"))
    try:
        return pattern.format(value)
    except (TypeError, ValueError):
        return str(value)


def to_markdown(rows: list[dict[str, Any]], title: str = "edgekit benchmark report", notes: list[str] = (),
                after: list[str] = ()) -> str:
    """A Markdown page: ``notes`` (each run's environment), the table, then ``after``."""
    lines = [f"# {title}", "", f"{len(rows)} cells.", "", *(f"- {_md_text(n)}" for n in notes), "",
             "| " + " | ".join(h for h, _, _ in COLUMNS) + " |",
             "|" + "|".join("---" if f == "{}" else "---:" for _, _, f in COLUMNS) + "|"]
    for row in rows:
        cells = (_md_text(cell_text(row, key, fmt)) for _, key, fmt in COLUMNS)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *(_md_text(line) for line in after)] if after else []
    return "\n".join(lines) + "\n"


def _md_text(text: str) -> str:
    """Text as Markdown shows it, never as HTML a renderer would run: <, >, & escaped, | kept in its cell,
    links, images, code and emphasis shown as typed, one line."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"([\\`*_\[\]|])", r"\\\1", text)
    return " ".join(text.splitlines())


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Full precision, one header line; the same columns as the other tables."""
    stream = io.StringIO()
    writer = csv.writer(stream)
    writer.writerow([h for h, _, _ in COLUMNS])
    for row in rows:
        values = []
        for _, key, _ in COLUMNS:
            value = model_label(row) if key == "model_name" else row_value(row, key)
            if key == "threads" and not value:   # the runtime's default, as it was used: "2 (default)"
                value = threads_text(None, row.get("config"))
            values.append("" if value is None else value.isoformat() if hasattr(value, "isoformat") else
                          csv_cell(value))
        writer.writerow(values)
    return stream.getvalue()


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a leading '."""
    return f"'{value}" if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
