"""The options every command that takes a model source shares: --weights, --input, --meta, --meta-file.

Declared once here so bench, compare, eval, export, predict and quantize spell and document them alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

WEIGHTS = typer.Option(None, "--weights", help="A state_dict (.pt) for a zoo model or a factory (loaded with "
                       "weights_only=True); random weights otherwise.")
INPUTS = typer.Option(None, "--input", help="User model input name:1x3x224x224[:float32] (repeatable; '?' or a "
                      "name for a dynamic dim).")
META = typer.Option(None, "--meta", help="Metadata KEY=VALUE for the export of a zoo model or torch source "
                    "(task, labels, mean, std...; see `edgekit meta set`).")
META_FILE = typer.Option(None, "--meta-file", help="Metadata from a YAML mapping (--meta pairs win).")


@dataclass(frozen=True)
class SourceOptions:
    """What a torch source or zoo model needs beyond its name: weights, input specs, metadata changes."""

    weights: Path | None = None
    specs: tuple = ()
    meta_changes: dict[str, Any] = field(default_factory=dict)

    def resolve(self, model: str, **export: Any) -> Path:
        """``model`` as a model file (a torch source or zoo name exported to the cache first)."""
        from edgekit.sources import resolve_model

        return resolve_model(model, weights=self.weights, inputs=self.specs, meta_changes=self.meta_changes, **export)


def source_options(weights: Path | None, input_specs: list[str] | None, meta_pairs: list[str] | None,
                   meta_file: Path | None) -> SourceOptions:
    """Parse the shared options (bad specs and metadata are one-line errors before any work)."""
    from edgekit.cli.user_model import meta_changes
    from edgekit.inputs.specs import parse_input_specs

    return SourceOptions(weights, tuple(parse_input_specs(input_specs)), meta_changes(meta_pairs, meta_file))
