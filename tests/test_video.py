"""Frames from videos and live sources: pipelined prediction equals per-call prediction, a slow
consumer gets the newest frame (stale ones dropped, latency bounded), drawing and atomic saving."""

import threading
import time

import numpy as np
import pytest

from edgekit import Predictor
from edgekit.stream import Frame
from edgekit.camera.sources import LatestFrames, VideoFile
from edgekit.errors import BadInputError

cv2 = pytest.importorskip("cv2")


def write_video(path, frames=24, size=(64, 48), fps=30):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for index in range(frames):
        image = np.full((size[1], size[0], 3), 60, np.uint8)
        cv2.circle(image, (5 + 2 * index % size[0], size[1] // 2), 8, (0, 0, 255), -1)
        writer.write(image)
    writer.release()
    return path


def test_stream_is_pipelined_and_matches_per_frame_calls(zoo_onnx):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(12)]
    with Predictor(zoo_onnx("lenet5").path, color="BGR") as predict:
        expected = [predict(frame).probabilities for frame in frames]
        reader_threads = set()

        def source():
            for frame in frames:
                reader_threads.add(threading.current_thread().name)
                yield frame

        results = list(predict.stream(source()))
    assert [r.prediction.probabilities for r in results] == expected
    assert [r.frame.index for r in results] == list(range(12))
    assert reader_threads == {"edgekit-prepare"}  # frames were read and pre-processed off the caller's thread
    assert all(r.timing.images == 1 and r.latency_ns >= r.timing.inference_ns for r in results)


def test_stream_overlaps_capture_of_the_next_frame_with_inference(zoo_onnx):
    from edgekit.runtimes.onnxruntime import OrtCpuRuntime

    intervals = {"capture": [], "inference": []}

    class SlowCamera(OrtCpuRuntime):  # a real session whose runs take as long as a capture
        def _run(self, feeds):
            start = time.perf_counter()
            time.sleep(0.02)
            outputs = super()._run(feeds)
            intervals["inference"].append((start, time.perf_counter()))
            return outputs

    def capture():
        for _ in range(6):
            start = time.perf_counter()
            time.sleep(0.02)  # waiting for the camera, GIL released
            intervals["capture"].append((start, time.perf_counter()))
            yield np.zeros((32, 32), np.uint8)

    predict = Predictor(zoo_onnx("lenet5").path)
    predict.runtime = SlowCamera(predict.model_path)
    with predict:
        assert len(list(predict.stream(capture()))) == 6
    inference, captured = intervals["inference"], intervals["capture"]
    overlapping = [n for n in range(5) if captured[n + 1][0] < inference[n][1] and inference[n][0] < captured[n + 1][1]]
    assert len(overlapping) >= 3, intervals  # frame n+1 was being captured while frame n was inferred


def test_stream_raises_a_bad_frame_in_the_callers_thread(zoo_onnx):
    frames = [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.float64)]
    with Predictor(zoo_onnx("lenet5").path) as predict:
        stream = predict.stream(frames)
        next(stream)
        with pytest.raises(BadInputError, match="dtype float64"):
            next(stream)


def test_latest_frames_drops_stale_frames_for_a_slow_consumer():
    produced = [0]

    def reads():  # a 200 FPS "camera"
        for index in range(100):
            time.sleep(0.005)
            produced[0] = index + 1
            yield np.full((2, 2), index, np.uint8)

    latest = LatestFrames(reads(), "fake")
    seen, behind = [], []
    for frame in latest:
        behind.append(produced[0] - 1 - frame.index)  # frames captured after this one, at hand-out
        seen.append(int(frame.image[0, 0]))
        time.sleep(0.03)  # a consumer 6x slower than the camera
    latest.close()
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert seen[-1] == 99 and len(seen) < 60 and latest.dropped == 100 - len(seen)
    # the newest frame each time (one more may be in the capture thread's hands; the median
    # keeps a descheduled consumer on a loaded machine from failing the test)
    assert sorted(behind)[len(behind) // 2] <= 1


def test_video_file_frames_in_order_and_realtime_mode(tmp_path):
    path = write_video(tmp_path / "v.mp4")
    video = VideoFile(path)
    frames = list(video)
    video.close()
    assert len(frames) == 24 and [f.index for f in frames] == list(range(24))
    assert frames[0].image.shape == (48, 64, 3) and video.size == (64, 48) and video.fps == pytest.approx(30)
    live = VideoFile(path, realtime=True)
    start = time.perf_counter()
    count = sum(1 for _ in live)
    live.close()
    assert 0 < count <= 24 and count + live.dropped == 24
    assert time.perf_counter() - start > 0.6  # played at ~30 FPS, not as fast as it decodes


def test_unreadable_video_and_camera_are_one_line_errors(tmp_path):
    (tmp_path / "bad.mp4").write_text("not a video")
    with pytest.raises(BadInputError, match="cannot read video"):
        VideoFile(tmp_path / "bad.mp4")
    with pytest.raises(BadInputError, match="video file not found"):
        VideoFile(tmp_path / "missing.mp4")
    from edgekit.camera.sources import Camera

    with pytest.raises(BadInputError, match="cannot open camera 97"):
        Camera(97)


def test_annotate_draws_boxes_and_labels():
    from edgekit.camera.draw import annotate
    from edgekit.tasks.classification import ClassPrediction
    from edgekit.tasks.detection import Detection

    frame = np.zeros((120, 160, 3), np.uint8)
    detection = Detection(np.array([[20, 30, 80, 90]], np.float32), np.array([0.9], np.float32),
                          np.array([1]), ("square",))
    drawn = annotate(frame, detection)
    assert drawn.shape == frame.shape and not frame.any()  # the frame itself is untouched
    assert drawn[60, 20].any() and drawn[60, 80].any() and not drawn[60, 50].any()  # box edges, empty inside
    labelled = annotate(frame, ClassPrediction((3,), (0.8,), ("cat",)), color="RGB")
    assert labelled[:30].any() and not labelled[60:].any()
    gray = annotate(np.zeros((50, 50), np.uint8), detection)
    assert gray.shape == (50, 50, 3)


def test_video_writer_keeps_nothing_on_error(tmp_path):
    from edgekit.camera.draw import video_writer

    with pytest.raises(RuntimeError), video_writer(tmp_path / "out.mp4", 30, (32, 32)) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with video_writer(tmp_path / "out.mp4", 30, (32, 32)) as writer:
        for _ in range(3):
            writer.write(np.zeros((32, 32, 3), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    capture = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()


def test_frame_records_are_frozen():
    frame = Frame(np.zeros((2, 2), np.uint8), 0, 0)
    with pytest.raises(AttributeError):
        frame.index = 1
