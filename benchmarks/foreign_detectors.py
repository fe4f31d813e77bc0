"""Foreign detector layouts on both CPU runtimes: inference, edgekit's decode + NMS + mapping back, and
the source's own decode written as the source writes it (Ultralytics' NMS + scale_boxes, CenterFace's
decode, InsightFace's SCRFD detect), on the same raw outputs of one photo (p50, ms).

The models are the tests' (tests/test_decoders_foreign.py, tests/test_keypoints.py): heads built as the
sources build them, random weights with BatchNorm from the photo, so a realistic number of boxes passes.
YuNet's reference is OpenCV's FaceDetectorYN end to end (its own DNN and decode), against edgekit's
Predictor-style call. Rounds alternate between the variants; a ratio is the median of the rounds' ratios.

    python benchmarks/foreign_detectors.py [--rounds 3] [--seconds 0.5] [--threads 2] [--no-results]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sidebyside import Results, add_results_flag, rounds_text

RUNTIMES = ("ort-cpu", "openvino")


def p50_ms(call, seconds: float, warmup: int = 3) -> float:
    for _ in range(warmup):
        call()
    samples: list[int] = []
    deadline = time.perf_counter_ns() + int(seconds * 1e9)
    while len(samples) < 10 or time.perf_counter_ns() < deadline:
        start = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - start)
    return float(np.percentile(samples, 50)) / 1e6


def formats(folder: Path) -> dict:
    """name → (model file, BGR photo, reference(outputs, frame shape) or None)."""
    from tests import test_decoders_foreign as yolo
    from tests import test_keypoints as faces

    chelsea, astronaut = np.ascontiguousarray(yolo.photo()[..., ::-1]), faces.astronaut_bgr()
    built = {}
    for name, (head, objectness) in {"yolov8 (1x84x2100)": ("v8", False), "yolov5 (1x6300x85)": ("v5", True)}.items():
        path = yolo.export(yolo.yolo_like(head), folder / f"{head}.onnx", ["output0"])
        yolo.update_file(path, yolo.ultralytics_meta())
        built[name] = (path, chelsea, _yolo_reference(yolo, objectness))
    if yolo._ultralytics():
        for cfg in ("yolov8n.yaml", "yolo11n.yaml", "yolo26n.yaml"):
            built[cfg.removesuffix(".yaml")] = (yolo.ultralytics_model(cfg, folder), chelsea,
                                                _yolo_reference(yolo, False, cfg.startswith("yolo26")))
    built["centerface"] = (faces.centerface_model(folder / "centerface.onnx"), astronaut,
                           lambda outputs, frame: faces.centerface_reference(outputs, frame, 256))
    names = [f"{kind}_{stride}" for kind in ("score", "bbox", "kps") for stride in (8, 16, 32)]
    built["scrfd"] = (faces.scrfd_model(folder / "scrfd.onnx"), astronaut,
                      lambda outputs, frame: faces.scrfd_reference([outputs[n] for n in names], frame))
    built["yunet"] = (faces.yunet_model(folder / "yunet.onnx"), astronaut, None)
    return built


def _yolo_reference(yolo, objectness: bool, end2end: bool = False):
    def reference(outputs, frame):
        if end2end:
            import torch
            from ultralytics.utils.nms import non_max_suppression

            rows = non_max_suppression(torch.from_numpy(outputs["output0"]), yolo.CONF, end2end=True)[0].numpy()
        else:
            rows = yolo.nms_reference(outputs["output0"], objectness)
        rows[:, :4] = yolo.scale_boxes_reference(rows[:, :4], frame)
        return rows
    return reference


def measure(name: str, path: Path, image: np.ndarray, reference, seconds: float, threads: int) -> dict[str, float]:
    """One round: per runtime inference and edgekit's post-processing; the reference once."""
    import cv2
    import torch

    from edgekit.meta import read_meta
    from edgekit.runtimes import open_runtime
    from edgekit.tasks.detection import DetectionTask

    cv2.setNumThreads(1)  # OpenCV's resize workers would fight ONNX Runtime's spinning threads for the cores
    torch.set_num_threads(1)  # the references are small tensor ops: one thread, no barrier for a preempted core
    meta, task, row = read_meta(path), DetectionTask(), {}
    feeds, transforms = task.preprocess([image], meta, color="BGR", route="opencv-uint8")
    for runtime in RUNTIMES:
        with open_runtime(runtime, path, threads=threads) as session:
            outputs = session.run(feeds)
            row[f"inference {runtime}"] = p50_ms(lambda: session.run(feeds), seconds)
            row[f"end to end {runtime}"] = p50_ms(lambda: task.postprocess(session.run(
                task.preprocess([image], meta, color="BGR", route="opencv-uint8")[0]), meta, transforms), seconds)
        row[f"edgekit decode {runtime}"] = p50_ms(lambda raw=outputs: task.postprocess(raw, meta, transforms), seconds)
        row["boxes"] = len(task.postprocess(outputs, meta, transforms)[0])
    if reference is not None:
        row["reference decode"] = p50_ms(lambda: reference(outputs, image.shape[:2]), seconds)
    else:  # YuNet: OpenCV's detector end to end on the resized photo
        cv2.setNumThreads(threads)
        detector = cv2.FaceDetectorYN.create(str(path), "", (320, 320), 0.6, 0.3, 5000)
        row["reference end to end"] = p50_ms(lambda: detector.detect(cv2.resize(image, (320, 320))), seconds)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.5, help="per measurement")
    parser.add_argument("--threads", type=int, default=2)
    add_results_flag(parser)
    args = parser.parse_args()
    results = Results("Foreign detector layouts: edgekit's decoders vs the sources' own", not args.no_results)
    with tempfile.TemporaryDirectory() as folder:
        built = formats(Path(folder))
        rounds = [{name: measure(name, *spec, args.seconds, args.threads) for name, spec in built.items()}
                  for _ in range(args.rounds)]
    print(f"batch 1, {args.threads} threads, p50 ms, median of {args.rounds} rounds")
    for name in built:
        table = {key: statistics.median(r[name][key] for r in rounds) for key in rounds[0][name]}
        print(f"\n{name}: {table.pop('boxes'):.0f} boxes")
        for key, value in table.items():
            print(f"  {key:32s} {value:9.3f}")
        _ratios(name, [r[name] for r in rounds], results)
    for line in results.notes:
        print(line)
    results.write()


def _ratios(name: str, rounds: list[dict[str, float]], results: Results) -> None:
    ort = [r["inference ort-cpu"] for r in rounds]
    ratio, ratios = results.ratio(f"{name}: openvino / ort-cpu inference", [r["inference openvino"] for r in rounds],
                                  ort, "ort-cpu inference")
    print(f"  openvino / ort-cpu inference = {ratio:.2f}x (rounds {rounds_text(ratios, 2)})")
    for runtime in RUNTIMES:
        if "reference decode" in rounds[0]:
            label, basis, other = f"{name} {runtime}: edgekit decode / source's decode", "source's decode", \
                [r["reference decode"] for r in rounds]
            mine = [r[f"edgekit decode {runtime}"] for r in rounds]
        else:
            label, basis, other = f"{name} {runtime}: edgekit end to end / OpenCV FaceDetectorYN", \
                "FaceDetectorYN end to end", [r["reference end to end"] for r in rounds]
            mine = [r[f"end to end {runtime}"] for r in rounds]
        ratio, ratios = results.ratio(label, mine, other, basis)
        print(f"  {label.split(': ', 1)[1]} = {ratio:.2f}x (rounds {rounds_text(ratios, 2)})")


if __name__ == "__main__":
    main()
