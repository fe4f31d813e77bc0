"""Pre- and post-processing routes on a 640×480 RGB camera frame, side by side in one run (p50, ms).

For mobilenet_v3_small (center-crop 224) and the shapes detector (letterbox 128): the numpy route,
the OpenCV route, ``cv2.dnn.blobFromImage`` (speed reference only: one scale, its own crop), the
fused nodes alone (``--resize-op resize`` and ``gather``) and the fused graph's extra cost (fused −
plain model, same runtime), the Predictor-style call (preprocess
→ run → postprocess) for the plain model on each route and for the fused model, and the
detector's numpy decoding + NMS against decoding + NMS in the graph. Rounds alternate between
the variants so machine noise hits all alike; the table prints the median of the rounds' p50s, and a
ratio (end to end / plain inference, plain inference = 1.0x) is the median of the rounds' ratios.

    python benchmarks/preprocess_routes.py [--detector runs/detector/detector.onnx] [--rounds 3] [--no-results]

Without ``--detector`` a random-weight detector is used with the score threshold at 0, so NMS
works on all 100 candidates (the worst case).
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

from sidebyside import Results, add_results_flag, rounds_text  # noqa: E402

FRAME = (480, 640)
RUNTIMES = ("ort-cpu", "openvino")


def p50_ms(call, seconds: float, warmup: int = 5) -> float:
    for _ in range(warmup):
        call()
    samples: list[int] = []
    deadline = time.perf_counter_ns() + int(seconds * 1e9)
    while len(samples) < 20 or time.perf_counter_ns() < deadline:
        start = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - start)
    return float(np.percentile(samples, 50)) / 1e6


def camera_frame() -> np.ndarray:
    import cv2
    import skimage.data

    return np.ascontiguousarray(cv2.resize(skimage.data.astronaut(), FRAME[::-1], interpolation=cv2.INTER_AREA))


def build_models(folder: Path, detector: Path | None) -> dict[str, dict[str, Path]]:
    from edgekit.exporters import ExportConfig
    from edgekit.exporters.config import FuseConfig
    from edgekit.exporters.fuse import fuse_model
    from edgekit.exporters.torch_onnx import export_module, export_zoo_model

    plain = export_zoo_model("mobilenet_v3_small", folder / "mnv3.onnx", ExportConfig(input_size=(224, 224))).path
    models = {"mobilenet_v3_small": {"plain": plain}}
    if detector is None:
        import torch

        from edgekit.train.detector import detector_meta
        from edgekit.zoo.detector import OUTPUT_NAMES, centernet_small

        torch.manual_seed(0)
        detector = export_module(centernet_small(3), detector_meta(("circle", "square", "triangle"), {}),
                                 folder / "detector.onnx", ExportConfig(), output_names=OUTPUT_NAMES).path
    models["detector"] = {"plain": detector}
    for name, paths in models.items():
        identity = _identity(paths["plain"], folder / f"{name}-identity.onnx")
        for op in ("resize", "gather"):
            config = FuseConfig(frame=FRAME, resize_op=op)
            suffix = "" if op == "resize" else "-gather"
            paths[f"fused{suffix}"] = fuse_model(paths["plain"], folder / f"{name}-fused{suffix}.onnx", config).path
            paths[f"nodes-only{suffix}"] = fuse_model(identity, folder / f"{name}-nodes{suffix}.onnx", config).path
    models["detector"]["fused+nms"] = fuse_model(
        detector, folder / "detector-fused-nms.onnx", FuseConfig(frame=FRAME, postprocess=True, nms=True)).path
    return models


def _identity(model: Path, target: Path) -> Path:
    """A graph that returns its input, with ``model``'s metadata: fused, it times the nodes alone."""
    import onnx
    from onnx import TensorProto, helper

    from edgekit.exporters.metadata import set_metadata
    from edgekit.meta import read_meta

    meta = read_meta(model)
    # its preprocessing, not its task: a detector's decoder would look for outputs the identity lacks
    meta = meta.with_(task="classification", labels=(), extra={k: v for k, v in meta.extra.items() if k != "decoder"})
    shape = [1, meta.channels, *meta.input_size]
    graph = helper.make_graph([helper.make_node("Identity", [meta.input_name], ["output"])], "identity",
                              [helper.make_tensor_value_info(meta.input_name, TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)])
    identity = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    set_metadata(identity, meta)
    onnx.save(identity, str(target))
    return target


def measure(models, frame: np.ndarray, task_options: dict, threads: int, seconds: float) -> dict[tuple, float]:
    """One round: every variant once, keyed (model, row, column)."""
    import cv2

    from edgekit.meta import read_meta
    from edgekit.runtimes import open_runtime
    from edgekit.tasks import get_task
    from edgekit.tasks.detection import DetectionTask
    from edgekit.tasks.preprocess import preprocess_images

    results = {}
    for name, paths in models.items():
        meta = read_meta(paths["plain"])
        task = DetectionTask(**task_options) if meta.task == "detection" else get_task(meta.task)
        for route in ("numpy", "opencv", "opencv-uint8"):
            results[(name, f"preprocess: {route} route", "host")] = p50_ms(
                lambda route=route: preprocess_images([frame], meta, route=route), seconds)
        size, crop = meta.input_size[::-1], meta.resize == "center-crop"
        results[(name, "preprocess: cv2.dnn.blobFromImage (reference)", "host")] = p50_ms(
            lambda: cv2.dnn.blobFromImage(frame, 1 / (255 * 0.226), size, tuple(255 * m for m in meta.mean), False,
                                          crop), seconds)
        feeds, transforms = task.preprocess([frame], meta, route="numpy")
        for runtime_name in RUNTIMES:
            with open_runtime(runtime_name, paths["plain"], threads=threads) as plain:
                bare = p50_ms(lambda: plain.run(feeds), seconds)
                outputs = plain.run(feeds)
                results[(name, "inference: plain model", runtime_name)] = bare
                for route in ("numpy", "opencv"):
                    results[(name, f"end to end: plain, {route} route", runtime_name)] = p50_ms(
                        lambda route=route: _call(task, meta, plain, frame, route), seconds)
                if meta.task == "detection":
                    results[(name, "postprocess: numpy decode + NMS", runtime_name)] = p50_ms(
                        lambda: task.postprocess(outputs, meta, transforms), seconds)
            for variant in [key for key in paths if key != "plain"]:
                fused_meta = read_meta(paths[variant])
                with open_runtime(runtime_name, paths[variant], threads=threads) as fused:
                    frame_feeds = {fused_meta.input_name: frame[None]}
                    cost = p50_ms(lambda: fused.run(frame_feeds), seconds)
                    if variant.startswith("nodes-only"):
                        op = "gather" if variant.endswith("gather") else "resize"
                        results[(name, f"preprocess: fused nodes alone ({op})", runtime_name)] = cost
                        continue
                    results[(name, f"inference: {variant} model", runtime_name)] = cost
                    results[(name, f"end to end: {variant}", runtime_name)] = p50_ms(
                        lambda: _call(task, fused_meta, fused, frame, None), seconds)
                    if variant == "fused+nms":
                        fused_outputs = fused.run(frame_feeds)
                        results[(name, "postprocess: numpy after in-graph decode + NMS", runtime_name)] = p50_ms(
                            lambda: task.postprocess(fused_outputs, fused_meta, transforms), seconds)
    return results


def _call(task, meta, runtime, frame, route):
    feeds, transforms = task.preprocess([frame], meta, route=route)
    return task.postprocess(runtime.run(feeds), meta, transforms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", type=Path, default=None, help="a trained detector .onnx (default: random)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.5, help="per variant and round")
    parser.add_argument("--threads", type=int, default=2)
    add_results_flag(parser)
    args = parser.parse_args()
    results = Results("preprocess_routes", enabled=not args.no_results)
    task_options = {} if args.detector else {"score_threshold": 0.0}
    frame = camera_frame()
    with tempfile.TemporaryDirectory() as folder:
        models = build_models(Path(folder), args.detector)
        rounds = [measure(models, frame, task_options, args.threads, args.seconds) for _ in range(args.rounds)]
    table = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    _print(table, rounds, args, results)
    results.write()


def _print(table: dict[tuple, float], rounds: list[dict[tuple, float]], args, results: Results) -> None:
    print(f"640x480 RGB uint8 frame, batch 1, {args.threads} threads, p50 ms (median of {args.rounds} rounds)")
    for name in dict.fromkeys(key[0] for key in table):
        print(f"\n{name}")
        rows = list(dict.fromkeys(key[1] for key in table if key[0] == name))
        print(f"  {'':52s} {'host':>8s} " + " ".join(f"{r:>9s}" for r in RUNTIMES))
        for row in rows:
            cells = [table.get((name, row, column)) for column in ("host", *RUNTIMES)]
            print(f"  {row:52s} " + " ".join(f"{c:9.3f}" if c is not None else f"{'':9s}" for c in cells))
        print("  ratios: median of the rounds' end to end / plain inference (plain inference = 1.0x)")
        for runtime in RUNTIMES:
            plain = [r[(name, "inference: plain model", runtime)] for r in rounds]
            for variant in ("fused", "fused-gather"):
                extra = statistics.median(r[(name, f"inference: {variant} model", runtime)] - base
                                          for r, base in zip(rounds, plain))
                ratio, ratios = results.ratio(f"{name} {runtime}: {variant} end to end / plain inference",
                                              [r[(name, f"end to end: {variant}", runtime)] for r in rounds], plain,
                                              "plain model inference")
                print(f"  {runtime}: {variant}: preprocessing costs {extra:+.3f} ms in the graph; "
                      f"end to end / plain inference = {ratio:.2f}x (rounds {rounds_text(ratios, 2)})")
            host, ratios = results.ratio(f"{name} {runtime}: plain, opencv route end to end / plain inference",
                                         [r[(name, "end to end: plain, opencv route", runtime)] for r in rounds],
                                         plain, "plain model inference")
            print(f"  {runtime}: plain model, opencv route: end to end / plain inference = {host:.2f}x"
                  f" (rounds {rounds_text(ratios, 2)})")
        if name == "detector":
            for runtime in RUNTIMES:
                in_graph = (table[(name, "inference: fused+nms model", runtime)]
                            - table[(name, "inference: fused model", runtime)])
                rest = table[(name, "postprocess: numpy after in-graph decode + NMS", runtime)]
                numpy = table[(name, "postprocess: numpy decode + NMS", runtime)]
                print(f"  {runtime}: post-processing numpy {numpy:.3f} ms vs in graph {in_graph:+.3f} ms "
                      f"+ numpy rest {rest:.3f} ms")


if __name__ == "__main__":
    main()
