"""One prepared check for a lent GPU machine: everything GPU-side that the CPU-only CI cannot run.

    python benchmarks/gpu_check.py [--out gpu_check_summary.md] [--budget 470]

Installs nothing; uses this checkout and the Python that runs it. In order, each step bounded so the
whole run fits ``--budget`` seconds (default 470, under 8 minutes):

1. the GPU stack (`edgekit runtimes`);
2. the gpu/tensorrt-marked tests with EDGEKIT_REQUIRE_GPU=1 (a skip is a failure; without an
   importable tensorrt the tensorrt-marked ones are deselected and the summary says so);
3. ort-cuda bench of resnet18 FP32 and FP16 with the host→device / device→host split (trt too when
   available);
4. `edgekit compare` ort-cpu vs ort-cuda (FP32 at compare's default tolerance);
5. a Predictor frame loop (640×480 frames) on ort-cuda (and trt when available).

Writes one Markdown summary (--out). Without an NVIDIA GPU it prints one line and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: seconds kept for the steps after the tests (export, benches, compare, frame loop, summary)
AFTER_TESTS_S = 170


class Check:
    """The run's clock and its summary, one section a step."""

    def __init__(self, budget_s: float, folder: Path) -> None:
        self.deadline = time.monotonic() + budget_s
        self.folder = folder
        self.sections: list[str] = []
        self.failed: list[str] = []

    def left(self, keep: float = 0.0) -> float:
        return self.deadline - time.monotonic() - keep

    def run(self, title: str, args: list[str], limit: float,
            env: dict | None = None) -> subprocess.CompletedProcess | None:
        """Run ``args`` (python -m edgekit / pytest ...) within ``limit`` s; its tail goes to the summary."""
        limit = min(limit, self.left(5))
        if limit < 5:
            self.note(title, "not run: the time budget is spent", ok=False)
            return None
        start = time.monotonic()
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        try:
            result = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env,
                                    cwd=REPO, timeout=limit, check=False)
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            self.note(title, f"timed out after {limit:.0f} s", out[-3000:], ok=False)
            return None
        took = time.monotonic() - start
        text = (result.stdout + ("\n" + result.stderr if result.stderr.strip() else "")).strip()
        self.note(title, f"exit {result.returncode} in {took:.0f} s", text[-4000:], ok=result.returncode == 0)
        return result

    def note(self, title: str, status: str, body: str = "", ok: bool = True) -> None:
        if not ok:
            self.failed.append(title)
        section = f"## {title}\n\n{'PASS' if ok else 'FAIL'}: {status}\n"
        if body:
            section += f"\n```text\n{body}\n```\n"
        self.sections.append(section)


def tensorrt_importable() -> bool:
    try:
        import tensorrt  # noqa: F401
    except Exception:  # noqa: BLE001 - not installed, or its libraries missing
        return False
    return True


def run_tests(check: Check, with_tensorrt: bool) -> None:
    marker = "gpu or tensorrt" if with_tensorrt else "gpu and not tensorrt"
    files = ["tests/test_gpu_runtimes.py", "tests/test_tensorrt_gpu.py", "tests/test_quantize_report.py"]
    check.run(f"pytest -m '{marker}' with EDGEKIT_REQUIRE_GPU=1", [
        "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", "-m", marker, *files],
        check.left(AFTER_TESTS_S), env={"EDGEKIT_REQUIRE_GPU": "1"})
    check.run("runtime contract (every available runtime, GPU ones included)", [
        "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", "tests/test_runtime_contract.py"],
        min(90, check.left(AFTER_TESTS_S - 30)))
    if not with_tensorrt:
        check.note("TensorRT", "tensorrt is not importable here: trt and ort-trt tests deselected, not run", ok=False)


def bench(check: Check, title: str, model: Path, runtime: str, options: list[str]) -> dict | None:
    record = check.folder / f"{model.stem}-{runtime}.json"
    result = check.run(title, ["-m", "edgekit", "bench", str(model), "--runtime", runtime, "--warmup", "20",
                               "--duration", "3", "--json", str(record), *options], 120)
    if result is None or result.returncode != 0 or not record.is_file():
        return None
    return json.loads(record.read_text())


def bench_table(rows: list[tuple[str, dict | None]]) -> str:
    lines = ["| run | p50 ms | p90 ms | h2d ms | d2h ms | device |", "|---|---|---|---|---|---|"]
    for name, record in rows:
        if record is None:
            lines.append(f"| {name} | failed | | | | |")
            continue
        latency, split = record.get("latency", {}), record.get("breakdown_ms", {})
        cells = [latency.get("p50_ms"), latency.get("p90_ms"), split.get("h2d_ms"), split.get("d2h_ms")]
        text = [f"{value:.3f}" if isinstance(value, (int, float)) else "-" for value in cells]
        lines.append(f"| {name} | {' | '.join(text)} | {record.get('device', '')} |")
    return "\n".join(lines) + "\n"


def frame_loop(model: Path, runtime: str, frames: int = 300) -> str:
    """Predictor on 640×480 frames: FPS end to end and each stage's mean ms."""
    import numpy as np

    from edgekit import Predictor

    images = [np.random.default_rng(i).integers(0, 256, (480, 640, 3), dtype=np.uint8) for i in range(8)]
    with Predictor(model, runtime=runtime) as predict:
        for image in images:
            predict(image)  # warm-up
        total = None
        start = time.perf_counter()
        for index in range(frames):
            predict(images[index % len(images)])
            timing = predict.last_timing
            total = timing if total is None else total + timing
        seconds = time.perf_counter() - start
    stages = ", ".join(f"{name} {value:.2f} ms" for name, value in total.per_image_ms().items())
    return f"{runtime}: {frames / seconds:.1f} FPS over {frames} frames ({stages} per frame)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check_summary.md"), help="the summary to write")
    parser.add_argument("--budget", type=float, default=470.0, help="seconds for the whole run")
    parser.add_argument("--skip-tests", action="store_true", help="benches only")
    args = parser.parse_args()
    from edgekit.runtimes.cuda import gpu_names

    names = gpu_names()
    if not names:
        print("gpu_check: no NVIDIA GPU here (no CUDA driver or no device): nothing to check, nothing written")
        return 0
    from edgekit.runtimes import get_runtime

    with tempfile.TemporaryDirectory(prefix="edgekit-gpu-check-") as folder:
        check = Check(args.budget, Path(folder))
        os.environ.setdefault("EDGEKIT_CACHE_DIR", str(Path(folder) / "cache"))
        check.run("GPU stack (edgekit runtimes)", ["-m", "edgekit", "runtimes"], 60, env={"COLUMNS": "160"})
        with_tensorrt = tensorrt_importable()
        if not args.skip_tests:
            run_tests(check, with_tensorrt)
        model = Path(folder) / "resnet18.onnx"
        half = Path(folder) / "resnet18-fp16.onnx"
        check.run("export resnet18 (224×224)", ["-m", "edgekit", "export", "resnet18", "-o", str(model)], 90)
        check.run("resnet18 FP16 ONNX", ["-m", "edgekit", "quantize", str(model), "-o", str(half), "--mode", "fp16"],
                  60)
        rows = [("ort-cuda fp32", bench(check, "bench ort-cuda FP32", model, "ort-cuda", [])),
                ("ort-cuda fp16", bench(check, "bench ort-cuda FP16", half, "ort-cuda", []))]
        trt_ok = with_tensorrt and get_runtime("trt").probe().available
        if trt_ok:
            rows.append(("trt fp32", bench(check, "bench trt FP32", model, "trt", [])))
        check.sections.append("## resnet18 latency and copy split\n\n" + bench_table(rows))
        check.run("compare ort-cpu vs ort-cuda (FP32, default tolerance)",
                  ["-m", "edgekit", "compare", str(model), "-r", "ort-cpu,ort-cuda" + (",trt" if trt_ok else "")], 120)
        for runtime in ["ort-cuda", *(["trt"] if trt_ok else [])]:
            if check.left() < 20:
                check.note(f"Predictor frame loop on {runtime}", "not run: the time budget is spent", ok=False)
                continue
            try:
                check.note(f"Predictor frame loop on {runtime}", frame_loop(model, runtime))
            except Exception as exc:  # noqa: BLE001 - reported in the summary, the run goes on
                check.note(f"Predictor frame loop on {runtime}", f"{type(exc).__name__}: {exc}", ok=False)
    verdict = "all steps passed" if not check.failed else f"failed: {', '.join(check.failed)}"
    header = (f"# edgekit GPU check\n\n{time.strftime('%Y-%m-%d %H:%M')} on {', '.join(names)}; "
              f"Python {sys.version.split()[0]}; {verdict}.\n\n")
    args.out.write_text(header + "\n".join(check.sections), encoding="utf-8")
    print(f"gpu_check: {verdict}; summary in {args.out}")
    return 0 if not check.failed else 1


if __name__ == "__main__":
    sys.exit(main())
