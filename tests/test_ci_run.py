""".ci/run: the fast lane and pytest arguments passed through. Runs the real script against a
stand-in .venv/bin/python that prints its arguments (the venv setup is CI's, not this test's)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _ci_run(tmp_path: Path, *args: str) -> list[str]:
    (tmp_path / ".ci").mkdir(exist_ok=True)
    shutil.copy(REPO / ".ci" / "run", tmp_path / ".ci" / "run")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text('#!/bin/sh\nif [ "$2" = pip ]; then exit 0; fi\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    python.chmod(0o755)
    result = subprocess.run(["bash", str(tmp_path / ".ci" / "run"), *args], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


PYTEST = ["-m", "pytest", "-q", "-n", "2", "--dist", "loadfile"]   # test files over two processes


def test_ci_runs_everything_by_default_and_a_fast_lane_on_request(tmp_path):
    assert _ci_run(tmp_path) == PYTEST
    assert _ci_run(tmp_path, "--fast") == [*PYTEST, "-m", "not slow"]
    assert _ci_run(tmp_path, "--fast", "tests/test_x.py", "-k", "a b") == [
        *PYTEST, "-m", "not slow", "tests/test_x.py", "-k", "a b"]
    assert _ci_run(tmp_path, "-x") == [*PYTEST, "-x"]
    assert _ci_run(tmp_path, "--serial", "--fast") == ["-m", "pytest", "-q", "-m", "not slow"]


def test_isa_cap_exports_the_libraries_caps(tmp_path):
    """`--isa avx2` makes an AVX-512 machine compute like an AVX2-only one (the trust issue's Zen 3
    failures were reproduced this way); the stand-in python prints the caps it was given."""
    (tmp_path / ".ci").mkdir(exist_ok=True)
    shutil.copy(REPO / ".ci" / "run", tmp_path / ".ci" / "run")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text('#!/bin/sh\nif [ "$2" = pip ]; then exit 0; fi\necho "$ONEDNN_MAX_CPU_ISA $ATEN_CPU_CAPABILITY"\n'
                      'for a in "$@"; do printf "%s\\n" "$a"; done\n')
    python.chmod(0o755)
    run = lambda *args: subprocess.run(["bash", str(tmp_path / ".ci" / "run"), *args], capture_output=True,  # noqa
                                       text=True, timeout=60)
    capped = run("--isa", "avx2", "--fast")
    assert capped.returncode == 0 and capped.stdout.splitlines() == ["AVX2 avx2", *PYTEST, "-m", "not slow"]
    assert run("--isa", "sse2").returncode == 2
