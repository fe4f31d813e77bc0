"""Suite files: the shipped suites load; a bad one is one line naming the file and line, exit 2,
and nothing reaches the history store."""

import pytest

from conftest import REPO, assert_one_line_error, run_cli
from edgekit.errors import BadInputError
from edgekit.matrix.suite import load_suite

GOOD = """\
name: tiny
models: [lenet5]
runtimes: [ort-cpu]
precisions: [fp32]
"""

BAD = {  # suite text → (line, fragments of the message)
    "unknown key": ("models: [lenet5]\nruntimes: [ort-cpu]\nprecission: [fp32]\n",
                    3, ["unknown key 'precission'", "did you mean 'precisions'"]),
    "unknown model": ("name: x\nmodels:\n  - lenet5\n  - resnet19\n", 4, ["unknown model 'resnet19'"]),
    "unknown runtime": ("models: [lenet5]\nruntimes: [ort-cpu, openvno]\n",
                        2, ["unknown runtime 'openvno'", "openvino"]),
    "unknown precision": ("models: [lenet5]\n\nprecisions: [fp32, int4]\n", 3, ["unknown precision 'int4'"]),
    "unknown scenario": ("models: [lenet5]\nscenarios: [server]\n", 2, ["unknown scenario 'server'"]),
    "wrong type in list": ("models: [lenet5]\nbatches: [1, eight]\n", 2, ["batches must be an integer", "'eight'"]),
    "wrong type of key": ("models: [lenet5]\ntiming: 3\n", 2, ["timing must be a mapping"]),
    "bad timing value": ("models: [lenet5]\ntiming:\n  runs: 0\n", 3, ["timing.runs must be positive"]),
    "missing file": ("models: [missing/model.onnx]\n", 1, ["model file not found: missing/model.onnx"]),
    "no models": ("name: x\nruntimes: [ort-cpu]\n", 1, ["no 'models' list"]),
    "unknown task": ("models: [lenet5]\ndata:\n  depth: coco.json\n", 3, ["unknown task 'depth'"]),
    "not yaml": ("models: [lenet5\n", 2, ["not valid YAML"]),
}


def test_shipped_suites_load():
    ci = load_suite(REPO / "benchmarks/suites/ci.yaml")
    assert ci.name == "ci" and ci.models == ("lenet5", "mobilenet_v3_small")
    assert set(ci.runtimes) == {"ort-cpu", "openvino"} and ci.precisions == ("fp32", "int8") and ci.batches == (1,)
    assert len(ci.cells()) == 8
    zoo_text = (REPO / "benchmarks/suites/zoo.yaml").read_text()
    assert "mobilenet_v3_small" in zoo_text and "efficientnet_b0" in zoo_text


def test_good_suite_and_defaults(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(GOOD)
    spec = load_suite(path)
    assert spec.name == "tiny" and spec.runtimes == ("ort-cpu",) and spec.scenarios == ("single-stream",)
    assert spec.timing.rounds == 3 and spec.evaluation.data["classification"] == "digits"


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_suite_names_file_and_line(case, tmp_path):
    text, line, fragments = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BadInputError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    for fragment in fragments:
        assert fragment in message, message


def test_bad_suite_on_the_command_line_writes_nothing(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("models: [lenet5, mobilenet_v3_small]\nruntimes: [ort-cpu]\nprecisions: [fp32, fp8]\n")
    db = tmp_path / "history.db"
    result = run_cli("bench", "--suite", str(path), "--db", f"sqlite:///{db}", env={"EDGEKIT_DATA_DIR": str(tmp_path)})
    assert_one_line_error(result, f"{path}:3:", "unknown precision 'fp8'")
    assert not db.exists() and not (tmp_path / "history.db").exists()


def test_bad_command_line_lists(tmp_path):
    env = {"EDGEKIT_DATA_DIR": str(tmp_path)}
    assert_one_line_error(run_cli("bench", "lenet5", "--precision", "fp32,int3", env=env), "unknown precision 'int3'")
    assert_one_line_error(run_cli("bench", "lenet5", "--batch", "1,x", env=env), "--batch takes integers")
    assert_one_line_error(run_cli("bench", "lenet5", "lenet7", "-r", "ort-cpu", env=env), "unknown model 'lenet7'")
    assert_one_line_error(run_cli("bench", "lenet5", "--scenario", "server", env=env), "unknown scenario")
    assert not (tmp_path / "history.db").exists()


def test_suite_refuses_options_it_would_ignore(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(GOOD)
    env = {"EDGEKIT_DATA_DIR": str(tmp_path)}
    assert_one_line_error(run_cli("bench", "--suite", str(path), "--duration", "1", env=env),
                          "--duration: a suite sets these itself")
    assert_one_line_error(run_cli("bench", "lenet5", "--suite", str(path), env=env), "either a suite or models")
    assert not (tmp_path / "history.db").exists()
