"""A self-contained HTML report: inline CSS, inline JS (a sortable table), plots as inline SVG.
Nothing is fetched when the file is opened."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

from edgekit.report import plots
from edgekit.report.tables import COLUMNS, cell_text, row_value

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:12px}th,td{border:1px solid #ccc;padding:3px 6px}
th{background:#eee;cursor:pointer;user-select:none;position:sticky;top:0}th.asc::after{content:" ▲"}
th.desc::after{content:" ▼"}td.num{text-align:right}tr.unsupported{color:#888}tr.failed{color:#b00}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}.note{color:#555;font-size:12px}
"""

SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, index){
    th.addEventListener('click', function(){
      var ascending = !th.classList.contains('asc');
      table.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc');});
      th.classList.add(ascending ? 'asc' : 'desc');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function(a, b){
        var x = a.cells[index].getAttribute('data-sort'), y = b.cells[index].getAttribute('data-sort');
        var nx = parseFloat(x), ny = parseFloat(y), result;
        if (!isNaN(nx) && !isNaN(ny)) { result = nx - ny; }
        else if (!isNaN(nx)) { result = -1; } else if (!isNaN(ny)) { result = 1; }
        else { result = x.localeCompare(y); }
        return ascending ? result : -result;
      });
      rows.forEach(function(row){ body.appendChild(row); });
    });
  });
});
"""


def render_html(rows: list[dict[str, Any]], title: str = "edgekit benchmark report", notes: list[str] = (),
                after: list[str] = ()) -> str:
    """The whole page for ``rows`` (store rows joined with their run); ``notes`` (each run's
    environment) before the table, ``after`` (cells not run on that machine) after it."""
    figures = [
        ("Latency vs accuracy per model (Pareto front dashed)", plots.latency_vs_accuracy(rows)),
        ("Latency distributions per runtime", plots.latency_distributions(rows)),
        ("Speedup per precision", plots.speedup_per_precision(rows)),
    ]
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p class='note'>{len(rows)} cells · written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · "
             "latency in ms per query (p50 of all timed queries); FPS (p50) = items per query / p50; accuracy in percentage "
             "points; agreement = top-1 agreement with the FP32 model. Click a header to sort.</p>"]
    parts += [f"<p class='note'>{html.escape(note)}</p>" for note in notes]
    parts.append(_table(rows))
    parts += [f"<p class='note'>{html.escape(line)}</p>" for line in after]
    for caption, svg in figures:
        if svg:
            parts.append(f"<h2>{html.escape(caption)}</h2><figure class='plot'>{svg}</figure>")
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts)


def _table(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _, _ in COLUMNS)
    body = []
    for row in rows:
        cells = []
        for _, key, fmt in COLUMNS:
            value = row_value(row, key)
            sort = value if isinstance(value, (int, float)) and value is not None else cell_text(row, key, fmt)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(f"<td{' class=num' if numeric else ''} data-sort='{html.escape(str(sort), quote=True)}'>"
                         f"{html.escape(cell_text(row, key, fmt))}</td>")
        body.append(f"<tr class='{html.escape(str(row['status']))}'>{''.join(cells)}</tr>")
    return (f"<table class='sortable' id='results'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")
