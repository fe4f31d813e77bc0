"""One hostile value through every door that takes it: command-line flags, suite files, Python keywords
(Predictor, open_runtime, OptimizeConfig) and model metadata. Each door must refuse it in ONE line
(exit 2 on the command line, a one-line BadInputError in Python) before any work: no thread started,
no cell run, nothing written. A new door is a new column of these tables, and gets every case.

The values come from a probe that grew a matrix worker to 16,665 threads, ran a YAML alias bomb to
15.7 GB, replaced a model by an 802 MB one and turned deeply nested metadata into RecursionErrors."""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image
from test_bad_input_corpus import invoke

from edgekit.errors import BadInputError

NAN, INF = float("nan"), float("inf")


def _predictor(path: Path, **keywords):
    from edgekit import Predictor

    return Predictor(path, **keywords)


def _open_runtime(path: Path, **keywords):
    from edgekit.runtimes import open_runtime

    return open_runtime("ort-cpu", path, **keywords)


def _optimize(path: Path, **keywords):
    from edgekit.optimize import OptimizeConfig

    return OptimizeConfig(str(path), 1.0, runtimes=("ort-cpu",), **keywords)


def _full(**timing):
    from edgekit.matrix.cells import Timing

    return {"full": Timing(**{"warmup": 1, "min_runs": 5, "min_duration_s": 0.1, **timing})}


# --- numbers: value → {door: how that door takes it} (a door a value has no way through is left out) -------
NUMBERS = {
    "threads 1500": ({
        "flag predict": ["predict", "m.onnx", "img.png", "--threads", "1500"],
        "flag bench": ["bench", "m.onnx", "--threads", "1500"],
        "suite threads": "threads: [1500]",
        "suite options": "options: {threads: 1500}",
        "keyword Predictor": {"threads": 1500},
        "keyword open_runtime": {"threads": 1500},
        "keyword OptimizeConfig": {"threads": (1500,)},
        "metadata deployment": {"runtime": "ort-cpu", "options": {"threads": 1500}},
    }, ["threads", "1500"]),
    "threads 100000": ({
        "flag predict": ["predict", "m.onnx", "img.png", "--threads", "100000"],
        "flag predict -O": ["predict", "m.onnx", "img.png", "-O", "threads=100000"],
        "suite threads": "threads: [100000]",
        "suite options": "options: {threads: 100000}",
        "keyword Predictor": {"threads": 100000},
        "keyword open_runtime": {"threads": 100000},
        "keyword OptimizeConfig": {"threads": (None, 100000)},
        "metadata deployment": {"runtime": "ort-cpu", "options": {"threads": 100000}},
    }, ["threads", "100000"]),
    "duration nan": ({
        "flag bench": ["bench", "m.onnx", "--duration", "nan"],
        "suite timing": "timing: {duration: .nan}",
        "keyword OptimizeConfig": _full(min_duration_s=NAN),
    }, ["duration", "nan"]),
    "duration inf": ({
        "flag bench": ["bench", "m.onnx", "--duration", "inf"],
        "suite timing": "timing: {duration: .inf}",
        "keyword OptimizeConfig": _full(min_duration_s=INF),
    }, ["duration", "inf"]),
    "runs 1e12": ({
        "flag bench": ["bench", "m.onnx", "--runs", str(10**12)],
        "suite timing": f"timing: {{runs: {10**12}}}",
        "keyword OptimizeConfig": _full(min_runs=10**12),
    }, ["runs", str(10**12)]),
    "input_size 100000": ({
        "flag bench": ["bench", "lenet5", "--input-size", "100000"],
        "suite input_size": "input_size: 100000",
        "keyword Predictor": {"input_size": 100000},
        "keyword OptimizeConfig": {"input_size": (100000, 100000)},
    }, ["100000"]),
}
KEYWORD_DOORS = {"keyword Predictor": _predictor, "keyword open_runtime": _open_runtime,
                 "keyword OptimizeConfig": _optimize}
NUMBER_CASES = [(value, door) for value, (doors, _) in NUMBERS.items() for door in doors]


def _id(case: tuple[str, str]) -> str:
    return "/".join(case).replace(" ", "-")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny classifier (8x8 RGB → 3 classes) with edgekit metadata, and an image for it."""
    root = tmp_path_factory.mktemp("doors")
    _tiny_model(root / "m.onnx")
    Image.new("RGB", (8, 8)).save(root / "img.png")
    return root


def _tiny_model(path: Path, **props: str) -> Path:
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["output"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    base = {"task": '"classification"', "input_size": "[8, 8]", "labels": '["a", "b", "c"]'}
    helper.set_model_props(model, {**base, **props})
    onnx.save(model, str(path))
    return path


def cli_error(folder: Path, *args: str) -> str:
    """The one 'error: ' line of a command that must exit 2 and write nothing."""
    result = invoke(folder, *args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def python_error(call) -> str:
    """The message of the one-line BadInputError ``call`` must raise."""
    with pytest.raises(BadInputError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message, message
    return message


def _suite(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(f"name: doors\nmodels: [lenet5]\nruntimes: [ort-cpu]\n{text}\n")
    return path


def through(folder: Path, tmp_path: Path, door: str, spec) -> str:
    """Feed ``spec`` through ``door``; returns the one-line refusal."""
    kind = door.split()[0]
    if kind == "flag":
        return cli_error(folder, *spec)
    if kind == "suite":
        suite = _suite(tmp_path, "suite.yaml", spec)
        message = cli_error(tmp_path, "bench", "--suite", suite.name, "--db", "sqlite:///h.db")
        assert f"{suite.name}:4:" in message, message   # the file and the line of the value
        return message
    if kind == "keyword":
        return python_error(lambda: KEYWORD_DOORS[door](folder / "m.onnx", **spec))
    path = _tiny_model(tmp_path / "deploy.onnx", extra=json.dumps({"deployment": spec}))
    return python_error(lambda: _predictor(path))


@pytest.mark.parametrize("value,door", NUMBER_CASES, ids=map(_id, NUMBER_CASES))
def test_numbers_through_every_door(folder, tmp_path, value, door):
    doors, fragments = NUMBERS[value]
    message = through(folder, tmp_path, door, doors[door])
    for fragment in fragments:
        assert fragment in message, message


def test_one_thread_rule_for_every_door(folder):
    """The largest count the rule allows opens; one more is refused by flags and keywords alike."""
    from edgekit.limits import LIMITS, max_threads

    assert LIMITS["threads"].high == max_threads() == min(1024, max(16, 4 * (os.cpu_count() or 1)))
    with _open_runtime(folder / "m.onnx", threads=2) as runtime:
        assert runtime.options.threads == 2
    over = str(max_threads() + 1)
    assert over in python_error(lambda: _predictor(folder / "m.onnx", threads=max_threads() + 1))
    assert over in cli_error(folder, "predict", "m.onnx", "img.png", "--threads", over)


# --- YAML: value → its text; doors: a suite's model metadata, meta set --file, the Python readers --------
LAUGHS = "\n".join([f"l0: &l0 [{', '.join(['lol'] * 9)}]"] +
                   [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]) + "\n"
YAML = {
    "alias bomb": (LAUGHS, "more than 200000 values with aliases expanded"),
    "python tag": ("task: classification\nlabels: !!python/object/apply:os.system [echo owned]\n",
                   "tag !!python/object/apply:os.system is not allowed"),
    "deep nesting": ("labels: " + "[" * 5000 + "]" * 5000 + "\n", "nests deeper than 64 levels"),
    "recursive alias": ("labels: &a [a, *a]\n", "an alias refers to the list or mapping that holds it"),
}
YAML_DOORS = ("suite meta", "meta set --file", "load_suite", "read_yaml")
YAML_CASES = [(value, door) for value in YAML for door in YAML_DOORS]


def _yaml_through(folder: Path, tmp_path: Path, door: str, text: str) -> str:
    from edgekit.exporters.metadata import read_yaml
    from edgekit.matrix.suite import load_suite

    if door in ("suite meta", "load_suite"):
        indented = "".join(f"      {line}\n" for line in text.splitlines())
        (tmp_path / "nets.py").write_text("def net():\n    import torch\n    return torch.nn.Linear(2, 3)\n")
        path = tmp_path / "suite.yaml"
        path.write_text(f"models:\n  - model: nets.py:net\n    meta:\n{indented}runtimes: [ort-cpu]\n")
        if door == "load_suite":
            return python_error(lambda: load_suite(path))
        return cli_error(tmp_path, "bench", "--suite", path.name, "--db", "sqlite:///h.db")
    (tmp_path / "meta.yaml").write_text(text)
    if door == "read_yaml":
        return python_error(lambda: read_yaml(tmp_path / "meta.yaml"))
    (tmp_path / "m.onnx").write_bytes((folder / "m.onnx").read_bytes())
    return cli_error(tmp_path, "meta", "set", "m.onnx", "--file", "meta.yaml")


@pytest.mark.parametrize("value,door", YAML_CASES, ids=map(_id, YAML_CASES))
def test_yaml_through_every_door(folder, tmp_path, value, door):
    text, fragment = YAML[value]
    message = _yaml_through(folder, tmp_path, door, text)
    assert fragment in message and ".yaml:" in message, message   # file:line


def test_yaml_bomb_is_refused_quickly_and_small(tmp_path):
    """A 342-byte billion laughs: refused in well under a second and a few MB (it took 15.7 GB)."""
    from edgekit.exporters.metadata import read_yaml

    (tmp_path / "laughs.yaml").write_text(LAUGHS)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        python_error(lambda: read_yaml(tmp_path / "laughs.yaml"))
        seconds, peak = time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 5 and peak < 20 * 2**20, (seconds, peak)


# --- metadata JSON: value → (key, JSON text, fragment); doors: commands and Python readers of a model ----
DEEP = "[" * 5000 + "]" * 5000
METADATA = {
    "deep extra": ("extra", '{"a": ' + DEEP + "}", "metadata key 'extra' nests deeper than 64 levels"),
    "deep labels": ("labels", DEEP, "metadata key 'labels' nests deeper than 64 levels"),
    "deep unknown key": ("notes", DEEP, "metadata key 'notes' nests deeper than 64 levels"),
    "9 MB value": ("notes", json.dumps("x" * 9 * 2**20), "metadata key 'notes' is 9437186 characters long"),
}
METADATA_DOORS = {"predict": ["predict", "{}", "img.png"], "bench": ["bench", "{}", "--runs", "2"],
                  "inspect": ["inspect", "{}"], "meta show": ["meta", "show", "{}"],
                  "meta show --json": ["meta", "show", "{}", "--json"], "read_meta": None, "Predictor": None}
METADATA_CASES = [(value, door) for value in METADATA for door in METADATA_DOORS]


@pytest.fixture(scope="module")
def metadata_models(folder):
    for value, (key, text, _) in METADATA.items():
        _tiny_model(folder / f"{value.replace(' ', '-')}.onnx", **{key: text})
    return folder


@pytest.mark.parametrize("value,door", METADATA_CASES, ids=map(_id, METADATA_CASES))
def test_metadata_through_every_door(metadata_models, value, door):
    from edgekit.meta import read_meta

    name, fragment = f"{value.replace(' ', '-')}.onnx", METADATA[value][2]
    args = METADATA_DOORS[door]
    if args is not None:
        message = cli_error(metadata_models, *[a.format(name) for a in args])
    else:
        reader = read_meta if door == "read_meta" else _predictor
        message = python_error(lambda: reader(metadata_models / name))
    assert name in message and fragment in message, message


@pytest.mark.parametrize("pair,fragment", [
    ("extra=" + '{"a": ' + DEEP + "}", "metadata extra nests deeper than 64 levels"),
    ("notes=" + DEEP, "metadata notes nests deeper than 64 levels"),
    ("decoder=" + '{"type": ' + DEEP + "}", "metadata decoder nests deeper than 64 levels"),
], ids=["extra", "unknown-key", "decoder"])
def test_meta_set_refuses_what_the_reader_would(folder, tmp_path, pair, fragment):
    """KEY=JSON on the command line is bounded as the reader is, so nothing unreadable is written."""
    (tmp_path / "m.onnx").write_bytes((folder / "m.onnx").read_bytes())
    assert fragment in cli_error(tmp_path, "meta", "set", "m.onnx", pair)


def test_python_metadata_changes_are_bounded(folder, tmp_path):
    """update_file's changes from Python: too deep, or a list that holds itself, refused before writing."""
    from edgekit.exporters.metadata import update_file

    (tmp_path / "m.onnx").write_bytes((folder / "m.onnx").read_bytes())
    deep: list = []
    for _ in range(100):
        deep = [deep]
    itself: list = []
    itself.append(itself)
    before = (tmp_path / "m.onnx").read_bytes()
    for value in (deep, itself):
        assert "nests deeper than 64 levels" in python_error(lambda: update_file(tmp_path / "m.onnx", {"x": value}))
    assert (tmp_path / "m.onnx").read_bytes() == before
