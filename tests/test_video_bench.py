"""`edgekit bench MODEL --images DIR | --video FILE`: the whole pipeline on real frames, per stage,
beside the inference-only figures (JSON carries both)."""

import json

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli, run_cli_subprocess

cv2 = pytest.importorskip("cv2")
from test_video import write_video  # noqa: E402


def test_bench_images_and_video_time_each_stage(zoo_onnx, tmp_path):
    model = str(zoo_onnx("lenet5").path)
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        cv2.imwrite(str(folder / f"{index}.png"),
                    np.random.default_rng(index).integers(0, 256, (60, 80, 3), dtype=np.uint8))
    result = run_cli("bench", model, "--images", str(folder), "--runs", "12", "--json", str(tmp_path / "b.json"))
    assert result.returncode == 0, result.stderr
    assert "the whole pipeline" in result.stdout and "end to end ÷ inference only" in result.stdout
    data = json.loads((tmp_path / "b.json").read_text())
    pipeline = data["pipeline"]
    assert pipeline["frames"] == 12 and pipeline["frame_shape"] == [60, 80, 3]
    for stage in ("preprocess", "inference", "postprocess", "end_to_end"):
        assert pipeline[stage]["count"] == 12 and 0 < pipeline[stage]["p50_ms"] <= pipeline[stage]["p99_ms"]
    assert pipeline["end_to_end"]["p50_ms"] >= pipeline["inference"]["p50_ms"]
    assert pipeline["pipelined_fps"] > 0 and pipeline["sequential_fps"] > 0
    assert data["latency"]["count"] == 12  # the inference-only record is still there
    video = write_video(tmp_path / "v.mp4", frames=5)
    result = run_cli("bench", model, "--video", str(video), "--runs", "8")
    assert result.returncode == 0 and "8 calls on 48x64x3 frames" in result.stdout, result.stderr


def test_bench_frames_bad_input(zoo_onnx, tmp_path):
    model = str(zoo_onnx("lenet5").path)
    (tmp_path / "bad.mp4").write_text("nope")
    # a process of its own: the CLI silences OpenCV/FFmpeg before they load (tests/cli_runner.py)
    assert_one_line_error(run_cli_subprocess("bench", model, "--video", str(tmp_path / "bad.mp4")), "cannot read video")
    assert_one_line_error(run_cli("bench", model, "--images", str(tmp_path / "none")), "no such image")
    assert_one_line_error(run_cli("bench", model, "--images", str(tmp_path), "--video", str(tmp_path / "bad.mp4")),
                          "not both")
