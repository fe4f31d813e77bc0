"""The robot tier works with torch and onnx absent: import edgekit, read metadata, run, bench."""

import sys

from conftest import block_imports, run_cli


def test_robot_tier_runs_without_torch_or_onnx(zoo_onnx, tmp_path):
    path = zoo_onnx("lenet5").path
    script = block_imports("torch", "torchvision", "onnx") + f"""
import numpy as np
import edgekit
from edgekit.meta import read_meta
from edgekit.runtimes import open_runtime
from edgekit.bench import BenchConfig, LoopPlan, benchmark
meta = read_meta({str(path)!r})
assert meta.model_name == 'lenet5' and meta.labels[3] == '3', meta
with open_runtime('ort-cpu', {str(path)!r}) as rt:
    out = rt.run({{'input': np.zeros((1, 1, 32, 32), np.float32)}})['output']
assert out.shape == (1, 10)
benchmark({str(path)!r}, BenchConfig(plan=LoopPlan(0, 3, 0.0, 3)))
heavy = [m for m in ('torch', 'onnx', 'torchvision') if m in sys.modules]
assert not heavy, heavy
print('robot tier ok')
"""
    import subprocess

    result = subprocess.run([sys.executable, "-c", "import sys\n" + script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "robot tier ok" in result.stdout


def test_cli_bench_of_an_onnx_file_needs_no_torch(zoo_onnx):
    result = run_cli("bench", str(zoo_onnx("lenet5").path), "--runs", "3", prelude=block_imports("torch", "onnx"))
    assert result.returncode == 0, result.stderr


def test_export_without_torch_says_what_to_install(tmp_path):
    result = run_cli("export", "lenet5", "-o", str(tmp_path / "l.onnx"), prelude=block_imports("torch"))
    assert result.returncode == 2
    assert "pip install 'edgekit[torch]'" in result.stderr and "Traceback" not in result.stderr
