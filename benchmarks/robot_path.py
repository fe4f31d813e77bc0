"""The robot path, measured side by side in one run (ratios, not absolute numbers).

1. tiny:   per-call cost of edgekit's Runtime.run on a one-Add 1×16 model against the runtime's
           own best call (target ≤ 1.2× + a few µs).
2. models: Predictor end-to-end p50 on a 640×480 RGB frame ÷ the bare inference call on a
           prepared tensor, batch 1 (targets: mobilenet_v3_small ≤ 1.5×, resnet18 ≤ 1.1×,
           the shapes detector ≤ 1.5×, the segmenter's mask at frame size ≤ 1.5×; the embedder's
           unit vector without a target: its 0.1 ms inference is smaller than any frame's resize),
           with each stage's p50 and the Predictor's own cost; on
           the task's default route, and beside it the other OpenCV route and the fused graph.
3. video:  the detector on a generated 30 FPS 640×480 video played in real time (as a camera):
           processed FPS, dropped frames, capture-to-prediction latency (target ≥ 30 FPS,
           latency ≤ 2 frames); and the pipelined throughput on the same file as fast as it decodes.

Every ratio is the median of paired per-round ratios: each round times the basis (the bare call,
or one call after another), then the other side.

    python benchmarks/robot_path.py [--runtimes ort-cpu,openvino] [--threads 2]
        [--detector runs/detector/detector.onnx] [--segmenter runs/segmenter/segmenter.onnx]
        [--embedder runs/embedder/embedder.onnx]
        [--models mobilenet_v3_small,resnet18,detector,segmenter,embedder] [--route opencv]
        [--parts tiny,models,video]
        [--no-fused]
        [--no-results]

Without --detector a randomly initialised shapes detector is exported (its post-processing sees
few peaks, so a trained one is the fairer test). Zoo models are exported with random weights.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from edgekit import Predictor  # noqa: E402
from edgekit.bench.latency import LatencyStats, LoopPlan, time_calls  # noqa: E402
from edgekit.runtimes import open_runtime  # noqa: E402
from robot_models import detector_model, embedder_model, fused_model, segmenter_model  # noqa: E402
from sidebyside import Results, add_results_flag, rounds_text  # noqa: E402

# None: no ratio target (the embedder's 0.1 ms inference is outweighed by any frame's resize to 16x16)
TARGETS = {"mobilenet_v3_small": 1.5, "resnet18": 1.1, "detector": 1.5, "segmenter": 1.5, "embedder": None}
#: alternating bare/Predictor rounds per model; the ratio printed is the median of the rounds' ratios
ROUNDS = 5
#: alternating rounds of the tiny model's calls and of the video's two loops
SHORT_ROUNDS = 3
#: a detector row also runs at this score threshold (what a robot acting on boxes keeps)
DEPLOY_SCORE = 0.3


def frame_640x480() -> np.ndarray:
    import cv2
    from skimage import data

    return np.ascontiguousarray(cv2.resize(data.astronaut(), (640, 480), interpolation=cv2.INTER_AREA))


def tiny_model(folder: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    one = helper.make_tensor("one", TensorProto.FLOAT, [1, 16], np.ones(16, np.float32))
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(folder / "tiny.onnx"))
    return folder / "tiny.onnx"


def per_call_us(call, calls: int = 3000, rounds: int = 5) -> float:
    """Best mean per-call time over ``rounds`` of ``calls`` calls, in µs."""
    for _ in range(200):
        call()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter_ns() - start) / calls / 1e3)
    return best


def bare_calls(runtime: str, path: Path, threads: int, feeds: dict) -> dict[str, callable]:
    """The runtime's own calls, without edgekit, for the same model and threads."""
    if runtime == "ort-cpu":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return {"session.run": lambda: session.run(None, feeds)}
    if runtime == "ort-cuda":  # host arrays in and out, as a robot's loop hands them over
        import onnxruntime as ort

        from edgekit.runtimes.gpu_libraries import preload_cuda_libraries

        preload_cuda_libraries()
        session = ort.InferenceSession(str(path), providers=[("CUDAExecutionProvider", {"use_tf32": 0})])
        return {"session.run": lambda: session.run(None, feeds)}
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU",
                                       {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    arrays = list(feeds.values())

    def set_inputs():  # every call hands over its input, as a robot's loop does
        for index, array in enumerate(arrays):
            request.set_input_tensor(index, ov.Tensor(array, shared_memory=True))

    def start_wait():
        set_inputs()
        request.start_async()
        request.wait()

    def set_infer():
        set_inputs()
        request.infer()

    return {"infer(feeds, share_inputs, share_outputs)": lambda: request.infer(feeds,
                                                                               share_inputs=True, share_outputs=True),
            "set_input_tensor + infer()": set_infer, "set_input_tensor + start_async() + wait()": start_wait}


def part_tiny(runtimes: list[str], threads: int, folder: Path, results: Results) -> None:
    print("\n== 1. wrapper cost per call: one Add on 1x16 float32 ==")
    path = tiny_model(folder)
    feeds = {"x": np.random.default_rng(0).random((1, 16), dtype=np.float32)}
    for runtime in runtimes:
        bare = bare_calls(runtime, path, threads, feeds)
        with open_runtime(runtime, path, threads=threads) as rt:
            rt.run(feeds)
            rounds = []  # interleaved: every bare call, then edgekit's; the round's best bare call is its basis
            for _ in range(SHORT_ROUNDS):
                bare_us = {name: per_call_us(call) for name, call in bare.items()}
                rounds.append((bare_us, per_call_us(lambda: rt.run(feeds))))
            chosen = rt.describe().get("call", "")
        best = [min(bare_us.values()) for bare_us, _ in rounds]
        ours = [edgekit_us for _, edgekit_us in rounds]
        ratio, ratios = results.ratio(f"tiny Add, {runtime}: edgekit Runtime.run / best bare call", ours, best,
                                      "the runtime's fastest own call")
        extra = float(np.median([o - b for o, b in zip(ours, best)]))
        best_name = min(bare, key=lambda name: np.median([bare_us[name] for bare_us, _ in rounds]))
        print(f"{runtime:9s} bare best {np.median(best):7.1f} µs ({best_name})  edgekit run {np.median(ours):7.1f} µs"
              f"{f' (call={chosen})' if chosen else ''}  ratio {ratio:.2f}x  (+{extra:.1f} µs)"
              f"  target <= 1.2x + a few µs  (rounds {rounds_text(ratios, 2)})")
        for name in bare:
            print(f"           {name}: {np.median([bare_us[name] for bare_us, _ in rounds]):.1f} µs")
    from edgekit.sources import resolve_model

    lenet, frame = resolve_model("lenet5"), np.zeros((32, 32), np.uint8)
    for runtime in runtimes:
        with Predictor(lenet, runtime, threads=threads) as predict:
            rows = predictor_rows(predict, frame, LoopPlan(warmup=200, min_runs=3000, min_duration_s=1.0))
        own = rows[:, 3] - rows[:, :3].sum(axis=1)
        print(f"{runtime:9s} Predictor on LeNet-5 (32x32 gray frame): "
              f"end to end p50 {np.median(rows[:, 3]) / 1e3:.1f} µs, "
              f"of which its own bookkeeping (frame checks, chunking, timing) p50 {np.median(own) / 1e3:.1f} µs")


def part_models(runtimes: list[str], threads: int, models: dict[str, Path], route: str | None, seconds: float,
                folder: Path, fused: bool, results: Results) -> None:
    print(f"\n== 2. Predictor end to end on a 640x480 RGB frame vs bare inference, batch 1, {threads} threads ==")
    print("   (fused: the same model with pre-processing [the detector's decoding, the segmenter's argmax] in the")
    print("    graph; its ratio is still against the bare call of the plain model on a prepared tensor)")
    print(f"   ratio: the median of {ROUNDS} rounds' e2e p50 / bare p50 (bare = 1.0x), each round side by side")
    frame = frame_640x480()
    plan = LoopPlan(warmup=10, min_runs=30, min_duration_s=seconds)
    print(f"{'model':32s} {'runtime':9s} {'bare p50':>9s} {'e2e p50':>9s} {'ratio':>6s} {'target':>6s} | "
          f"{'pre':>7s} {'infer':>7s} {'post':>7s} {'own':>6s}  (ms; own = Predictor's bookkeeping, µs)")
    for name, path in models.items():
        for runtime in runtimes:
            variants = [(name, path, {})]
            if name == "detector":  # the metadata's 0.05 (its mAP threshold) and a robot's threshold
                variants.append((f"{name} score>={DEPLOY_SCORE}", path, {"score_threshold": DEPLOY_SCORE}))
            default = default_route_of(path) if route is None else None
            if default in ("opencv", "opencv-uint8"):  # the other OpenCV route beside the task's default
                other = "opencv" if default == "opencv-uint8" else "opencv-uint8"
                variants.append((f"{name} {other}", path, {"route": other}))
            if fused:
                variants.append((f"{name} fused", fused_model(name, path, runtime, folder), {}))
            for label, model, settings in variants:
                _model_row(label, TARGETS[name], path, model, runtime, threads, route, frame, plan, settings,
                           results)


def _model_row(label: str, target: float | None, plain: Path, model: Path, runtime: str, threads: int, route: str | None,
               frame: np.ndarray, plan: LoopPlan, settings: dict, results: Results) -> None:
    from edgekit.meta import read_meta
    from edgekit.tasks import get_task

    settings = dict(settings)
    route = settings.pop("route", route)
    plain_meta = read_meta(plain)
    feeds, _ = get_task(plain_meta.task).preprocess([frame], plain_meta)
    with Predictor(model, runtime, threads=threads, route=route, **settings) as predict, \
            open_runtime(runtime, plain, threads=threads) as bare_runtime:  # the runtime's own defaults
        predict(frame)
        bare_call = bare_runtime.prepare(feeds)
        pairs, rows = [], []
        for _ in range(ROUNDS):  # bare, Predictor, bare, Predictor, ...: each round's ratio is side by side
            bare = LatencyStats.from_ns(time_calls(bare_call, plan)).p50_ms
            round_rows = predictor_rows(predict, frame, plan)
            pairs.append((bare, float(np.median(round_rows[:, 3])) / 1e6))
            rows.append(round_rows)
    bare_column, e2e_column = zip(*pairs)
    ratio, ratios = results.ratio(f"{label}, {runtime}: Predictor end to end / bare inference", e2e_column,
                                  bare_column, "bare inference call (plain model, prepared tensor)")
    bare, e2e = float(np.median(bare_column)), float(np.median(e2e_column))
    p50 = np.median(np.concatenate(rows), axis=0) / 1e6
    own_us = float(np.median(np.concatenate(rows)[:, 3] - np.concatenate(rows)[:, :3].sum(axis=1))) / 1e3
    verdict = "" if target is None else "ok" if ratio <= target else "MISS"
    goal = "     -" if target is None else f"{target:5.1f}x"
    print(f"{label:32s} {runtime:9s} {bare:9.3f} {e2e:9.3f} {ratio:5.2f}x {goal} | "
          f"{p50[0]:7.3f} {p50[1]:7.3f} {p50[2]:7.3f} {own_us:6.1f}  {verdict}  "
          f"(rounds {rounds_text(ratios, 2)})")


def predictor_rows(predict, frame: np.ndarray, plan: LoopPlan) -> np.ndarray:
    """(preprocess, inference, postprocess, end-to-end) ns per call."""
    for _ in range(plan.warmup):
        predict(frame)
    rows = []
    deadline = time.perf_counter_ns() + int(plan.min_duration_s * 1e9)
    while len(rows) < plan.min_runs or time.perf_counter_ns() < deadline:
        start = time.perf_counter_ns()
        predict(frame)
        end = time.perf_counter_ns()
        t = predict.last_timing
        rows.append((t.preprocess_ns, t.inference_ns, t.postprocess_ns, end - start))
    return np.asarray(rows, dtype=np.int64)


def shapes_video(path: Path, frames: int = 150, fps: int = 30) -> Path:
    """Moving filled circles, squares and triangles on a cluttered background, 640x480 at ``fps``."""
    import cv2

    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(60, 200, (480, 640, 3), dtype=np.uint8), (0, 0), 6)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for index in range(frames):
        image = background.copy()
        x = 80 + (index * 4) % 480
        cv2.circle(image, (x, 140), 45, (40, 40, 220), -1)
        cv2.rectangle(image, (560 - x // 2, 260), (640 - x // 2, 340), (40, 200, 40), -1)
        triangle = np.array([[x // 2 + 100, 460], [x // 2 + 190, 460], [x // 2 + 145, 380]], np.int32)
        cv2.fillPoly(image, [triangle], (220, 120, 30))
        writer.write(image)
    writer.release()
    return path


def part_video(runtimes: list[str], threads: int, detector: Path, folder: Path, route: str | None,
               results: Results) -> None:
    from edgekit.camera.loop import run_loop
    from edgekit.camera.sources import VideoFile

    print(f"\n== 3. detector on a generated 30 FPS 640x480 video, {threads} threads ==")
    video = shapes_video(folder / "shapes.mp4")
    for runtime in runtimes:
        with Predictor(detector, runtime, threads=threads, route=route) as predict:
            list(predict.stream(VideoFile(video)))  # warm up (and let openvino choose its call)
            live = run_loop(predict, VideoFile(video, realtime=True))
        period_ms = 1000.0 / 30
        latency = live.latency
        print(f"{runtime:9s} real time: {live.fps:5.1f} FPS processed, {live.dropped} of {live.frames + live.dropped} "
              f"frames dropped, latency p50 {latency.p50_ms:.1f} ms ({latency.p50_ms / period_ms:.2f} frames), "
              f"p99 {latency.p99_ms:.1f} ms ({latency.p99_ms / period_ms:.2f} frames)  target >= 30 FPS, <= 2 frames")
        for count in sorted({threads, 1}, reverse=True):  # 1 thread leaves a core for the overlapped work
            with Predictor(detector, runtime, threads=count, route=route) as predict:
                list(predict.stream(VideoFile(video)))
                rounds = [(one_after_another(predict, VideoFile(video)), run_loop(predict, VideoFile(video)))
                          for _ in range(SHORT_ROUNDS)]
            sequential = [r[0] for r in rounds]
            ratio, ratios = results.ratio(f"video, {runtime}, {count} thread(s): pipelined FPS / sequential FPS",
                                          [r[1].fps for r in rounds], sequential, "one call after another")
            fast = sorted((r[1] for r in rounds), key=lambda summary: summary.fps)[len(rounds) // 2]  # median FPS
            print(f"{'':9s} as fast as it decodes, {count} inference thread(s): pipelined {fast.fps:6.1f} FPS vs one "
                  f"call after another {np.median(sequential):6.1f} FPS ({ratio:.2f}x, rounds "
                  f"{rounds_text(ratios, 2)}); pipelined stage p50 {fast.preprocess.p50_ms:.2f} / "
                  f"{fast.inference.p50_ms:.2f} / {fast.postprocess.p50_ms:.2f} ms")


def one_after_another(predict, video) -> float:
    """FPS of reading a frame, then predicting it, with nothing overlapped."""
    start, count = time.perf_counter(), 0
    for frame in video:
        predict(frame.image, color=video.color)
        count += 1
    video.close()
    return count / (time.perf_counter() - start)


def default_route_of(path: Path) -> str | None:
    """The host route a Predictor picks for this model by default (its task's); None in a build
    without per-task routes."""
    from edgekit.meta import read_meta
    from edgekit.tasks import get_task
    from edgekit.tasks.preprocess import default_route

    task = get_task(read_meta(path).task)
    return default_route(task.exact_pixels) if hasattr(task, "exact_pixels") else None


def preprocess_route(route: str | None) -> str:
    module = importlib.import_module("edgekit.tasks.preprocess")
    if route or not hasattr(module, "default_route"):
        return route or "numpy (the only route in this build)"
    if not hasattr(module, "OPENCV_ROUTES"):  # a build with one OpenCV route for every task
        return f"{module.default_route()} (default)"
    if module.default_route() == "numpy":
        return "numpy (default: OpenCV is not installed)"
    return "the task's default (opencv-uint8 for classifiers, opencv for detectors)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtimes", default="ort-cpu,openvino")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--detector", help="a trained shapes detector .onnx (default: randomly initialised)")
    parser.add_argument("--segmenter", help="a trained segmenter .onnx (default: randomly initialised)")
    parser.add_argument("--embedder", help="a trained embedder .onnx (default: randomly initialised)")
    parser.add_argument("--models", default=",".join(TARGETS), help="models of the 'models' part")
    parser.add_argument("--route", help="host pre-processing route, where the build offers several")
    parser.add_argument("--parts", default="tiny,models,video")
    parser.add_argument("--seconds", type=float, default=0.8, help="minimum timing per measurement (x5 rounds)")
    parser.add_argument("--no-fused", action="store_true", help="skip the fused-graph rows")
    add_results_flag(parser)
    args = parser.parse_args()
    results = Results("robot_path", enabled=not args.no_results)
    runtimes, parts = args.runtimes.split(","), args.parts.split(",")
    from edgekit.sources import resolve_model

    print(f"pre-processing route: {preprocess_route(args.route)}")
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        if "tiny" in parts:
            part_tiny(runtimes, args.threads, folder, results)
        detector = detector_model(folder, args.detector) if {"models", "video"} & set(parts) else None
        if "models" in parts:
            chosen = args.models.split(",")
            built = {"detector": lambda: detector, "segmenter": lambda: segmenter_model(folder, args.segmenter),
                     "embedder": lambda: embedder_model(folder, args.embedder)}
            models = {name: built[name]() if name in built else resolve_model(name) for name in chosen}
            part_models(runtimes, args.threads, models, args.route, args.seconds, folder,
                        fused=not args.no_fused, results=results)
        if "video" in parts:
            part_video(runtimes, args.threads, detector, folder, args.route, results)
    results.write()


if __name__ == "__main__":
    main()
