"""The matrix behind `edgekit bench` when it is given several models, runtimes, precisions,
batches, threads or scenarios, or a --suite: parse the lists, run, print one table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.cli.common import console
from edgekit.errors import BadInputError


def split_list(text: str | None, what: str) -> list[str]:
    """'a,b' → ['a', 'b']; None → []."""
    if text is None:
        return []
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    if not items:
        raise BadInputError(f"--{what} is empty")
    return items


def int_list(text: str | None, what: str, default: list) -> list:
    """'1,8' → [1, 8] (each at least 1)."""
    values = []
    for item in split_list(text, what) or []:
        try:
            value = int(item)
        except ValueError:
            raise BadInputError(f"--{what} takes integers separated by commas, got '{text}'") from None
        if value < 1:
            raise BadInputError(f"--{what} values must be at least 1, got {value}")
        values.append(value)
    return values or default


def is_matrix(models: list[str], runtime: str, lists: dict[str, str | None], suite: Path | None) -> bool:
    """Whether `edgekit bench` was asked for more than one cell (or for anything only the matrix does)."""
    several = [text for text in lists.values() if text is not None and "," in str(text)]
    return suite is not None or len(models) > 1 or runtime in ("all", "available") or "," in runtime or bool(several) \
        or (lists.get("precision") or "fp32") != "fp32" or (lists.get("scenario") or "single-stream") != "single-stream"


@dataclass(frozen=True)
class MatrixRequest:
    """`edgekit bench`'s matrix options, each list parsed once: what ``spec_from_request`` builds a
    MatrixSpec from. ``user``: (weights, input specs, metadata changes) of a single torch source."""

    models: tuple[str, ...]
    runtime: str = "ort-cpu"
    precisions: tuple[str, ...] = ("fp32",)
    batches: tuple[int, ...] = (1,)
    threads: tuple[int | None, ...] = (None,)
    scenarios: tuple[str, ...] = ("single-stream",)
    options: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int] | None = None
    timing: Any = None
    evaluation: Any = None
    user: tuple = ()


def spec_from_request(request: MatrixRequest) -> Any:
    """A MatrixSpec from the command line's matrix options (names checked here, before anything runs)."""
    from edgekit.matrix.cells import PRECISIONS, SCENARIOS, Evaluation, MatrixSpec, Timing
    from edgekit.registry import suggest

    models = request.models
    chosen_models = tuple(matrix_model(model, *(request.user if len(models) == 1 else ())) for model in models)
    runtimes = runtime_names(request.runtime)
    for what, values, known in (("precision", request.precisions, PRECISIONS),
                                ("scenario", request.scenarios, SCENARIOS)):
        for value in values:
            if value not in known:
                raise BadInputError(f"unknown {what} '{value}'{suggest(value, list(known))} "
                                    f"(known: {', '.join(known)})")
    check_matrix_options(runtimes, request.options)
    return MatrixSpec(
        models=chosen_models, runtimes=tuple(dict.fromkeys(runtimes)), precisions=request.precisions,
        batches=request.batches, threads=request.threads, scenarios=request.scenarios,
        options=tuple(sorted(request.options.items())), input_size=request.input_size,
        timing=request.timing or Timing(), evaluation=request.evaluation or Evaluation())


def runtime_names(text: str) -> list[str]:
    """'all' (every registered runtime), 'available' (those this machine can run), or a comma list."""
    from edgekit.runtimes import RUNTIMES, get_runtime

    if text == "all":
        return RUNTIMES.names()
    if text == "available":
        found = [name for name in RUNTIMES.names() if get_runtime(name).probe().available]
        if not found:
            raise BadInputError("no runtime is available here: pip install 'edgekit[ort]' (or [openvino])")
        return found
    return [RUNTIMES.canonical(r) for r in split_list(text, "runtime")]


def check_matrix_options(runtimes: list[str], options: dict[str, Any]) -> None:
    """``-O`` options go to every cell; one that no runtime of the matrix takes is an error before
    anything runs (cells of the runtimes that refuse it are recorded with the reason)."""
    from edgekit.runtimes import get_runtime

    if not options or not runtimes:
        return
    refusals = []
    for name in runtimes:
        try:
            get_runtime(name).make_options(**options)
        except BadInputError as exc:
            refusals.append(str(exc))
    if len(refusals) == len(runtimes):
        others = " (nor does any other runtime of the matrix)" if len(runtimes) > 1 else ""
        raise BadInputError(refusals[0] + others)


def check_model(model: str) -> None:
    """A file that exists, or a zoo name (a typo gets a suggestion)."""
    if Path(model).suffix or "/" in model:
        if not Path(model).is_file():
            raise BadInputError(f"model file not found: {model}")
        return
    from edgekit.zoo.catalog import ZOO

    ZOO.canonical(model)


def matrix_model(model: str, weights: Path | None = None, inputs: tuple[str, ...] = (), meta: dict | None = None):
    """A command-line model as the matrix keeps it: a zoo name as given, a file's absolute path, or a
    ``TorchModel`` (a torch source with its weights, input specs and metadata)."""
    from edgekit.sources import parse_source

    parsed = parse_source(model)   # a missing file is an error here
    if parsed.is_torch:
        from edgekit.matrix.cells import TorchModel

        local = parsed.kind != "factory" or parsed.location.endswith(".py")
        location = str(Path(parsed.location).resolve()) if local else parsed.location
        source = f"{location}:{parsed.factory}" if parsed.factory else location
        return TorchModel.make(source, str(Path(weights).resolve()) if weights else None, tuple(inputs), meta)
    if weights or inputs or meta:
        raise BadInputError("--weights, --input and --meta in a matrix are for one torch source "
                            "(file.py:factory, TorchScript, .pt2); a suite gives each model its own")
    if parsed.kind == "file":
        return str(Path(model).resolve())
    from edgekit.zoo.catalog import ZOO

    ZOO.canonical(model)   # an unknown name gets a suggestion
    return model


def run_and_show(spec, db: str | None, force: bool, json_out: Path | None) -> None:
    """Run the matrix into the store and print its table (and JSON)."""
    from edgekit.cli.common import write_json
    from edgekit.cli.progress import CellBar
    from edgekit.matrix.runner import run_matrix
    from edgekit.store import open_store

    with open_store(db) as store:
        result = run_matrix(spec, store, force=force, progress=CellBar())
    out = wide_console()
    if result.resumed:
        skipped = len(result.records) - result.measured
        out.print(f"resumed run {result.run_id}: {skipped} finished cell(s) skipped (--force measures them again)")
    out.print(matrix_table(result.records, f"run {result.run_id}" + (f" · suite {spec.name}" if spec.name else "")))
    for line in matrix_notes(result.records):
        out.print(line, markup=False, highlight=False)
    out.print(f"stored in {store.safe_url} as run {result.run_id}")
    if json_out:
        write_json(json_out, {"run_id": result.run_id, "records": [r.to_dict() for r in result.records]})


def wide_console():
    """Thirteen columns: when not on a terminal, do not squeeze them into 80."""
    from rich.console import Console

    probe = console()
    return probe if probe.is_terminal else Console(width=200, soft_wrap=True)


def matrix_table(records, title: str):
    """model, runtime, precision, batch, threads (as used), scenario, status, size, accuracy, agreement,
    p50/p90 and FPS (from the p50). Cells whose runtime is not on this machine are left to
    ``matrix_notes``."""
    from rich.markup import escape
    from rich.table import Table

    from edgekit.report.tables import model_label, threads_text

    table = Table(title=title)
    for column in ("model", "runtime", "precision", "batch", "threads", "scenario", "status", "size MB", "accuracy",
                   "agree", "p50 ms", "p90 ms", "FPS (p50)"):
        table.add_column(column, justify="left" if column in ("model", "runtime", "precision", "scenario", "status")
                         else "right", overflow="fold")
    for r in records:
        if r.config.get("unavailable"):
            continue
        cell = r.cell
        status = r.status if r.status == "ok" else f"{r.status}: {r.reason}"
        accuracy = f"{r.accuracy:.2f} {r.metric}" if r.accuracy is not None else "-"
        agree = f"{r.agreement_top1_pct:.0f}%" if r.agreement_top1_pct is not None else (
            f"cos {r.cosine:.4f}" if r.cosine is not None else "-")
        table.add_row(*(escape(text) for text in (   # names and reasons are text, never markup
            model_label({"model_name": r.model_name, "model": cell.model}), cell.runtime, cell.precision,
            str(cell.batch), threads_text(cell.threads, r.config), cell.scenario, status, _num(r.size_mb, "{:.2f}"),
            accuracy, agree, _num(r.p50_ms, "{:.3f}"), _num(r.p90_ms, "{:.3f}"), _num(r.throughput_items_s, "{:.1f}"))))
    return table


def matrix_notes(records) -> list[str]:
    """Lines after the table: why a model has no accuracy or agreement figure (once per model and
    reason), and the runtimes this machine cannot run, collapsed into one line with the install hint."""
    from edgekit.report.tables import model_label

    notes: dict[str, None] = {}
    missing: dict[str, list] = {}
    for r in records:
        name = model_label({"model_name": r.model_name, "model": r.cell.model})
        if r.config.get("unavailable"):
            missing.setdefault(r.cell.runtime, []).append(r)
        if r.config.get("no_accuracy"):
            notes[f"no accuracy for {name}: {r.config['no_accuracy']}"] = None
        if r.config.get("nothing_to_compare"):
            notes[f"no agreement figure for {name} ({r.cell.runtime} {r.cell.precision}): nothing to compare: "
                  f"{r.config['nothing_to_compare']}"] = None
    lines = list(notes)
    if missing:
        counts = ", ".join(f"{runtime} ({len(cells)} cells)" for runtime, cells in missing.items())
        hint = next(iter(missing.values()))[0].reason
        lines.append(f"not run on this machine: {counts} — {hint}" + (" (--runtime available runs what this "
                                                                        "machine has)" if len(missing) else ""))
    return lines


def _num(value, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)

