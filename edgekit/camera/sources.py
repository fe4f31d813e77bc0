"""Where frames come from: image files and folders, video files, cameras (OpenCV ``VideoCapture``).

A live source (a camera, or a video played at its own frame rate) is read by a capture thread
that keeps only the newest frame: a consumer slower than the camera gets the latest frame and
the stale ones are dropped and counted, so latency never grows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from edgekit.frames import IMAGE_SUFFIXES, read_image
from edgekit.stream import Frame
from edgekit.errors import BadInputError

CAMERA_EXTRA = "pip install 'edgekit[camera]'"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


def require_cv2(what: str):
    """The cv2 module, or a one-line error naming the extra that installs it. (OpenCV's own messages are
    the process's business: the CLI silences them, ``cli.app.quiet_libraries``.)"""
    try:
        import cv2
    except ImportError:
        raise BadInputError(f"{what} needs OpenCV: {CAMERA_EXTRA}") from None
    return cv2


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def image_paths(sources: Sequence[str | Path]) -> list[Path]:
    """Image files named in ``sources``, folders expanded with their sub-folders (the class-folder layout
    ``eval`` reads), sorted, images only."""
    paths: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise BadInputError(f"folder {path} has no images ({', '.join(IMAGE_SUFFIXES)})")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise BadInputError(f"no such image, folder or video: {path}")
    return paths


class ImageFiles:
    """Frames from image files, read in order (RGB)."""

    color = "RGB"
    live = False

    def __init__(self, paths: Sequence[Path], on_skip=None) -> None:
        self.paths = list(paths)
        self.dropped = 0
        self.skipped: list[str] = []     # one line per unreadable file: reported, the others go on
        self.on_skip = on_skip

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for path in self.paths:
            try:
                image = read_image(path)
            except BadInputError as exc:
                self.skipped.append(str(exc))
                if self.on_skip is not None:
                    self.on_skip(str(exc))
                continue
            yield Frame(image, index, time.perf_counter_ns(), str(path))
            index += 1

    def close(self) -> None:
        pass


class VideoFile:
    """Every frame of a video file, in order (BGR, as OpenCV decodes), as fast as they are used.

    With ``realtime`` the file plays at its own frame rate like a camera: a capture thread keeps
    the newest frame and frames the consumer is too slow for are dropped.
    """

    color = "BGR"

    def __init__(self, path: str | Path, realtime: bool = False) -> None:
        cv2 = require_cv2("reading a video")
        self.path = Path(path)
        if not self.path.is_file():
            raise BadInputError(f"video file not found: {self.path}")
        self._capture = cv2.VideoCapture(str(self.path))
        ok, self._first = self._capture.read() if self._capture.isOpened() else (False, None)
        if not ok or self._first is None:
            self._capture.release()
            raise BadInputError(f"cannot read video {self.path} (not a video OpenCV can decode)")
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0) or 30.0
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.size = (self._first.shape[1], self._first.shape[0])  # (width, height)
        self.live = realtime
        self._latest = LatestFrames(self._paced_reads(), str(self.path)) if realtime else None

    @property
    def dropped(self) -> int:
        return self._latest.dropped if self._latest else 0

    def _reads(self) -> Iterator[Any]:
        first, self._first = self._first, None
        return capture_reads(self._capture, first)

    def _paced_reads(self) -> Iterator[Any]:
        period = 1.0 / self.fps
        start = time.perf_counter()
        for number, image in enumerate(self._reads()):
            delay = start + number * period - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            yield image

    def __iter__(self) -> Iterator[Frame]:
        if self._latest is not None:
            yield from self._latest
            return
        for index, image in enumerate(self._reads()):
            yield Frame(image, index, time.perf_counter_ns(), str(self.path))

    def close(self) -> None:
        if self._latest is not None:
            self._latest.close()
        self._capture.release()


class Camera:
    """Live frames from camera ``index`` (BGR); only the newest frame is ever handed out."""

    color = "BGR"
    live = True

    def __init__(self, index: int) -> None:
        cv2 = require_cv2("a camera")
        self._capture = cv2.VideoCapture(index)
        ok, first = self._capture.read() if self._capture.isOpened() else (False, None)
        if not ok or first is None:
            self._capture.release()
            raise BadInputError(f"cannot open camera {index} (no such device, or it is busy)")
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0) or 30.0
        self.size = (first.shape[1], first.shape[0])
        self._latest = LatestFrames(self._reads(first), f"camera {index}")

    @property
    def dropped(self) -> int:
        return self._latest.dropped

    def _reads(self, first) -> Iterator[Any]:
        return capture_reads(self._capture, first)

    def __iter__(self) -> Iterator[Frame]:
        yield from self._latest

    def close(self) -> None:
        self._latest.close()
        self._capture.release()


class LatestFrames:
    """A capture thread drains ``reads`` as fast as the source delivers; iterating yields the
    newest frame not yet handed out (waiting for one if needed). Frames replaced before anyone
    took them are counted in ``dropped``."""

    def __init__(self, reads: Iterator[Any], name: str = "") -> None:
        self.name = name
        self.dropped = 0
        self._reads = reads
        self._frame: Frame | None = None
        self._done = False
        self._closed = threading.Event()
        self._error: BaseException | None = None
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._capture, name="edgekit-capture", daemon=True)

    def _capture(self) -> None:
        try:
            for index, image in enumerate(self._reads):
                frame = Frame(image, index, time.perf_counter_ns(), self.name)
                with self._ready:
                    if self._frame is not None:
                        self.dropped += 1
                    self._frame = frame
                    self._ready.notify()
                if self._closed.is_set():
                    break
        except BaseException as error:  # a capture failure ends the stream; raised to the consumer
            self._error = error
        with self._ready:
            self._done = True
            self._ready.notify()

    def __iter__(self) -> Iterator[Frame]:
        if not self._thread.is_alive() and not self._done:
            self._thread.start()  # on first use, so frames are not dropped while a model loads
        while True:
            with self._ready:
                while self._frame is None and not self._done:
                    self._ready.wait(timeout=0.5)
                frame, self._frame = self._frame, None
            if frame is None:
                if self._error is not None:
                    raise self._error
                return
            yield frame

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)


def capture_reads(capture, first: Any = None) -> Iterator[Any]:
    """``first`` (a frame already read, if any), then every frame ``capture`` reads until it ends."""
    if first is not None:
        yield first
    while True:
        ok, image = capture.read()
        if not ok:
            return
        yield image
