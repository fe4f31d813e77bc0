"""Output files: atomic replacement of regular files, special files written in place, symlinks
followed, inputs never overwritten, unwritable folders and full disks found as one-line errors,
and termination signals (SIGTERM, SIGHUP) leaving no partial files or scratch folders."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, assert_one_line_error, run_cli
from edgekit.errors import BadInputError
from edgekit.fileio import atomic_path, check_not_input, check_output_path, same_file, write_text_atomic

UNWRITABLE_FOLDER = Path("/sys")  # sysfs: no new files even for root (tests run as root here)


def test_regular_file_is_replaced_atomically_and_nothing_is_left(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["out.json"]
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("the work failed")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_devices_are_written_in_place_not_replaced(tmp_path):
    write_text_atomic("/dev/null", "{}")
    assert Path("/dev/null").is_char_device()
    with pytest.raises(BadInputError, match="No space left on device"):
        write_text_atomic("/dev/full", "{}")
    assert Path("/dev/full").is_char_device()
    with pytest.raises(BadInputError, match="device or FIFO"), atomic_path("/dev/null"):
        pass  # a model file cannot go to a device: refused, never renamed over it


def test_fifo_receives_the_text_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    write_text_atomic(fifo, '{"ok": 1}\n')
    assert json.loads(reader.communicate(timeout=30)[0]) == {"ok": 1}
    assert fifo.is_fifo()


def test_dev_stdout_redirected_to_a_file_is_appended_to_not_replaced(tmp_path):
    out = tmp_path / "out.txt"
    with out.open("w") as stream:
        subprocess.run([sys.executable, "-m", "edgekit", "runtimes", "--json", "/dev/stdout"], stdout=stream,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, timeout=120)
    text = out.read_text()
    assert "edgekit runtimes" in text  # the table printed before the JSON survives
    assert json.loads(text[text.index("\n[") :])[0]["name"] == "ort-cpu"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_symlink_is_followed_and_kept(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_text_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "made.json")
    write_text_atomic(dangling, "x")
    assert dangling.is_symlink() and (tmp_path / "made.json").read_text() == "x"
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    with pytest.raises(BadInputError, match="symlink loop"):
        write_text_atomic(loop, "x")


def test_same_file_sees_hard_links_and_symlinks(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    os.link(model, tmp_path / "hard.onnx")
    (tmp_path / "soft.json").symlink_to(model)
    assert same_file(model, tmp_path / "hard.onnx") and same_file(model, tmp_path / "soft.json")
    for alias in ("hard.onnx", "soft.json", "./m.onnx"):
        with pytest.raises(BadInputError, match="is the input file"):
            check_not_input(tmp_path / alias, [model])
    check_not_input(tmp_path / "new.json", [model])


def test_unwritable_folder_is_found_before_the_work(tmp_path):
    with pytest.raises(BadInputError, match="cannot write to folder /sys"):
        check_output_path(UNWRITABLE_FOLDER / "out.json")
    (tmp_path / "file").write_text("")
    with pytest.raises(BadInputError, match="does not exist"):
        check_output_path(tmp_path / "file" / "out.json")


@pytest.mark.parametrize("args", [
    ["bench", "lenet5", "--runs", "2"], ["models"], ["runtimes"], ["inspect", "lenet5"],
])
def test_cli_refuses_an_unwritable_json_folder_up_front(tmp_path, args):
    result = run_cli(*args, "--json", str(UNWRITABLE_FOLDER / "out.json"), env={"EDGEKIT_CACHE_DIR": str(tmp_path)})
    assert_one_line_error(result, "cannot write to folder /sys")
    assert not result.stdout.strip()


def test_cli_json_to_dev_full_is_one_line_and_the_device_survives():
    result = run_cli("models", "--json", "/dev/full")
    assert_one_line_error(result, "cannot write /dev/full", "No space left on device")
    assert Path("/dev/full").is_char_device()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (tests run as root here); skipped where mounting is not allowed."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.slow
def test_full_disk_is_one_line_and_leaves_nothing(tiny_disk, zoo_onnx):
    source = str(zoo_onnx("lenet5").path)
    for args in (["export", "lenet5", "-o", str(tiny_disk / "l.onnx")],
                 ["quantize", source, "-o", str(tiny_disk / "q.onnx"), "-m", "fp16"],
                 ["train", "lenet5", "-d", "digits", "-o", str(tiny_disk / "run"), "--epochs", "1", "-q",
                  "-O", "per_class=20"]):
        assert_one_line_error(run_cli(*args), "No space left on device")
        assert list(tiny_disk.iterdir()) == []


def test_a_signal_that_c_code_turns_into_another_error_is_still_a_termination(capsys):
    import typer

    from edgekit.cli.common import handle_errors

    def work():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises Terminated here
        except BaseException:
            raise ImportError("initialization failed") from None  # what a pybind11 module init does

    with pytest.raises(typer.Exit) as caught:
        handle_errors(work)()
    assert caught.value.exit_code == 143
    assert capsys.readouterr().err == "error: stopped by SIGTERM; partial outputs were removed\n"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is gone again


def test_usage_errors_are_one_line_too():
    assert_one_line_error(run_cli("bench", "lenet5", "--runs", "abc"), "Invalid value for '--runs'")
    assert_one_line_error(run_cli("bench", "lenet5", "--no-such-option"), "No such option: --no-such-option")


def test_debug_keeps_the_exit_code_and_adds_the_traceback(tmp_path):
    result = run_cli("bench", str(tmp_path / "missing.onnx"), env={"EDGEKIT_DEBUG": "1"})
    assert result.returncode == 2 and "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: model file not found")


def _leftovers(folder: Path) -> list[str]:
    """Entries left in ``folder``. Not leftovers: torch's compile cache (torchinductor_USER) and the
    '.ses' session-id file a normal, uninterrupted quantize run also leaves in TMPDIR (telemetry)."""
    return [p.name for p in folder.iterdir() if not p.name.startswith("torchinductor_") and p.name != ".ses"]


def _start(args, folder: Path, tmp: Path) -> subprocess.Popen:
    code = "import sys\nfrom edgekit.cli.app import main\nsys.argv = ['edgekit', *sys.argv[1:]]\nmain()"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp)}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(process: subprocess.Popen, *patterns: tuple[Path, str], timeout: float = 300) -> bool:
    """Poll until a file matching one of (folder, glob) exists while the process still runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if any(any(folder.glob(glob)) for folder, glob in patterns):
            return True
        time.sleep(0.005)
    return False


_SLOW_MODEL = """
import pathlib, time
import torch.nn as nn

class Slow(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        if any(pathlib.Path.cwd().glob(".*.part.onnx")):
            (pathlib.Path(__file__).parent / "tracing").touch()
            time.sleep(300)
        return self.conv(x)

def net():
    return Slow()
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_export_killed_mid_work_leaves_no_part_file(tmp_path, signum):
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    out.mkdir(), tmp.mkdir()
    factory = tmp_path / "slow_model.py"
    factory.write_text(_SLOW_MODEL)
    process = _start(["export", f"{factory}:net", "--input", "x:1x3x16x16", "-o", "r.onnx"], out, tmp)
    # the model's forward touches 'tracing' once the export has opened its .part file, then sleeps:
    # the signal lands mid-export however fast or loaded the machine is
    assert _wait_for(process, (tmp_path, "tracing")), process.communicate()
    assert any(out.glob(".*.part.onnx"))
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr  # Ctrl-C too: 130
    expected = ("error: interrupted (Ctrl-C)" if signum == signal.SIGINT
                else f"error: stopped by {signal.Signals(signum).name}; partial outputs were removed")
    assert stderr.strip().splitlines() == [expected]
    assert _leftovers(out) == [] and _leftovers(tmp) == []


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_quantize_killed_mid_work_leaves_no_scratch_folder(tmp_path, zoo_onnx, signum):
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    out.mkdir(), tmp.mkdir()
    source = zoo_onnx("lenet5").path
    process = _start(["quantize", str(source), "-o", "q.onnx", "--calib", "digits"], out, tmp)
    assert _wait_for(process, (tmp, "edgekit-quant-*"), (out, ".*.part.onnx")), process.communicate()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    assert _leftovers(out) == [] and _leftovers(tmp) == []


def test_a_models_size_counts_its_external_data(tmp_path):
    """bench, inspect and the matrix said 0.00 MB for a model whose weights are in external data."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgekit.fileio import model_size_bytes

    weight = numpy_helper.from_array(np.zeros((256, 256), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256])], [weight])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path), save_as_external_data=True, location="m.data", size_threshold=0)
    assert path.stat().st_size < 1000 and model_size_bytes(path) == path.stat().st_size + 256 * 256 * 4
    result = run_cli("inspect", str(path))
    assert result.returncode == 0 and "0.25 MB" in result.stdout, result.stdout
