"""The device lab on a real local Ray cluster: a head node with no device and device nodes that
advertise ``edgekit-device:lab-a`` (all on 127.0.0.1). Matrix cells and optimize candidates run as
Ray tasks there; the driver stores the records; a device node killed mid-suite loses nothing else.

Only the processes these tests start are stopped (by their ids, not with ``ray stop``, which would
stop every Ray instance on the machine)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO, assert_one_line_error, run_cli

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'edgekit[lab]')")
psutil = pytest.importorskip("psutil")
pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


class LocalLab:
    """`ray start` processes of one test cluster, by node."""

    def __init__(self) -> None:
        self.temp = tempfile.mkdtemp(prefix="ekray", dir="/tmp")   # short: Ray's socket paths have a length limit
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO),
                    "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}
        self.raylets: dict[str, int] = {}

    def _raylets(self) -> set[int]:
        return {p.pid for p in psutil.process_iter(["name", "cmdline"])
                if p.info["name"] == "raylet" and self.temp in " ".join(p.info["cmdline"] or [])}

    def start(self, name: str, resources: dict, head: bool = False) -> None:
        before = self._raylets()
        where = ["--head", "--port", str(self.port), "--temp-dir", self.temp, "--include-dashboard=false"] if head \
            else ["--address", self.address]
        subprocess.run([RAY, "start", *where, "--num-cpus", "1", "--resources", json.dumps(resources),
                        "--node-ip-address", "127.0.0.1", "--disable-usage-stats"], env=self.env, check=True,
                       capture_output=True, timeout=120)
        (self.raylets[name],) = self._raylets() - before

    def kill(self, name: str) -> None:
        """The node's raylet and everything it started (its workers and agents)."""
        raylet = psutil.Process(self.raylets.pop(name))
        processes = [raylet, *raylet.children(recursive=True)]
        for process in processes:
            process.kill()
        psutil.wait_procs(processes, timeout=10)

    def stop(self) -> None:
        ours = [p for p in psutil.process_iter(["cmdline"]) if self.temp in " ".join(p.info["cmdline"] or [])]
        for raylet in list(self.raylets):
            try:
                ours.append(psutil.Process(self.raylets[raylet]))
            except psutil.NoSuchProcess:
                pass
        every = set(ours)
        for process in ours:
            try:
                every.update(process.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        for process in every:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(list(every), timeout=15)


@pytest.fixture(scope="module")
def lab():
    cluster = LocalLab()
    try:
        cluster.start("head", {}, head=True)
        cluster.start("a", {"edgekit-device:lab-a": 1})
        yield cluster
    finally:
        cluster.stop()


def _suite(folder: Path, model: Path | str, threads: list[int], batches: list[int], duration: float) -> Path:
    suite = folder / "lab.yaml"
    suite.write_text(f"name: lab\nmodels: [{model}]\nruntimes: [ort-cpu]\nprecisions: [fp32, int8]\n"
                     f"batches: {batches}\nthreads: {threads}\nevaluation: {{samples: 16, calib_samples: 8, "
                     f"agreement_samples: 8}}\ntiming: {{warmup: 2, runs: 5, duration: {duration}, rounds: 1}}\n")
    return suite


def _rows(db: Path) -> list[dict]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as connection:
        connection.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in connection.execute("select * from results order by id")]
        except sqlite3.OperationalError:   # tables not created yet
            return []


def test_suite_runs_on_the_lab_device(lab, zoo_onnx, tmp_path):
    model = zoo_onnx("lenet5").path
    db = tmp_path / "h.db"
    result = run_cli("bench", "--suite", str(_suite(tmp_path, model, [1], [1], 0.2)), "--cluster", lab.address,
                     "--device", "lab-a", "--db", f"sqlite:///{db}", env=lab.env)
    assert result.returncode == 0, result.stderr
    rows = _rows(db)
    assert sorted((r["precision"], r["status"]) for r in rows) == [("fp32", "ok"), ("int8", "ok")]  # arrival order
    nodes = {node["NodeID"] for node in _nodes(lab) if "edgekit-device:lab-a" in node["Resources"]}
    for row in rows:
        where = json.loads(row["config"])["lab"]
        assert where["device"] == "lab-a" and where["node"] in nodes   # measured on the device, not the head
        assert row["accuracy"] is not None and row["p50_ms"] > 0


def test_unknown_device_and_unreachable_cluster_are_one_line_errors(lab, zoo_onnx, tmp_path):
    suite = str(_suite(tmp_path, zoo_onnx("lenet5").path, [1], [1], 0.2))
    result = run_cli("bench", "--suite", suite, "--cluster", lab.address, "--device", "nope",
                     "--db", f"sqlite:///{tmp_path / 'h.db'}", env=lab.env)
    assert_one_line_error(result, "advertises device 'nope'", "lab-a")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    result = run_cli("bench", "--suite", suite, "--cluster", f"127.0.0.1:{free}", "--device", "lab-a",
                     "--db", f"sqlite:///{tmp_path / 'h.db'}", env=lab.env)
    assert_one_line_error(result, "cannot reach the Ray cluster")


def test_optimize_measures_on_the_lab_device(lab, zoo_onnx, tmp_path):
    model = zoo_onnx("lenet5").path
    db = tmp_path / "h.db"
    result = run_cli("optimize", str(model), "--max-drop", "100", "--runtimes", "ort-cpu", "--threads", "1",
                     "--eval-size", "16", "--calib-size", "8", "--duration", "0.2", "--cluster", lab.address,
                     "--device", "lab-a", "--db", f"sqlite:///{db}", "-o", str(tmp_path / "ship.onnx"), env=lab.env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ship.onnx").is_file() and result.stdout.strip().splitlines()[-1].startswith("ship ")
    timed = [json.loads(r["config"])["runtime"] for r in _rows(db) if r["status"] == "ok"]
    assert timed and all(t["lab"]["device"] == "lab-a" for t in timed)


def test_a_device_node_dies_mid_suite(lab, tmp_path):
    """Two nodes offer lab-a; one is killed once the first record is stored. Its cell is retried on the
    other (or recorded as failed): every cell has one record and the records stored before remain."""
    lab.start("b", {"edgekit-device:lab-a": 1})
    db = tmp_path / "h.db"
    suite = _suite(tmp_path, "lenet5", [1, 2], [1, 2], 1.5)   # 8 cells of ~2 s (exported here at batch 1 and 2)
    code = "import sys\nfrom edgekit.cli.app import main\nsys.argv = ['edgekit', *sys.argv[1:]]\nmain()"
    driver = subprocess.Popen([sys.executable, "-c", code, "bench", "--suite", str(suite), "--cluster", lab.address,
                               "--device", "lab-a", "--db", f"sqlite:///{db}"], env=lab.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not _rows(db) and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.2)
    before = _rows(db)
    assert before and driver.poll() is None, "the suite finished before a node could be killed"
    lab.kill("b")
    stdout, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr
    rows = _rows(db)
    assert len(rows) == 8 and len({r["cell_key"] for r in rows}) == 8
    assert {r["id"] for r in before} <= {r["id"] for r in rows}
    for row in rows:
        assert row["status"] == "ok" or "lab-a" in row["reason"], row["reason"]
    assert sum(r["status"] == "ok" for r in rows) >= 7
    survivors = {json.loads(r["config"])["lab"]["node"] for r in rows if r["status"] == "ok" and r["id"] not in
                 {b["id"] for b in before}}
    assert len(survivors) == 1   # after the kill, only the surviving node measures


def _nodes(lab: LocalLab) -> list[dict]:
    code = ("import json, ray; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
            "print(json.dumps([{'NodeID': n['NodeID'], 'Resources': n['Resources']} for n in ray.nodes() "
            "if n['Alive']]))" % lab.address)
    output = subprocess.run([sys.executable, "-c", code], env=lab.env, capture_output=True, text=True, timeout=120)
    return json.loads(output.stdout.strip().splitlines()[-1])
