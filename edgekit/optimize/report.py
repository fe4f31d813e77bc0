"""The proof of an optimize search: a one-line verdict, the HTML report (the matrix report's table
and Pareto plot, plus every candidate's verdict) and a Markdown report with the plot beside it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from edgekit.errors import CheckFailedError
from edgekit.optimize.search import SearchResult
from edgekit.optimize.select import best_fp32, closest, describe, speedup


def verdict_line(result: SearchResult) -> str:
    """'ship int8-nncf on openvino with threads=default: 3.4x faster than FP32, -0.4 pt top1 (budget 1)'."""
    chosen = result.winner or result.baseline
    candidate = chosen.candidate
    settings = ", ".join([f"threads={candidate.threads or 'default'}", f"batch={candidate.batch}",
                          *(f"{k}={v}" for k, v in candidate.options)])
    metric = (chosen.quality.metric if chosen.quality and chosen.quality.accuracy is not None else "top-1 agreement")
    if result.winner is None:
        why = (f"the time limit left {result.not_measured} candidate(s) unmeasured and none measured qualified"
               if result.not_measured else "no candidate beat it by the required margin")
        return f"ship FP32 on {candidate.runtime} with {settings}: {why} within --max-drop {result.config.max_drop:g}"
    drift = timing_drift(result)
    gain = f"no speed-up stated: {drift}" if drift else speedup_text(result, chosen)
    return (f"ship {candidate.variant} on {candidate.runtime} with {settings}: {gain}, "
            f"{0.0 - (chosen.drop or 0.0) + 0.0:+.1f} pt {metric} (budget {result.config.max_drop:g})")


#: the default FP32 timed before and after the other confirmations may differ by this factor before the
#: machine's speed is taken to have changed under them (then their times are not comparable)
DRIFT = 1.3


def timing_drift(result: SearchResult) -> str:
    """'' when the default FP32, confirmed first and timed again after the finalists, took about the same
    both times; else why no speed-up can be stated (a busy neighbour came or went between candidates)."""
    baseline = result.baseline
    if baseline.full is None or baseline.recheck is None or not baseline.full.per_item_ms:
        return ""
    before, after = baseline.full.per_item_ms, baseline.recheck.per_item_ms
    if max(before, after) <= DRIFT * min(before, after):
        return ""
    return (f"the machine's speed changed during the search ({baseline.candidate.label} took {before:.3g} ms "
            f"before the finalists and {after:.3g} ms after): run again on an idle machine")


def speedup_text(result: SearchResult, chosen) -> str:
    """'2.4x faster than the best FP32 measured (openvino fp32 t2); 5.0x than the default FP32 (ort-cpu fp32)'."""
    basis = best_fp32(result.entries, result.baseline)
    default = result.baseline
    text = ""
    if basis is not chosen:
        gain = speedup(basis.ms, chosen.ms) or 0.0
        text = f"{gain:.1f}x faster than the best FP32 measured ({basis.candidate.label})"
    if basis is not default:
        text += ("; " if text else "") + (f"{speedup(default.ms, chosen.ms) or 0.0:.1f}x than the default FP32 "
                                          f"({default.candidate.label})")
    return text or "the FP32 default"


def summary_lines(result: SearchResult) -> list[str]:
    """Counts, pruning reasons and (when nothing qualified) the closest candidates."""
    entries = result.entries
    lines = [f"{len(entries)} candidates: {sum(e.quick is not None for e in entries)} timed, "
             f"{sum(e.quality is not None for e in entries)} judged, {sum(result.pruned.values())} pruned, "
             f"{result.not_measured} not measured (time limit), "
             f"{sum(e.status in ('unsupported', 'failed') for e in entries)} unsupported/failed, "
             f"{sum(e.reused_from is not None for e in entries)} reused from earlier runs; "
             f"search {result.seconds:.0f} s"]
    reasons = Counter(e.verdict.split(" (")[0].removeprefix("pruned: ") for e in entries
                      if e.verdict.startswith("pruned"))
    lines += [f"pruned ({count}): {reason}" for reason, count in reasons.most_common()]
    if not result.confirmed:
        lines.append("finalists not confirmed with full timing (time limit): latency-pass figures")
    drift = timing_drift(result)
    if drift:
        lines.append(f"timings not comparable: {drift}")
    return lines


def no_winner_error(result: SearchResult) -> CheckFailedError | None:
    """CheckFailedError when candidates beat FP32 but none within budget, listing the closest."""
    near = closest(result.entries, result.baseline, result.config.max_drop)
    if result.winner is not None or not near:
        return None
    listed = "; ".join(describe(e, result.baseline) for e in near)
    return CheckFailedError(f"no candidate meets --max-drop {result.config.max_drop:g} (nothing written); "
                            f"closest: {listed}")


def candidate_rows(result: SearchResult) -> list[dict[str, Any]]:
    """One line per candidate: label, status, ms per item, speedup, drop, verdict."""
    rows = []
    base = result.baseline
    for entry in sorted(result.entries, key=lambda e: (e.ms is None, e.ms or 0.0)):
        same_pass = base.full if entry.full else base.quick   # ratios within one timing pass
        gain = speedup(same_pass.per_item_ms if same_pass else None, entry.ms)
        rows.append({"candidate": entry.candidate.label, "status": entry.status,
                     "ms per item": None if entry.ms is None else round(entry.ms, 3),
                     "timing": "confirmed" if entry.full else ("latency pass" if entry.quick else "-"),
                     "speedup": None if gain is None else round(gain, 2),
                     "drop pt": None if entry.drop is None else round(entry.drop, 2),
                     "reused": entry.reused_from, "verdict": entry.verdict})
    return rows


def store_rows(result: SearchResult, store) -> list[dict[str, Any]]:
    """The run's stored rows (each candidate's last stage), precision labelled with its variant, plus
    the candidates that were never measured."""
    latest: dict[str, dict[str, Any]] = {}
    for row in store.records(run_ids=[result.run_id]):
        identity = json.dumps([row["runtime"], row["precision"], row["batch"], row["threads"], row["options"]],
                              sort_keys=True, default=str)
        if identity not in latest or (row.get("config") or {}).get("stage") == "full":
            latest[identity] = row
    shown = []
    for row in latest.values():
        row = dict(row)
        row["precision"] = (row.get("options") or {}).get("variant", row["precision"])
        shown.append(row)
    for entry in result.entries:
        if entry.status == "not measured":
            cell = entry.candidate.cell(result.config.model)
            shown.append({"run_id": result.run_id, "model": cell.model, "model_name": result.meta.model_name,
                          "runtime": cell.runtime, "precision": entry.candidate.variant, "batch": cell.batch,
                          "threads": cell.threads, "scenario": cell.scenario, "options": dict(cell.options),
                          "status": "not measured", "reason": "not measured: time limit"})
    return shown


def write_reports(result: SearchResult, store, base: Path) -> tuple[Path, Path]:
    """``base``.html and ``base``.md (with ``base``.pareto.svg); written atomically."""
    from edgekit.fileio import write_text_atomic
    from edgekit.report.html import render_html
    from edgekit.report.plots import latency_vs_accuracy
    from edgekit.report.tables import to_markdown

    rows = store_rows(result, store)
    title = f"edgekit optimize: {result.meta.model_name or result.source.stem} (max drop {result.config.max_drop:g} pt)"
    verdict = verdict_line(result)
    notes = [f"Verdict: {verdict}", *summary_lines(result),
             f"Judged on {result.data_name}; run {result.run_id} in the history store."]
    notes += [f"{c['candidate']}: {c['verdict'] or c['status']}" for c in candidate_rows(result)]
    html_path, md_path = base.with_name(base.name + ".html"), base.with_name(base.name + ".md")
    write_text_atomic(html_path, render_html(rows, title, notes))
    svg = latency_vs_accuracy([r for r in rows if r["status"] == "ok"])
    parts = [f"# {title}", "", f"**{verdict}**", "", *[f"- {line}" for line in summary_lines(result)], ""]
    if svg:
        svg_path = base.with_name(base.name + ".pareto.svg")
        write_text_atomic(svg_path, svg)
        parts += [f"![latency vs quality, Pareto front]({svg_path.name})", ""]
    parts += ["## Candidates", "", _markdown_table(candidate_rows(result)), "",
              to_markdown(rows, "Measurements (history store rows)").replace("# ", "## ", 1)]
    write_text_atomic(md_path, "\n".join(parts))
    return html_path, md_path


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    for row in rows:
        lines.append("| " + " | ".join("-" if row[k] is None else str(row[k]).replace("|", "\\|") for k in keys) + " |")
    return "\n".join(lines)
