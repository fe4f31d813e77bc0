"""`edgekit predict` on image files, folders and a video: text and JSON lines, annotated output
written atomically, one-line errors, and no torch/onnx (and no OpenCV for images) needed."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import assert_one_line_error, block_imports, run_cli

cv2 = pytest.importorskip("cv2")
from test_video import write_video  # noqa: E402


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg", "c.png"):
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (48, 40, 3), dtype=np.uint8))
    return folder


def test_predict_images_text_json_and_save(zoo_onnx, images, tmp_path):
    model = str(zoo_onnx("lenet5").path)
    text = run_cli("predict", model, str(images), "--top-k", "2")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == [str(images / n) for n in ("a.png", "b.jpg", "c.png")]
    assert len(lines[0].split(":")[1].split(",")) == 2  # top-2
    assert "3 images:" in lines[3] and "ms preprocess" in lines[3] and "ms postprocess per image" in lines[3]
    listed = run_cli("predict", model, str(images / "a.png"), str(images / "c.png"),
                     "--json", "--save", str(tmp_path / "out"))
    assert listed.returncode == 0, listed.stderr
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["source"] for r in records] == [str(images / "a.png"), str(images / "c.png")]
    assert (len(records[0]["classes"]) == 5
            and set(records[0]["timing_ms"]) >= {"preprocess", "inference", "postprocess"})
    assert "ms inference" in listed.stderr
    saved = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert saved == ["a.png", "c.png"]
    assert cv2.imread(str(tmp_path / "out" / "a.png")).shape == (48, 40, 3)


def test_predict_video_json_and_annotated_video(zoo_onnx, tmp_path):
    video = write_video(tmp_path / "clip.mp4", frames=15)
    result = run_cli("predict", str(zoo_onnx("lenet5").path), str(video), "--json", "--save", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(15))
    assert "15 frames in" in result.stderr and "FPS" in result.stderr and "latency p50" in result.stderr
    capture = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 15
    capture.release()
    limited = run_cli("predict", str(zoo_onnx("lenet5").path), str(video), "--max-frames", "4", "-r", "ort-cpu")
    assert limited.returncode == 0 and "4 frames in" in limited.stdout, limited.stderr


@pytest.mark.openvino
def test_predict_on_openvino(zoo_onnx, images):
    result = run_cli("predict", str(zoo_onnx("lenet5").path), str(images / "a.png"), "-r", "openvino", "--threads", "1")
    assert result.returncode == 0 and "(openvino)" in result.stdout, result.stderr


@pytest.mark.slow
def test_bad_inputs_are_one_line_and_leave_nothing(zoo_onnx, images, tmp_path):
    model = str(zoo_onnx("lenet5").path)
    out = tmp_path / "out"
    (tmp_path / "bad.png").write_text("not an image")
    (tmp_path / "bad.mp4").write_text("not a video")
    cases = [
        (["predict", model, str(tmp_path / "bad.png"), "--save", str(out)], "cannot read image"),
        (["predict", model, str(tmp_path / "bad.mp4"), "--save", str(out)], "cannot read video"),
        (["predict", model, "--camera", "97", "--save", str(out)], "cannot open camera 97"),
        (["predict", model], "give image files"),
        (["predict", model, str(images), "--camera", "0"], "not both"),
        (["predict", model, str(tmp_path / "nothing.png")], "no such image"),
        (["predict", model, str(images), "--top-k", "0"], "--top-k"),
        (["predict", model, str(images), "--realtime"], "does not apply to images"),
        (["predict", model, str(images), "-r", "tensort"], "did you mean"),
        (["predict", model, "--camera", "-1"], "--camera must be a camera index from 0"),   # OpenCV segfaulted
        (["predict", model, "--camera", "99999999999"], "--camera must be a camera index"),
        (["predict", model, str(images / "a.png"), "--save", "/proc/edgekit-out"], "--save folder"),
    ]
    for args, fragment in cases:
        assert_one_line_error(run_cli(*args), fragment)
        assert not out.exists(), args   # not even the empty --save folder this run made
    out.mkdir()   # a folder the user made stays
    assert_one_line_error(run_cli("predict", model, str(tmp_path / "bad.mp4"), "--save", str(out)), "cannot read video")
    assert out.is_dir() and not list(out.iterdir())
    before = {path: path.read_bytes() for path in images.iterdir()}
    for save in (images, images / "a.png"):   # the input folder, or a folder an input image is in
        assert_one_line_error(run_cli("predict", model, str(save), "--save", str(images)), "would overwrite them")
    assert {path: path.read_bytes() for path in images.iterdir()} == before


def test_model_without_metadata_is_one_line(tmp_path, images):
    onnx = pytest.importorskip("onnx")
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", 1, [1, 3, 8, 8])],
                                   [onnx.helper.make_tensor_value_info("y", 1, [1, 3, 8, 8])])
    onnx.save(onnx.helper.make_model(graph), str(tmp_path / "plain.onnx"))
    assert_one_line_error(run_cli("predict", str(tmp_path / "plain.onnx"), str(images)), "no edgekit task metadata")


def test_predictor_and_predict_cli_without_torch_onnx(zoo_onnx, images, tmp_path):
    path = zoo_onnx("lenet5").path
    script = block_imports("torch", "torchvision", "onnx") + f"""
import numpy as np
from edgekit import Predictor
with Predictor({str(path)!r}, color="BGR") as predict:
    one = predict(np.zeros((32, 32, 3), np.uint8))
    many = predict({str(images)!r} + "/a.png")
    streamed = list(predict.stream([np.zeros((32, 32, 3), np.uint8)] * 3))
assert 0 <= one.label < 10 and len(streamed) == 3 and predict.last_timing.images == 1
assert not [m for m in ('torch', 'onnx', 'torchvision') if m in sys.modules]
print('ok')
"""
    result = subprocess.run([sys.executable, "-c", "import sys\n" + script], capture_output=True, text=True)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr
    cli = run_cli("predict", str(path), str(images), prelude=block_imports("torch", "torchvision", "onnx"))
    assert cli.returncode == 0 and "3 images:" in cli.stdout, cli.stderr
    video = write_video(tmp_path / "v.mp4", frames=4)
    cli = run_cli("predict", str(path), str(video), "--save", str(tmp_path / "out"),
                  prelude=block_imports("torch", "torchvision", "onnx"))
    assert cli.returncode == 0 and "4 frames in" in cli.stdout and (tmp_path / "out" / "v.mp4").is_file(), cli.stderr


def test_images_work_without_opencv_and_video_names_the_extra(zoo_onnx, images, tmp_path):
    model = str(zoo_onnx("lenet5").path)
    no_cv2 = block_imports("cv2", "torch", "onnx")
    result = run_cli("predict", model, str(images / "a.png"), prelude=no_cv2)
    assert result.returncode == 0 and "1 images:" in result.stdout, result.stderr
    video = write_video(tmp_path / "v.mp4", frames=2)
    assert_one_line_error(run_cli("predict", model, str(video), prelude=no_cv2), "pip install 'edgekit[camera]'")
    assert_one_line_error(run_cli("predict", model, "--camera", "0", prelude=no_cv2), "pip install 'edgekit[camera]'")
    assert_one_line_error(run_cli("predict", model, str(images), "--save", str(tmp_path / "o"), prelude=no_cv2),
                          "pip install 'edgekit[camera]'")


def test_ctrl_c_stops_a_live_loop_cleanly_with_a_summary(zoo_onnx, tmp_path):
    import os
    import signal
    import time

    from conftest import REPO

    video = write_video(tmp_path / "long.mp4", frames=300)  # 10 s at 30 FPS, played in real time
    code = "import sys\nfrom edgekit.cli.app import main\nsys.argv = ['edgekit', *sys.argv[1:]]\nmain()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "predict", str(zoo_onnx("lenet5").path), str(video), "--realtime", "--json",
         "--save", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    first = process.stdout.readline()  # the loop is running
    assert json.loads(first)["frame"] == 0
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    frames = 1 + len(rest.splitlines())
    assert "(stopped by Ctrl-C)" in stderr and f"{frames} frames in" in stderr and "Traceback" not in stderr
    assert frames < 300
    saved = list((tmp_path / "out").iterdir())
    assert [p.name for p in saved] == ["long.mp4"]  # complete, under its final name; no temporary left
    capture = cv2.VideoCapture(str(saved[0]))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    capture.release()


@pytest.mark.slow
def test_predict_on_a_quantized_model(zoo_onnx, images, tmp_path):
    pytest.importorskip("onnxruntime.quantization")
    quantized = tmp_path / "lenet5-int8.onnx"
    made = run_cli("quantize", str(zoo_onnx("lenet5").path), "--mode", "int8-dynamic", "-o", str(quantized))
    assert made.returncode == 0, made.stderr
    result = run_cli("predict", str(quantized), str(images), "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 3 and all(len(r["classes"]) == 5 for r in records)
    for record in records:
        probabilities = [c["probability"] for c in record["classes"]]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0001
