"""`edgekit predict`: run a model on images, folders, a video file or a camera; print or save."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from edgekit.cli.common import handle_errors, parse_options
from edgekit.cli.source_options import INPUTS, META, META_FILE, WEIGHTS, source_options


def register(app: typer.Typer) -> None:
    app.command("predict")(handle_errors(predict))


def predict(
    model: str = typer.Argument(..., help="An .onnx/.xml file, a zoo name or a torch source (exported to the cache "
                                          "first; give its labels and preprocessing with --meta)."),
    sources: Optional[list[str]] = typer.Argument(None, help="Image files, folders of images, or one video file."),
    camera: Optional[int] = typer.Option(None, "--camera", help="Read live frames from camera N (OpenCV)."),
    runtime: str = typer.Option("ort-cpu", "--runtime", "-r", help="Runtime name (see `edgekit runtimes`)."),
    threads: Optional[int] = typer.Option(None, help="Inference threads \\[default: the runtime's]."),
    device: Optional[str] = typer.Option(None, help="Device for runtimes that have several."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-O", help="Runtime option KEY=VALUE (repeatable)."),
    json_lines: bool = typer.Option(False, "--json", help="Print one JSON object per frame instead of text."),
    save: Optional[Path] = typer.Option(None, help="Write annotated images (or an annotated .mp4) into this folder."),
    top_k: int = typer.Option(5, help="Classes printed per image (classifiers)."),
    score_threshold: Optional[float] = typer.Option(
        None, help="Detectors: lowest score kept \\[default: the model's, e.g. 0.05 for edgekit's detector]."),
    iou_threshold: Optional[float] = typer.Option(None, help="Detectors: NMS IoU threshold \\[default: the model's]."),
    nms: Optional[str] = typer.Option(None, help="Detectors: class (per class) or agnostic NMS \\[default: the "
                                      "model's]."),
    max_frames: Optional[int] = typer.Option(None, help="Stop after this many frames (videos, cameras)."),
    realtime: bool = typer.Option(False, help="Play a video at its own frame rate, "
                                  "dropping frames the model is too slow for (as a camera)."),
    gallery: Optional[Path] = typer.Option(None, help="Embedding models: a folder with a folder of images per "
                                           "identity; each image is labelled by its nearest identity."),
    weights: Optional[Path] = WEIGHTS,
    input_spec: Optional[list[str]] = INPUTS,
    meta_pair: Optional[list[str]] = META,
    meta_file: Optional[Path] = META_FILE,
) -> None:
    """Predict with MODEL on SOURCES (images, folders, a video) or --camera N.

    Prints top-k classes or boxes per image and the time per stage; a video or camera shows
    FPS and per-stage latency while it runs, drops stale frames (latency never grows), and
    stops cleanly on Ctrl-C with a summary.
    """
    from edgekit.errors import BadInputError
    from edgekit.limits import check_numbers

    check_numbers(threads=threads)  # before any model is read or exported
    if (camera is None) == (not sources):
        raise BadInputError("give image files, folders or a video file, or --camera N (not both)")
    for name, value in (("top-k", top_k), ("max-frames", max_frames if max_frames is not None else 1)):
        if value < 1:
            raise BadInputError(f"--{name} must be at least 1, got {value}")
    given = source_options(weights, input_spec, meta_pair, meta_file)
    from edgekit import Predictor
    from edgekit.camera.loop import run_loop

    created = save is not None and not save.exists()
    save_dir = _save_folder(save, sources or [])
    with _no_empty_folder_left(save_dir if created else None):
        source = _open_source(sources or [], camera, realtime)
        try:
            predictor = Predictor(given.resolve(model), runtime, threads=threads, device=device,
                                  score_threshold=score_threshold, iou_threshold=iou_threshold,
                                  **({"nms": nms} if nms else {}), **parse_options(option))
            predictor.open()
            if hasattr(predictor.task, "top_k"):
                predictor.task.top_k = max(top_k, 1)
            if gallery is not None:
                from edgekit.gallery import attach_gallery

                attach_gallery(predictor, gallery)
        except BaseException:
            source.close()
            raise
        video = getattr(source, "fps", None) is not None  # a video or a camera, not image files
        printer = _Printer(json_lines, top_k, per_frame=json_lines or not getattr(source, "live", False))
        status = _status if video and sys.stderr.isatty() else None
        with predictor, _saver(save_dir, source) as keep:
            summary = run_loop(predictor, source, lambda r: (printer(r), keep(r)), status, max_frames)
        if status is not None:
            typer.echo("", err=True)
        if summary.frames:
            ms = {name: stats.mean_ms for name, stats in
                  (("pre", summary.preprocess), ("inf", summary.inference), ("post", summary.postprocess))}
            typer.echo(f"{summary.frames} {'frames' if video else 'images'}: {ms['pre']:.2f} ms preprocess, "
                       f"{ms['inf']:.2f} ms inference, {ms['post']:.2f} ms postprocess per image "
                       f"({predictor.runtime.name})", err=json_lines)
        if video:
            typer.echo(summary.line(), err=json_lines)
        elif summary.interrupted:
            typer.echo(f"stopped by Ctrl-C after {summary.frames} images", err=True)
        _report_skipped(getattr(source, "skipped", []), summary.frames)


@contextlib.contextmanager
def _no_empty_folder_left(folder: Path | None):
    """Remove the --save folder this run made when the run fails before anything was saved in it."""
    try:
        yield
    except BaseException:
        if folder is not None and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise


def _report_skipped(skipped: list[str], read: int) -> None:
    """Unreadable images: one line each and exit 1 when others were predicted; bad input (exit 2) when
    none could be read."""
    from edgekit.errors import BadInputError, CheckFailedError

    if not skipped:
        return
    if not read:
        raise BadInputError(skipped[0] if len(skipped) == 1 else f"none of the {len(skipped)} images could be "
                            f"read: {skipped[0]}")
    for line in skipped:
        typer.echo(f"error: {line}", err=True)
    raise CheckFailedError(f"{len(skipped)} of {len(skipped) + read} images could not be read (listed above)")


def _save_folder(save: Path | None, sources: list[str]) -> Path | None:
    """The --save folder, made; refused when it cannot be written or holds the inputs (the annotated
    copies keep the inputs' names, so they would overwrite them)."""
    from edgekit.errors import BadInputError
    from edgekit.fileio import probe_folder

    if save is None:
        return None
    if save.exists() and not save.is_dir():
        raise BadInputError(f"--save {save} is not a folder")
    if not save.parent.is_dir():
        raise BadInputError(f"--save folder's parent {save.parent} does not exist")
    folders = {Path(s).resolve() if Path(s).is_dir() else Path(s).resolve().parent for s in sources}
    if save.resolve() in folders:
        raise BadInputError(f"--save {save} holds the input images or video: the annotated copies would "
                            "overwrite them (choose another folder)")
    try:
        save.mkdir(exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot create the --save folder {save}: {exc.strerror or exc}") from None
    probe_folder(save)
    return save


MAX_CAMERA_INDEX = 9999


def _open_source(sources: list[str], camera: int | None, realtime: bool):
    from edgekit.camera.sources import Camera, ImageFiles, VideoFile, image_paths, is_video
    from edgekit.errors import BadInputError

    if camera is not None:
        if not 0 <= camera <= MAX_CAMERA_INDEX:  # OpenCV crashes on some negative indexes
            raise BadInputError(f"--camera must be a camera index from 0 to {MAX_CAMERA_INDEX}, got {camera}")
        return Camera(camera)
    videos = [s for s in sources if is_video(s)]
    if videos:
        if len(sources) > 1:
            raise BadInputError("give one video file, or image files and folders (not both)")
        return VideoFile(videos[0], realtime=realtime)
    if realtime:
        raise BadInputError("--realtime plays a video file at its frame rate; it does not apply to images")
    return ImageFiles(image_paths(sources))   # an unreadable file is skipped and reported at the end


def _saver(save_dir: Path | None, source):
    """A context whose value is called with each FrameResult to save its annotated frame."""
    import contextlib

    from edgekit.camera.draw import annotated_name, save_image, video_writer
    from edgekit.camera.draw_masks import annotate  # masks and identities; boxes and classes go to draw.annotate

    if save_dir is None:
        return contextlib.nullcontext(lambda result: None)
    if getattr(source, "fps", None) is None:  # image files: one annotated image each, never two at one name
        used: set[str] = set()

        def keep_image(result) -> None:
            target = annotated_name(result.frame.name, result.frame.index, used)
            save_image(annotate(result.frame.image, result.prediction, source.color), save_dir / target)

        return contextlib.nullcontext(keep_image)
    stem = Path(source.path).stem if hasattr(source, "path") else "camera"
    return _video_saver(video_writer(save_dir / f"{stem}.mp4", source.fps, source.size), annotate, source.color)


class _video_saver:
    def __init__(self, writer_context, annotate, color: str) -> None:
        self._context, self._annotate, self._color = writer_context, annotate, color

    def __enter__(self):
        writer = self._context.__enter__()
        return lambda result: writer.write(self._annotate(result.frame.image, result.prediction, self._color))

    def __exit__(self, *exc: Any) -> Any:
        return self._context.__exit__(*exc)


def is_video(name: str) -> bool:
    from edgekit.camera.sources import is_video as video_file

    return video_file(name)


class _Printer:
    """Prints each FrameResult as text or a JSON line."""

    def __init__(self, json_lines: bool, top_k: int, per_frame: bool) -> None:
        self.json_lines, self.top_k, self.per_frame = json_lines, top_k, per_frame

    def __call__(self, result) -> None:
        if not self.per_frame:
            return
        prediction, frame = result.prediction, result.frame
        if self.json_lines:
            record = {"source": frame.name, "frame": frame.index, **prediction_dict(prediction, self.top_k),
                      "timing_ms": {k: round(v, 3) for k, v in result.timing.per_image_ms().items()}}
            typer.echo(json.dumps(record))
        else:
            where = f"{frame.name} frame {frame.index}" if frame.name and is_video(frame.name) else (frame.name
                                                                                                  or frame.index)
            typer.echo(f"{where}: {prediction_text(prediction, self.top_k)}")


def prediction_dict(prediction: Any, top_k: int) -> dict[str, Any]:
    """A JSON-ready view of a classification, detection, segmentation or embedding."""
    if hasattr(prediction, "mask") or hasattr(prediction, "vector"):
        return prediction.to_dict()
    if hasattr(prediction, "boxes"):
        return prediction.to_dict()   # boxes, scores, labels, names and keypoints when the head has them
    return {"classes": [{"class": c, "name": n, "probability": round(p, 5)} for c, n, p in
                        list(zip(prediction.classes, prediction.names, prediction.probabilities))[:top_k]]}


def prediction_text(prediction: Any, top_k: int) -> str:
    if hasattr(prediction, "mask") or hasattr(prediction, "vector"):
        return prediction.summary()
    if hasattr(prediction, "boxes"):
        items = prediction_dict(prediction, top_k)["detections"]
        boxes = ", ".join(f"{d['name']} {d['score']:.2f} [{', '.join(f'{v:.0f}' for v in d['box'])}]" for d in items)
        return f"{len(items)} objects" + (f": {boxes}" if items else "")
    return ", ".join(f"{n} {p:.3f}" for n, p in list(zip(prediction.names, prediction.probabilities))[:top_k])


def _status(line: str) -> None:
    sys.stderr.write("\r" + line)
    sys.stderr.flush()
