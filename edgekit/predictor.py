"""The embedding API: load an exported model and run it on camera frames or images, torch-free.

    from edgekit import Predictor
    with Predictor("detector.onnx", runtime="openvino", color="BGR") as predict:
        detections = predict(frame)               # one HxWx3 uint8 frame → one prediction
        print(predict.last_timing.line())         # "0.9 ms preprocess, 1.3 ms inference, ..."

Pre- and post-processing come from the file's metadata (task, input size, colour, mean/std,
resize mode, labels), or from settings passed here for a model without it; only numpy and
the chosen runtime are imported.

Thread safety: one open Predictor may be called from several threads at once on every
runtime (ONNX Runtime sessions are thread-safe; OpenVINO gets one infer request per thread;
a runtime with one execution context, such as TensorRT's, serializes its runs).
``last_timing`` is per thread. Opening and closing are not meant to race with calls.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import BadInputError
from edgekit.frames import as_items, check_color, to_frame
from edgekit.limits import MAX_INPUT_SIDE, check_keywords
from edgekit.meta import COLORS, RESIZES, ModelMeta, read_meta
from edgekit.runtimes import get_runtime
from edgekit.stream import FrameResult
from edgekit.tasks import TASKS, get_task
from edgekit.tasks.run import NO_TIME, StageTiming, batch_size_for, run_batches

#: Settings that stand in for (or override) a model's metadata.
SETTINGS = ("task", "input_size", "mean", "std", "labels", "resize", "model_color", "input_name")
#: Post-processing settings, each for the tasks that take it (detection: thresholds; classification: top_k).
POSTPROCESS = ("score_threshold", "iou_threshold", "max_detections", "nms", "top_k")


class Predictor:
    """A model file bound to one runtime and to the task its metadata (or ``settings``) names.

    ``runtime`` defaults to what ``edgekit optimize`` recorded in the file (runtime and settings),
    else ort-cpu. ``color`` is the channel order of the frames you pass (RGB, or BGR for OpenCV frames; no
    copy is made). ``batch_size`` caps images per inference call for dynamic-batch models
    (default 8). ``route`` picks the host pre-processing route where the task offers several
    (numpy, opencv, opencv-uint8). ``opencv_threads`` (e.g. 0: on the calling thread) is set with
    ``cv2.setNumThreads`` when the Predictor opens on the OpenCV route, for when OpenCV's worker
    threads compete with the runtime's for the cores; it is process-wide, so the default (None)
    leaves OpenCV's setting alone. ``settings`` (task, input_size, mean, std, labels, resize, model_color,
    input_name) describe a model without edgekit metadata or override it; ``score_threshold``,
    ``iou_threshold``, ``max_detections`` (detectors) and ``top_k`` (classifiers) override the
    post-processing the metadata describes; everything else
    goes to the runtime (threads, device, ...; on ONNX Runtime ``spinning=False`` when other
    work shares the cores, see the README).
    """

    def __init__(self, model: str | Path, runtime: str | None = None, *, color: str = "RGB",
                 batch_size: int | None = None, route: str | None = None, opencv_threads: int | None = None,
                 **options: Any) -> None:
        self.model_path = Path(model)
        settings = {key: options.pop(key) for key in SETTINGS if options.get(key) is not None}
        tuning = {key: options.pop(key) for key in POSTPROCESS if key in options}
        tuning = {key: value for key, value in tuning.items() if value is not None}
        file_meta = read_meta(self.model_path)
        self.meta: ModelMeta = _with_settings(file_meta, settings, self.model_path)
        self.task = get_task(self.meta.task, **tuning)
        self.color = check_color(color)
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise BadInputError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.route = route
        if opencv_threads is not None and (isinstance(opencv_threads, bool) or not isinstance(opencv_threads, int)
                                           or opencv_threads < 0):
            raise BadInputError(f"opencv_threads must be a non-negative integer or None, got {opencv_threads!r}")
        check_keywords(batch_size=batch_size, opencv_threads=opencv_threads)  # the limits every door shares
        self.opencv_threads = opencv_threads
        if runtime is None:  # what `edgekit optimize` recorded in the file, else ort-cpu
            from edgekit.deployment import deployment_settings

            runtime, recorded = deployment_settings(self.meta)
            options = {**recorded, **options}
        runtime_class = get_runtime(runtime)
        options = {k: v for k, v in options.items() if v is not None}
        self.runtime = runtime_class(self.model_path, **options)
        # a model without metadata: what its settings leave out is read from the model at open
        self._from_model = () if file_meta.task != "unknown" else tuple(
            key for key in ("input_name", "input_size") if key not in settings)
        self._ready = False
        self._lock = threading.Lock()
        self._local = threading.local()

    # ---- lifecycle ---------------------------------------------------------
    def open(self) -> Predictor:
        """Load the model (also done by ``with`` or the first call)."""
        with self._lock:
            if not self._ready:
                self.runtime.open()
                self.meta = _fit_to_model(self.meta, self.runtime, self._from_model)
                _limit_opencv_threads(self.meta, self.route, self.opencv_threads)
                self._ready = True
        return self

    def close(self) -> None:
        with self._lock:
            self._ready = False
            self.runtime.close()

    def __enter__(self) -> Predictor:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- prediction ----------------------------------------------------------
    def __call__(self, images: Any, color: str | None = None) -> Any:
        """Predictions for one image (→ one prediction) or a batch (→ a list, in order).

        An image is a uint8 HxW, HxWx1, HxWx3 or HxWx4 numpy array, a PIL image or a file
        path; a batch is a list of them or an NxHxWxC array. ``color`` overrides the
        Predictor's frame colour order for this call. Stage times: ``last_timing``.
        """
        items, single = as_items(images)
        size = self.images_per_call
        predictions: list[Any] = []
        timing = NO_TIME
        for start in range(0, len(items), size):  # files are read one chunk at a time
            frames = [to_frame(item, start + index) for index, item in enumerate(items[start : start + size])]
            chunk_predictions, chunk_timing = self.predict_frames(frames, color)
            predictions.extend(chunk_predictions)
            timing = timing + chunk_timing
        self._local.timing = timing
        return predictions[0] if single else predictions

    def predict_frames(self, frames: Sequence[np.ndarray], color: str | None = None) -> tuple[list[Any], StageTiming]:
        """Checked uint8 frames → (one prediction per frame, stage timing of the call)."""
        if not self._ready:
            self.open()
        color = self.color if color is None else check_color(color)
        return run_batches(self.runtime, self.task, self.meta, frames, self.batch_size, color, self.route)

    @property
    def last_timing(self) -> StageTiming | None:
        """Stage timing of this thread's last call (None before the first)."""
        return getattr(self._local, "timing", None)

    def stream(self, frames: Iterable[Any], color: str | None = None) -> Iterator[FrameResult]:
        """A FrameResult (frame, prediction, stage timing, capture-to-prediction latency) per
        frame, in order, pipelined: a worker thread reads and pre-processes frame n+1 while
        frame n is inferred here. ``frames``: arrays, paths, PIL images or camera Frames."""
        from edgekit.stream import pipelined

        if not self._ready:
            self.open()
        yield from pipelined(self, frames, self.color if color is None else check_color(color))

    @property
    def images_per_call(self) -> int:
        """How many images go to the model in one inference call."""
        if not self._ready:
            self.open()
        return batch_size_for(self.runtime, self.meta, self.batch_size)[0]


def _limit_opencv_threads(meta: ModelMeta, route: str | None, threads: int | None) -> None:
    """``cv2.setNumThreads(threads)`` when this model's frames are pre-processed by OpenCV."""
    from edgekit.tasks.preprocess import FUSED_KEY, OPENCV_ROUTES, default_route

    if threads is None or FUSED_KEY in meta.extra or (route or default_route()) not in OPENCV_ROUTES:
        return
    import cv2

    cv2.setNumThreads(threads)


def _with_settings(meta: ModelMeta, settings: dict[str, Any], path: Path) -> ModelMeta:
    """The file's metadata with explicit settings applied, checked; a one-line error if neither says the task."""
    if not settings and meta.task == "unknown":
        raise BadInputError(
            f"{path} has no edgekit task metadata: set it with `edgekit meta set {path} task=classification "
            "labels=a,b,c` (or task=detection ...), or pass its settings (e.g. Predictor(path, "
            "task='classification', input_size=(224, 224), mean=..., std=..., labels=...))")
    changes = dict(settings)
    if "model_color" in changes:
        changes["color"] = str(changes.pop("model_color")).upper()
    for key in ("mean", "std", "labels"):
        if key in changes:
            changes[key] = tuple(changes[key])
    if "input_size" in changes:
        changes["input_size"] = _size(changes["input_size"])
    meta = meta.with_(**changes)
    _check_meta(meta, path)
    return meta


def _size(value: Any) -> tuple[int, int]:
    size = (value, value) if isinstance(value, int) else tuple(value)
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_INPUT_SIDE
                                 for v in size):
        raise BadInputError(f"input_size must be a positive int or (height, width), at most {MAX_INPUT_SIDE} "
                            f"a side, got {value!r}")
    return size  # type: ignore[return-value]


def _check_meta(meta: ModelMeta, path: Path) -> None:
    if meta.task == "unknown":
        raise BadInputError(f"{path} has no edgekit task metadata: pass task= ({', '.join(TASKS.names())})")
    if meta.task not in TASKS.names():
        TASKS.get(meta.task)  # raises "unknown task ... did you mean"
    if meta.color not in COLORS:
        raise BadInputError(f"model colour must be one of {', '.join(COLORS)}, got '{meta.color}'")
    if meta.resize not in RESIZES:
        raise BadInputError(f"resize must be one of {', '.join(RESIZES)}, got '{meta.resize}'")
    for key in ("mean", "std"):
        values = getattr(meta, key)
        if len(values) != meta.channels or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in values):
            raise BadInputError(f"{key} must be {meta.channels} finite numbers for a {meta.color} model, "
                                f"got {values!r}")
    if any(v == 0 for v in meta.std):
        raise BadInputError(f"std must not contain 0, got {meta.std!r}")


def _fit_to_model(meta: ModelMeta, runtime, from_model: tuple[str, ...]) -> ModelMeta:
    """Check the metadata against the opened model; fill ``from_model`` keys from its only input."""
    inputs = runtime.inputs
    if "input_name" in from_model and meta.input_name not in inputs and len(inputs) == 1:
        meta = meta.with_(input_name=next(iter(inputs)))
    if meta.input_name not in inputs:
        raise BadInputError(f"the model has no input '{meta.input_name}' "
                            f"(it has {', '.join(inputs)}): pass input_name= or record it with "
                            f"`edgekit meta set MODEL input_name={next(iter(inputs))}`")
    shape = inputs[meta.input_name].shape
    if "input_size" in from_model and len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]):
        meta = meta.with_(input_size=(shape[2], shape[3]))
    return meta


__all__ = ["Predictor", "StageTiming"]
