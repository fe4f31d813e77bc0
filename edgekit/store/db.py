"""History store addressed by URL: ``sqlite:///path.db`` (default, in the user data dir) or
``postgresql+psycopg://user@host:port/db`` for a team. SQLAlchemy Core only, no dialect-specific SQL.

Every finished cell is one transaction, so a killed suite loses at most the cell in flight and
never leaves a half-written row; a run is marked finished when its last cell is stored.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgekit.errors import BadInputError, first_line
from edgekit.matrix.cells import Cell, CellRecord

RESULT_COLUMNS = ("status", "reason", "model_name", "model_sha256", "size_mb", "latency_count", "p50_ms", "p90_ms",
                  "p99_ms", "mean_ms", "throughput_items_s", "cold_start_ms", "metric", "accuracy",
                  "agreement_top1_pct", "cosine", "seconds")
JSON_COLUMNS = ("percentiles_ms", "round_ms", "metrics", "config")


def default_url() -> str:
    """``$EDGEKIT_DB``, else SQLite at ``$EDGEKIT_DATA_DIR/history.db`` (default ~/.local/share/edgekit)."""
    if os.environ.get("EDGEKIT_DB"):
        return os.environ["EDGEKIT_DB"]
    root = os.environ.get("EDGEKIT_DATA_DIR") or Path(os.environ.get("XDG_DATA_HOME")
                                                      or Path.home() / ".local/share") / "edgekit"
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'history.db'}"


def _tables():
    import sqlalchemy as sa

    metadata = sa.MetaData()
    runs = sa.Table(
        "runs", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("suite", sa.String(200), nullable=False, default=""),
        sa.Column("spec_key", sa.String(64), nullable=False, index=True),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
        sa.Column("host", sa.String(200), nullable=False, default=""),
        sa.Column("device", sa.String(300), nullable=False, default=""),
        sa.Column("git_commit", sa.String(64), nullable=False, default=""),
        sa.Column("environment", sa.JSON, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
    )
    results = sa.Table(
        "results", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("cell_key", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(500), nullable=False),
        sa.Column("runtime", sa.String(50), nullable=False),
        sa.Column("precision", sa.String(20), nullable=False),
        sa.Column("batch", sa.Integer, nullable=False),
        sa.Column("threads", sa.Integer, nullable=True),
        sa.Column("scenario", sa.String(30), nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, default=""),
        sa.Column("model_name", sa.String(200), nullable=False, default=""),
        sa.Column("model_sha256", sa.String(64), nullable=False, default=""),
        *(sa.Column(name, sa.Float, nullable=True) for name in
          ("size_mb", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_items_s", "cold_start_ms", "accuracy",
           "agreement_top1_pct", "cosine", "seconds")),
        sa.Column("latency_count", sa.Integer, nullable=False, default=0),
        sa.Column("metric", sa.String(50), nullable=False, default=""),
        *(sa.Column(name, sa.JSON, nullable=False) for name in JSON_COLUMNS),
        sa.UniqueConstraint("run_id", "cell_key", name="one_record_per_cell"),
    )
    return metadata, runs, results


def writing(method):
    """A store write that fails (a read-only file or folder, a full disk) is one line naming the store."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        import sqlalchemy as sa

        try:
            return method(self, *args, **kwargs)
        except sa.exc.SQLAlchemyError as exc:
            raise BadInputError(f"cannot write to the store {_safe(self.url)}: {_reason(exc)}") from None

    return wrapper



class Store:
    """Runs and cell records. Open with ``open_store(url)``; use as a context manager."""

    def __init__(self, url: str) -> None:
        sa = require("sqlalchemy", "the history store")
        self.url = url
        try:
            self.engine = sa.create_engine(url, future=True)
            self.metadata, self.runs, self.results = _tables()
            self.metadata.create_all(self.engine)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
            raise BadInputError(f"not a database URL: '{url}' ({first_line(exc)})") from None
        except ModuleNotFoundError as exc:  # the database driver (psycopg for PostgreSQL)
            raise BadInputError(f"the store {_safe(url)} needs {exc.name}: pip install 'edgekit[matrix]'") from None
        except sa.exc.SQLAlchemyError as exc:   # not a database, a bad connection option, a server refusing
            raise BadInputError(f"cannot open the store {_safe(url)}: {_reason(exc)}") from None

    @property
    def safe_url(self) -> str:
        """The URL as messages show it (no password, no query values)."""
        return _safe(self.url)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    # ---- writing ---------------------------------------------------------------
    @writing
    def start_run(self, suite: str, spec_key: str, spec: dict[str, Any], environment: dict[str, Any]) -> int:
        with self.engine.begin() as connection:
            result = connection.execute(self.runs.insert().values(
                suite=suite, spec_key=spec_key, started=_now(), host=str(environment.get("hostname", "")),
                device=str(environment.get("cpu", "")), git_commit=str(environment.get("git_commit", "")),
                environment=environment, spec=spec))
            return int(result.inserted_primary_key[0])

    @writing
    def add(self, run_id: int, record: CellRecord) -> None:
        """Store one cell's record in its own transaction (replacing an earlier one of the same cell)."""
        cell = record.cell
        row = {name: getattr(record, name) for name in RESULT_COLUMNS}
        row.update({name: _jsonable(getattr(record, name)) for name in JSON_COLUMNS})
        row.update(run_id=run_id, cell_key=record.key, created=_now(), model=cell.model, runtime=cell.runtime,
                   precision=cell.precision, batch=cell.batch, threads=cell.threads, scenario=cell.scenario,
                   options=dict(cell.options))
        with self.engine.begin() as connection:
            connection.execute(self.results.delete().where(
                (self.results.c.run_id == run_id) & (self.results.c.cell_key == record.key)))
            connection.execute(self.results.insert().values(**row))

    @writing
    def finish_run(self, run_id: int) -> None:
        with self.engine.begin() as connection:
            connection.execute(self.runs.update().where(self.runs.c.id == run_id).values(finished=_now()))

    # ---- reading ---------------------------------------------------------------
    def latest_run(self, spec_key: str) -> int | None:
        """The newest run of the matrix ``spec_key`` (to resume), or None."""
        import sqlalchemy as sa

        with self.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.max(self.runs.c.id)).where(
                self.runs.c.spec_key == spec_key)).scalar()

    def done_keys(self, run_id: int) -> set[str]:
        import sqlalchemy as sa

        with self.engine.connect() as connection:
            return set(connection.execute(sa.select(self.results.c.cell_key).where(
                self.results.c.run_id == run_id)).scalars())

    def run_info(self, run_id: int) -> dict[str, Any]:
        import sqlalchemy as sa

        with self.engine.connect() as connection:
            row = connection.execute(sa.select(self.runs).where(self.runs.c.id == run_id)).mappings().first()
        if row is None:
            raise BadInputError(f"no run {run_id} in the store {_safe(self.url)}")
        return dict(row)

    def list_runs(self) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        with self.engine.connect() as connection:
            return [dict(r) for r in connection.execute(sa.select(self.runs).order_by(self.runs.c.id)).mappings()]

    def records(self, run_ids: list[int] | None = None, suite: str | None = None, model: str | None = None,
                device: str | None = None, since: datetime | None = None) -> list[dict[str, Any]]:
        """Result rows joined with their run (suite, started, host, device), oldest first."""
        import sqlalchemy as sa

        runs, results = self.runs, self.results
        query = sa.select(results, runs.c.suite, runs.c.started, runs.c.host, runs.c.device).join(
            runs, runs.c.id == results.c.run_id)
        if run_ids:
            query = query.where(results.c.run_id.in_(run_ids))
        if suite:
            query = query.where(runs.c.suite == suite)
        if model:
            query = query.where((results.c.model == model) | (results.c.model_name == model))
        if device:
            query = query.where(runs.c.device.contains(device) | runs.c.host.contains(device))
        if since:
            query = query.where(runs.c.started >= since)
        with self.engine.connect() as connection:
            return [dict(r) for r in connection.execute(query.order_by(results.c.run_id, results.c.id)).mappings()]


def require(module: str, what: str, extra: str = "matrix"):
    """Import an optional package, or say in one line which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise BadInputError(f"{what} needs {module}: pip install 'edgekit[{extra}]'") from None


def open_store(url: str | None = None) -> Store:
    """The store at ``url`` (default: ``default_url()``); tables are created on first use."""
    return Store(url or default_url())


def record_from_row(row: dict[str, Any]) -> CellRecord:
    """A stored row back as a CellRecord (what the regression gate and a search read)."""
    options = tuple(sorted((row.get("options") or {}).items()))
    cell = Cell(row["model"], row["runtime"], row["precision"], row["batch"], row["threads"], row["scenario"], options)
    fields = {f.name for f in dataclasses.fields(CellRecord)} - {"cell", "key"}
    values = {name: row[name] for name in fields if name in row}
    for name in ("percentiles_ms", "round_ms"):
        values[name] = tuple(values.get(name) or ())
    return CellRecord(cell=cell, key=row["cell_key"], **values)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _safe(url: str) -> str:
    """The URL without its secrets: the password hidden, the query string's values (a password or an
    SSL key may be passed there) replaced by '***'."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        hidden = "&".join(f"{key}=***" for key in sorted(parsed.query))
        return parsed.set(query={}).render_as_string(hide_password=True) + (f"?{hidden}" if hidden else "")
    except Exception:  # not parseable: show nothing secret
        return url.split("@")[-1].split("?")[0]


def _reason(exc: BaseException) -> str:
    """The driver's own one-line reason ('file is not a database'), never the SQL or the URL."""
    return first_line(getattr(exc, "orig", None) or exc).split(" [SQL:")[0]
