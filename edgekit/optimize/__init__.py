"""`edgekit optimize`: the fastest deployable configuration of a model within an accuracy budget,
written with its proof (metadata, HTML/Markdown report, history store run)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgekit.optimize.config import OptimizeConfig
from edgekit.optimize.search import Search, SearchResult

__all__ = ["OptimizeConfig", "Optimized", "SearchResult", "optimize"]


@dataclass(frozen=True)
class Optimized:
    result: SearchResult
    verdict: str
    output: Path
    html: Path
    markdown: Path


def report_base(output: Path) -> Path:
    """``ship.onnx`` → ``ship.report`` (its .html, .md and .pareto.svg)."""
    return output.with_name(output.name.removesuffix(output.suffix) + ".report")


def written_files(output: Path) -> list[Path]:
    """Every file `optimize` may write for ``-o output``: the model (.onnx, or an OpenVINO IR's .xml
    and .bin, whichever wins) and its reports."""
    base = report_base(output)
    return [output.with_suffix(suffix) for suffix in (".onnx", ".xml", ".bin")] + [
        base.with_name(base.name + suffix) for suffix in (".html", ".md", ".pareto.svg")]


def optimize(config: OptimizeConfig, output: Path, store, executor=None,
             log: Callable[[str], None] | None = None) -> Optimized:
    """Search, then write the chosen file and its reports. A budget that no candidate faster than FP32
    meets raises CheckFailedError (after the reports are written), listing the closest candidates."""
    from edgekit.optimize.artifact import write_winner
    from edgekit.optimize.report import no_winner_error, verdict_line, write_reports

    search = Search(config, store, executor, log)
    result = search.run()
    html, markdown = write_reports(result, store, report_base(output))
    error = no_winner_error(result)
    if error is not None:
        raise error
    chosen = result.winner or result.baseline
    variant = search.variant_of(chosen)
    written = write_winner(result, variant.path, dict(variant.runtime_options), output)
    return Optimized(result, verdict_line(result), written, html, markdown)
