"""Where candidates and matrix cells are measured: on this machine (``LocalExecutor``) or on a lab
device reached through Ray (``RayExecutor``).

The device lab is a Ray cluster whose nodes are devices. A device joins with one line,
``ray start --address HEAD:6379 --resources '{"edgekit-device:NAME": 1}'``, and every timing task
asks for one unit of ``edgekit-device:NAME``, so a device runs one measurement at a time. Model
files travel inside the task's arguments (their bytes); records flow back to the driver, which
writes the history store. Ray does the scheduling, retries (``max_retries``) and timeouts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from edgekit.errors import BadInputError, first_line

RESOURCE_PREFIX = "edgekit-device:"
DEFAULT_TIMEOUT_S = 900.0


class LocalExecutor:
    """Measure on this machine."""

    name = "local"

    def time(self, candidate, variant, meta, timing):
        from edgekit.optimize.measure import time_variant

        return time_variant(candidate, variant, meta, timing)

    def judge(self, candidate, variant, meta, data, reference):
        from edgekit.optimize.measure import judge_variant

        return judge_variant(candidate, variant, meta, data, reference)


# ---- what runs on a device ------------------------------------------------------
def _unpack(files: dict[str, bytes], folder: str) -> dict[str, Path]:
    paths = {}
    for name, blob in files.items():
        path = Path(folder) / name
        path.write_bytes(blob)
        paths[name] = path
    return paths


def _device_call(kind: str, files: dict[str, bytes], main: str, args: dict[str, Any]) -> Any:
    """Body of every lab task: write the shipped files to a scratch folder, then measure."""
    import dataclasses

    import ray

    if kind == "capabilities":
        from edgekit.optimize.space import capabilities

        return capabilities()
    where = {"device": args["device"], "node": ray.get_runtime_context().get_node_id()}
    with tempfile.TemporaryDirectory(prefix="edgekit-lab-") as folder:
        path = _unpack(files, folder)[main]
        if kind == "cell":
            from edgekit.matrix.measure import MatrixContext, measure_cell

            cell = dataclasses.replace(args["cell"], model=str(path))
            record = measure_cell(cell, args["key"], MatrixContext(args["spec"]))
            return dataclasses.replace(record, cell=args["cell"], config={**record.config, "lab": where})
        variant = dataclasses.replace(args["variant"], path=path)
        if kind == "time":
            from edgekit.optimize.measure import time_variant

            timed = time_variant(args["candidate"], variant, args["meta"], args["timing"])
            return dataclasses.replace(timed, description={**timed.description, "lab": where})
        from edgekit.optimize.measure import judge_variant

        return judge_variant(args["candidate"], variant, args["meta"], args["data"], args["reference"])


def _files_of(path: Path) -> dict[str, bytes]:
    """The model file's bytes (and its .bin for an OpenVINO IR)."""
    files = {path.name: path.read_bytes()}
    if path.suffix.lower() == ".xml":
        files[path.with_suffix(".bin").name] = path.with_suffix(".bin").read_bytes()
    return files


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A quick TCP connect first: Ray itself keeps retrying an unreachable address for minutes."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BadInputError(f"--cluster takes HOST:PORT of the lab's head node (e.g. 10.0.0.5:6379), got '{address}'")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise BadInputError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


class Lab:
    """A connection to the device lab, bound to one device name."""

    def __init__(self, address: str, device: str, timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = 2) -> None:
        self.address, self.device, self.timeout_s, self.retries = address, device, timeout_s, retries
        self.resource = RESOURCE_PREFIX + device

    def connect(self) -> Lab:
        """Join the cluster as a driver; an unreachable address or an unknown device is a BadInputError."""
        from edgekit.deps import require

        ray = require("ray", "lab")
        _check_reachable(self.address)
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, logging_level="ERROR", log_to_driver=False,
                         include_dashboard=False, ignore_reinit_error=True)
            except Exception as exc:  # ConnectionError, or Ray's own timeouts
                raise BadInputError(f"cannot reach the Ray cluster at {self.address}: {first_line(exc)}") from None
        offered = sorted(k[len(RESOURCE_PREFIX):] for k in ray.cluster_resources() if k.startswith(RESOURCE_PREFIX))
        if self.device not in offered:
            raise BadInputError(f"no node of the cluster at {self.address} advertises device '{self.device}' "
                                f"(devices: {', '.join(offered) or 'none'}; a device joins with "
                                f"ray start --address {self.address} --resources '{{\"{self.resource}\": 1}}')")
        self._remote = ray.remote(_device_call).options(resources={self.resource: 1}, num_cpus=0,
                                                        max_retries=self.retries, retry_exceptions=False)
        return self

    def submit(self, kind: str, path: Path | None, args: dict[str, Any]):
        """A Ray object ref of the task (the model file's bytes in its arguments)."""
        files = _files_of(Path(path)) if path is not None else {}
        return self._remote.remote(kind, files, Path(path).name if path is not None else "", args)

    def get(self, ref) -> Any:
        """The task's result; a lost device or a timeout is a RuntimeError naming it."""
        import ray

        try:
            return ray.get(ref, timeout=self.timeout_s)
        except ray.exceptions.GetTimeoutError:
            ray.cancel(ref, force=True)
            raise RuntimeError(f"device '{self.device}' gave no result in {self.timeout_s:g} s") from None
        except ray.exceptions.RayError as exc:
            raise RuntimeError(f"device '{self.device}' lost the task: {first_line(exc)}") from None

    def shutdown(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()


class RayExecutor:
    """Measure each candidate on the lab device (``edgekit optimize --cluster --device``)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.name = f"lab:{lab.device}"

    def capabilities(self):
        """What the device's CPU offers (bf16, fp16, NNCF) and its thread choices."""
        return self.lab.get(self.lab.submit("capabilities", None, {"device": self.lab.device}))

    def time(self, candidate, variant, meta, timing):
        args = {"candidate": candidate, "variant": variant, "meta": meta, "timing": timing, "device": self.lab.device}
        return self.lab.get(self.lab.submit("time", variant.path, args))

    def judge(self, candidate, variant, meta, data, reference):
        args = {"candidate": candidate, "variant": variant, "meta": meta, "data": data, "reference": reference,
                "device": self.lab.device}
        return self.lab.get(self.lab.submit("judge", variant.path, args))


def run_matrix_on_lab(spec, store, lab: Lab, force: bool = False, on_record=None):
    """The matrix (resumed like ``run_matrix``) with every cell a Ray task on the lab device; records
    are stored by this driver as they come back. A cell whose device is lost is retried by Ray
    (``max_retries``); one that still gives nothing is recorded as failed, the others are kept."""
    import ray

    from edgekit.matrix.cells import CellRecord
    from edgekit.matrix.measure import MatrixContext
    from edgekit.matrix.runner import MatrixRun, start_or_resume
    from edgekit.store.db import record_from_row

    cells, keys, run_id, todo, done = start_or_resume(spec, store, force, {"lab": lab.device})
    context = MatrixContext(spec)   # zoo models are exported here: the device gets the file
    pending = {}
    for cell in todo:
        source = context.source(cell.model, cell.batch)
        args = {"cell": cell, "key": keys[cell], "spec": spec, "device": lab.device}
        pending[lab.submit("cell", source.path, args)] = cell

    def keep(record: CellRecord) -> None:
        store.add(run_id, record)
        if on_record:
            on_record(record)

    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=lab.timeout_s)
        if not ready:  # the device went silent: what is left is recorded, not waited for forever
            for ref, cell in pending.items():
                ray.cancel(ref, force=True)
                keep(CellRecord(cell, keys[cell], "failed", f"device '{lab.device}' gave no result in "
                                f"{lab.timeout_s:g} s", model_name=cell.model))
            break
        for ref in ready:
            cell = pending.pop(ref)
            try:
                keep(lab.get(ref))
            except RuntimeError as exc:
                keep(CellRecord(cell, keys[cell], "failed", str(exc)[:500], model_name=cell.model))
    store.finish_run(run_id)
    stored = {row["cell_key"]: record_from_row(row) for row in store.records(run_ids=[run_id])}
    return MatrixRun(run_id, tuple(stored[keys[c]] for c in cells if keys[c] in stored), len(todo), bool(done))
