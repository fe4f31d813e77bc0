"""`edgekit report` (tables, HTML, Markdown, CSV from the history store; --baseline gates a run)
and `edgekit diff A B` (the regression gate between two runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import check_outputs, handle_errors


def register(app: typer.Typer) -> None:
    app.command("report")(handle_errors(report))
    app.command("diff")(handle_errors(diff))


def report(
    db: Optional[str] = typer.Option(None, help="History store URL \\[default: SQLite in the user data dir]."),
    run: Optional[list[int]] = typer.Option(None, "--run", help="Only this run id (repeatable)."),
    suite: Optional[str] = typer.Option(None, help="Only runs of this suite."),
    model: Optional[str] = typer.Option(None, help="Only this model (name or file)."),
    device: Optional[str] = typer.Option(None, help="Only runs whose CPU/device or host name contains this."),
    since: Optional[str] = typer.Option(None, help="Only runs started on or after this date (YYYY-MM-DD[THH:MM])."),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML report."),
    md_out: Optional[Path] = typer.Option(None, "--md", help="Write a Markdown table."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write a CSV table."),
    baseline: Optional[int] = typer.Option(None, help="Regression gate: compare the run (--run, else the newest "
                                           "matching run) with this run id; exit 1 on a regression."),
    k: float = typer.Option(3.0, help="Gate: slower when beyond k x pooled noise (MAD of round p50s) ..."),
    min_change: float = typer.Option(10.0, help="Gate: ... and beyond this many % of the baseline."),
    accuracy_tolerance: float = typer.Option(0.5, help="Gate: allowed accuracy drop (percentage points)."),
    ignore: Optional[str] = typer.Option(None, help="Gate: pair cells that differ only in these settings (comma "
                                         "list of model, runtime, precision, batch, threads, scenario, options)."),
) -> None:
    """Report what the history store holds (filters combine); with --baseline, gate a run against it."""
    from edgekit.errors import BadInputError
    from edgekit.fileio import check_distinct
    from edgekit.report.regression import GateConfig
    from edgekit.store import open_store

    check_outputs(html_out, md_out, csv_out, inputs=[store_file(db)])
    check_distinct([("--html", html_out), ("--md", md_out), ("--csv", csv_out)])
    gate = GateConfig(k, min_change, accuracy_tolerance)
    with open_store(db) as store:
        rows = store.records(run_ids=run, suite=suite, model=model, device=device, since=_date(since))
        if baseline is not None:
            candidate = _candidate_run(run, rows, baseline)
            _gate(store, baseline, candidate, gate, _ignored(ignore))
            return
        if not rows:
            raise BadInputError("no results match (see `edgekit bench --suite ...` to make some)")
        runs = [store.run_info(run_id) for run_id in dict.fromkeys(r["run_id"] for r in rows)]
    _write(rows, runs, html_out, md_out, csv_out)


def diff(
    baseline: int = typer.Argument(..., help="Baseline run id."),
    candidate: int = typer.Argument(..., help="Run id to check."),
    db: Optional[str] = typer.Option(None, help="History store URL \\[default: SQLite in the user data dir]."),
    k: float = typer.Option(3.0, help="Slower when beyond k x pooled noise (MAD of round p50s) ..."),
    min_change: float = typer.Option(10.0, help="... and beyond this many % of the baseline."),
    accuracy_tolerance: float = typer.Option(0.5, help="Allowed accuracy drop (percentage points)."),
    ignore: Optional[str] = typer.Option(None, help="Pair cells that differ only in these settings (comma list of "
                                         "model, runtime, precision, batch, threads, scenario, options)."),
) -> None:
    """Regression gate: exit 1 when a cell of CANDIDATE is slower beyond noise or less accurate than in BASELINE
    (or when no cell of the two runs matches: nothing was compared)."""
    from edgekit.report.regression import GateConfig
    from edgekit.store import open_store

    gate = GateConfig(k, min_change, accuracy_tolerance)
    ignored = _ignored(ignore)
    with open_store(db) as store:
        _gate(store, baseline, candidate, gate, ignored)


def _ignored(text: str | None) -> tuple[str, ...]:
    from edgekit.cli.matrix import split_list
    from edgekit.report.regression import check_ignore

    return check_ignore(tuple(split_list(text, "ignore"))) if text is not None else ()


def _candidate_run(run: list[int] | None, rows: list[dict], baseline: int) -> int:
    from edgekit.errors import BadInputError

    if run and len(run) > 1:
        raise BadInputError("--baseline compares one run: give at most one --run")
    if run:
        return run[0]
    later = sorted({r["run_id"] for r in rows if r["run_id"] != baseline})
    if not later:
        raise BadInputError(f"no run other than the baseline {baseline} matches to compare with it")
    return later[-1]


def _gate(store, baseline: int, candidate: int, gate, ignore: tuple[str, ...] = ()) -> None:
    from edgekit.cli.matrix import wide_console
    from edgekit.errors import CheckFailedError
    from edgekit.report.environment import machines_warning
    from edgekit.report.regression import compare_runs, unmatched_reason

    runs = [store.run_info(baseline), store.run_info(candidate)]   # "no run N" as one line
    old, new = store.records(run_ids=[baseline]), store.records(run_ids=[candidate])
    verdicts = compare_runs(old, new, gate, history=store.records(), ignore=ignore)
    compared = [v for v in verdicts if v.status not in ("only-in-baseline", "only-in-candidate")]
    if not compared:
        hint = "" if ignore else " (--ignore SETTINGS pairs cells that differ only in those)"
        raise CheckFailedError(f"nothing compared: no cell of run {candidate} matches one of baseline run {baseline}"
                               f" — {unmatched_reason(old, new)}{hint}")
    _show_verdicts(verdicts, baseline, candidate)
    warning = machines_warning(runs)
    if warning:
        wide_console().print(f"warning: {warning}", markup=False, highlight=False)
    failed = [v for v in verdicts if v.regressed]
    if failed:
        raise CheckFailedError(f"{len(failed)} of {len(verdicts)} cells regressed in run {candidate} against run "
                               f"{baseline}: {failed[0].cell} {failed[0].status} ({failed[0].note})")


def _show_verdicts(verdicts, baseline: int, candidate: int) -> None:
    from rich.table import Table
    from rich.text import Text

    from edgekit.cli.matrix import wide_console

    table = Table(title=f"run {candidate} against baseline run {baseline}")
    for column in ("cell", "verdict", "baseline ms", "candidate ms", "change", "threshold ms", "noise σ ms", "note"):
        table.add_column(column, justify="right" if "ms" in column or column == "change" else "left")
    fmt = lambda v, p="{:.3f}": "-" if v is None else p.format(v)  # noqa: E731
    for v in verdicts:
        table.add_row(Text(v.cell), Text(v.status), fmt(v.baseline_ms), fmt(v.candidate_ms),
                      fmt(v.change_pct, "{:+.1f}%"), fmt(v.threshold_ms), fmt(v.noise_ms), Text(v.note))
    wide_console().print(table)


def _write(rows, runs, html_out, md_out, csv_out) -> None:
    from edgekit.cli.matrix import wide_console
    from edgekit.fileio import write_text_atomic
    from edgekit.report.environment import environment_line, machines_warning, split_unavailable
    from edgekit.report.tables import to_csv, to_markdown

    shown, unavailable = split_unavailable(rows)
    notes = [environment_line(run) for run in runs] + [line for line in [machines_warning(runs)] if line]
    after = [unavailable] if unavailable else []
    if html_out:
        from edgekit.report.html import render_html
        from edgekit.store.db import require

        require("matplotlib", "the HTML report's plots", "report")
        write_text_atomic(html_out, render_html(shown, notes=notes, after=after))
    if md_out:
        write_text_atomic(md_out, to_markdown(shown, notes=notes, after=after))
    if csv_out:
        write_text_atomic(csv_out, to_csv(rows))
    out = wide_console()
    if not (html_out or md_out or csv_out):
        for line in notes:
            out.print(line, markup=False, highlight=False)
        out.print(_terminal_table(shown))
        for line in after:
            out.print(line, markup=False, highlight=False)
    for path in (html_out, md_out, csv_out):
        if path:
            out.print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, {len(rows)} cells)", markup=False)


def _terminal_table(rows):
    from rich.table import Table
    from rich.text import Text

    from edgekit.report.tables import COLUMNS, cell_text

    shown = [c for c in COLUMNS if c[1] not in ("model_sha256", "p99_ms", "cold_start_ms", "cosine", "metric",
                                                "miou_vs_fp32")]
    table = Table(title=f"{len(rows)} cells")
    for header, _, fmt in shown:
        table.add_column(header, justify="left" if fmt == "{}" else "right", overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell_text(row, key, fmt)) for _, key, fmt in shown))
    return table


def store_file(db: str | None) -> Path | None:
    """The SQLite file of a history store URL (None for other databases): an output must never be it."""
    from edgekit.store.db import default_url

    url = db or default_url()
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _date(text: str | None):
    if text is None:
        return None
    from datetime import datetime, timezone

    from edgekit.errors import BadInputError

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadInputError(f"--since must be a date like 2026-01-31 or 2026-01-31T12:00, got '{text}'") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
