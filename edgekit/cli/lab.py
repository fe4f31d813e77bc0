"""The matrix of `edgekit bench --cluster ADDRESS --device NAME`: cells run as Ray tasks on a lab device."""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import BadInputError


def run_on_lab(spec, db: str | None, force: bool, json_out: Path | None, cluster: str, device: str | None) -> None:
    """Run the matrix on the lab device, store it here, print its table (and JSON)."""
    from edgekit.cli.common import write_json
    from edgekit.cli.matrix import matrix_table, wide_console
    from edgekit.matrix.lab import Lab, run_matrix_on_lab
    from edgekit.store import open_store

    if not device:
        raise BadInputError("--cluster needs --device NAME: the lab device to measure on")
    out = wide_console()
    with open_store(db) as store:   # a bad store URL is refused before the lab is joined
        lab = Lab(cluster, device).connect()
        try:
            result = run_matrix_on_lab(spec, store, lab, force=force,
                                       on_record=lambda r: out.print(f"{r.cell.label}: {r.status}", highlight=False))
        finally:
            lab.shutdown()
    title = f"run {result.run_id} on lab device {device}" + (f" · suite {spec.name}" if spec.name else "")
    out.print(matrix_table(result.records, title))
    out.print(f"stored in {store.safe_url} as run {result.run_id}")
    if json_out:
        write_json(json_out, {"run_id": result.run_id, "device": device,
                              "records": [r.to_dict() for r in result.records]})
