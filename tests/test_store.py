"""The history store: a writer killed mid-suite loses at most the cell in flight and leaves a
readable, consistent store that a re-run completes; the same code runs on a real PostgreSQL."""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli

BATCHES = "1,2,3,4,5,6,7,8"


@pytest.fixture(scope="module")
def lenet(zoo_onnx):
    return str(zoo_onnx("lenet5", dynamic_batch=True).path)


def _bench_args(model: str, db: str) -> list[str]:
    return ["bench", model, "-r", "ort-cpu", "--batch", BATCHES, "--duration", "0.6", "--rounds", "2", "--db", db]


def _rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute("select run_id, batch, status, p50_ms, round_ms from results order by id").fetchall()


def _stored_cells(db: Path) -> int:
    """Rows stored so far; 0 while the writer has not created the file or its tables yet."""
    try:
        return len(_rows(db)) if db.exists() else 0
    except sqlite3.OperationalError:   # the file exists, the schema is still being written
        return 0


@pytest.mark.slow
def test_killed_writer_loses_at_most_the_cell_in_flight(lenet, tmp_path):
    db = tmp_path / "history.db"
    url = f"sqlite:///{db}"
    code = "import sys\nfrom edgekit.cli.app import main\nsys.argv = ['edgekit', *sys.argv[1:]]\nmain()"
    writer = subprocess.Popen([sys.executable, "-c", code, *_bench_args(lenet, url)], cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if _stored_cells(db) >= 3:
                break
            time.sleep(0.05)
        writer.send_signal(signal.SIGKILL)   # mid-suite: cells are still to come
        writer.wait(30)
    finally:
        if writer.poll() is None:
            writer.kill()
    rows = _rows(db)
    assert 3 <= len(rows) < 8, rows
    with sqlite3.connect(db) as connection:
        assert connection.execute("pragma integrity_check").fetchone() == ("ok",)
        assert connection.execute("select finished from runs").fetchall() == [(None,)]
    for _, _, status, p50, rounds in rows:   # every stored cell is complete
        assert status == "ok" and p50 > 0 and len(eval(rounds)) == 2
    resumed = run_cli(*_bench_args(lenet, url), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(rows)} finished cell(s) skipped" in resumed.stdout
    final = _rows(db)
    assert sorted(r[1] for r in final) == list(range(1, 9)) and {r[0] for r in final} == {1}
    with sqlite3.connect(db) as connection:
        assert connection.execute("select finished is not null from runs").fetchall() == [(1,)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def postgres():
    """A PostgreSQL server in a temporary folder on a free localhost port, stopped afterwards."""
    binaries = [shutil.which(name) for name in ("initdb", "pg_ctl")]
    if not all(binaries):
        pytest.skip("PostgreSQL binaries initdb/pg_ctl are not on PATH")
    pytest.importorskip("psycopg")
    folder = Path(tempfile.mkdtemp(prefix="edgekit-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:   # initdb refuses to run as root: run the server as nobody
        if not shutil.which("runuser"):
            pytest.skip("running as root and runuser is missing (initdb refuses root)")
        shutil.chown(folder, "nobody")
        prefix = ["runuser", "-u", "nobody", "--"]
    folder.chmod(0o755)
    data, port = folder / "data", _free_port()
    subprocess.run([*prefix, binaries[0], "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*prefix, binaries[1], "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"],
                   check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, binaries[1], "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True,
                       timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_postgresql_store_end_to_end(lenet, postgres, tmp_path):
    args = ["bench", lenet, "-r", "ort-cpu", "--batch", "1,2", "--duration", "0.1", "--rounds", "2", "--db", postgres]
    first = run_cli(*args, "--force")
    assert first.returncode == 0, first.stderr
    assert "2 finished cell(s) skipped" in run_cli(*args).stdout
    csv_path = tmp_path / "r.csv"
    report = run_cli("report", "--db", postgres, "--csv", str(csv_path))
    assert report.returncode == 0, report.stderr
    lines = csv_path.read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("run,started,device,model,runtime")
    from edgekit.store import open_store

    with open_store(postgres) as store:
        rows = store.records()
        runs = store.list_runs()
    assert [r["batch"] for r in rows] == [1, 2] and all(r["status"] == "ok" and len(r["round_ms"]) == 2 for r in rows)
    assert runs[0]["finished"] is not None and runs[0]["environment"]["cpu"]
    same = run_cli("diff", "1", "1", "--db", postgres)
    assert same.returncode == 0, same.stderr


def test_bad_store_url_is_one_line(tmp_path):
    from conftest import assert_one_line_error

    result = run_cli("report", "--db", "nosuchdb://x")
    assert_one_line_error(result, "not a database URL")
    result = run_cli("report", "--db", f"sqlite:///{tmp_path / 'empty.db'}")
    assert_one_line_error(result, "no results match")


def test_missing_packages_name_the_extra(tmp_path):
    from conftest import assert_one_line_error, block_imports

    suite = tmp_path / "s.yaml"
    suite.write_text("models: [lenet5]\n")
    result = run_cli("bench", "--suite", str(suite), prelude=block_imports("yaml"))
    assert_one_line_error(result, "needs yaml", "pip install 'edgekit[matrix]'")
    result = run_cli("report", "--db", f"sqlite:///{tmp_path / 'h.db'}", prelude=block_imports("sqlalchemy"))
    assert_one_line_error(result, "needs sqlalchemy", "pip install 'edgekit[matrix]'")
