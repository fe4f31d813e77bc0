"""A matrix run killed with SIGKILL (a timeout, the OOM killer) leaves no worker behind measuring."""

import os
import signal
import subprocess
import sys
import textwrap
import time


def test_the_worker_ends_when_its_parent_is_killed(tmp_path):
    parent = textwrap.dedent("""
        import os, subprocess, sys, time
        from edgekit.matrix.worker import PARENT_VARIABLE
        env = {**os.environ, PARENT_VARIABLE: str(os.getpid())}
        child = subprocess.Popen([sys.executable, "-c",
                                  "from edgekit.matrix.worker import end_with_parent; import time; "
                                  "end_with_parent(); time.sleep(60)"], env=env)
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    worker = int(process.stdout.readline())
    time.sleep(1.0)                       # the worker has armed its parent-death signal
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return                         # gone: no orphan
        try:                               # a zombie reparented to us (pid 1 in containers reaps it)
            if os.waitpid(worker, os.WNOHANG)[0] == worker:
                return
        except ChildProcessError:
            pass
        with open(f"/proc/{worker}/stat") as stat:
            if stat.read().split(")")[-1].split()[0] == "Z":
                return                     # dead, awaiting its reaper
        time.sleep(0.2)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError("the worker outlived its killed parent by 10 s")
