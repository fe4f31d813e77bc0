"""A hostile user's corpus: each class of bad input is generated once and fed to every command that
reads it. Each must end in ONE 'error: ' line with exit 2 and leave no file behind (partial outputs,
scratch folders, or an input clobbered by an output). Commands run in-process (typer's CliRunner)
to keep the corpus fast; the signal tests that need real processes are in test_fileio.py."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from conftest import assert_one_line_error
from edgekit.cli.app import app

BAD_MODELS = {  # file → what its bytes are
    "truncated.onnx": "the first half of a valid model",
    "empty.onnx": "nothing",
    "random.onnx": "random bytes",
    "model.xml": "an ONNX model named like an OpenVINO IR",
}
BAD_META = {  # metadata key → (JSON value written into the model, fragment of the error)
    "std": ("[0.0]", "metadata key 'std' must be positive"),
    "mean": ("[0.5, 0.5]", "metadata key 'mean' must be 1 finite numbers"),
    "color": ('"PURPLE"', "metadata key 'color' must be one of RGB, BGR, GRAY"),
    "resize": ('"zoom"', "metadata key 'resize' must be one of"),
    "input_layout": ('"NWHC"', "metadata key 'input_layout' must be one of"),
    "task": ('"depth"', "metadata key 'task' must be one of"),
    "input_size": ('[0, 32]', "metadata key 'input_size' must be [height, width]"),
    "labels": ("[1, 2]", "metadata key 'labels' must be a list of strings"),
    "model_name": ("[]", "metadata key 'model_name' must be a string"),
    "decoder": ('{"stride": "four"}', "metadata key 'decoder.stride' must be a positive integer"),
}
BAD_NPZ = {"notzip.npz": "is not an .npz archive", "truncated.npz": "cannot read", "foreign.npz": "x.txt"}
BAD_CHECKPOINTS = {
    "garbage.pt": "not a torch tensor file or a damaged one (Unsupported operand 103)",  # torch's reason kept
    "empty.pt": "empty or cut short",
    "pickled.pt": "argparse.Namespace",
    "shapes.pt": "shape [0.weight (3,) (model: (6, 1, 5, 5))]",
    "keys.pt": "missing [0.weight",
    "list.pt": "does not hold a state_dict",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, zoo_onnx):
    """One folder holding a good LeNet-5 and every bad file, built once."""
    import torch

    folder = tmp_path_factory.mktemp("corpus")
    good = zoo_onnx("lenet5").path.read_bytes()
    (folder / "lenet.onnx").write_bytes(good)
    (folder / "truncated.onnx").write_bytes(good[: len(good) // 2])
    (folder / "empty.onnx").write_bytes(b"")
    (folder / "random.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "model.xml").write_bytes(good)
    for key, (value, _) in BAD_META.items():
        model = onnx.load(str(folder / "lenet.onnx"))
        onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, key: value})
        onnx.save(model, str(folder / f"meta-{key}.onnx"))
    np.savez(folder / "ok.npz", input=np.zeros((1, 1, 32, 32), np.float32))
    (folder / "notzip.npz").write_bytes(b"not a zip archive")
    (folder / "truncated.npz").write_bytes((folder / "ok.npz").read_bytes()[:100])
    with zipfile.ZipFile(folder / "foreign.npz", "w") as archive:
        archive.writestr("x.txt", "hello")
    _checkpoints(folder, torch)
    _coco_files(folder)
    os.link(folder / "lenet.onnx", folder / "hardlink.onnx")
    np.savez(folder / "nan.npz", input=np.full((1, 1, 32, 32), np.nan, np.float32))
    identity = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["s"], ["o"])], "g",
        [onnx.helper.make_tensor_value_info("s", onnx.TensorProto.STRING, [1])],
        [onnx.helper.make_tensor_value_info("o", onnx.TensorProto.STRING, [1])])
    onnx.save(onnx.helper.make_model(identity, opset_imports=[onnx.helper.make_opsetid("", 17)]), folder / "text.onnx")
    return folder


def _checkpoints(folder: Path, torch) -> None:
    from edgekit.zoo.lenet import lenet5

    state = lenet5(num_classes=10).state_dict()
    (folder / "garbage.pt").write_bytes(b"garbage")
    (folder / "empty.pt").write_bytes(b"")
    torch.save({"a": argparse.Namespace()}, folder / "pickled.pt")
    torch.save({**state, "0.weight": torch.zeros(3)}, folder / "shapes.pt")
    torch.save({f"x{key}": value for key, value in state.items()}, folder / "keys.pt")
    torch.save([1, 2, 3], folder / "list.pt")
    base = {"format": "edgekit-checkpoint/1", "arch": {"name": "lenet5", "num_classes": 10}, "state_dict": state,
            "meta": json.dumps({"task": "classification", "color": "GRAY", "mean": [0.1], "std": [0.3]})}
    torch.save({**base, "arch": {"name": "lenet5"}}, folder / "ck-arch.pt")
    torch.save({**base, "meta": json.dumps({"color": "GRAY", "std": [0.0], "mean": [0.1]})}, folder / "ck-meta.pt")
    torch.save({**base, "state_dict": {**state, "0.weight": torch.zeros(3)}}, folder / "ck-shapes.pt")
    torch.save({"format": "edgekit-detector/1", "labels": ["a"], "width": 16, "features": 48, "state_dict": state},
               folder / "det-keys.pt")


def _coco_files(folder: Path) -> None:
    from PIL import Image

    Image.new("RGB", (64, 64)).save(folder / "a.png")
    image = {"id": 1, "file_name": "a.png"}
    good = {"image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]}
    variants = {
        "coco-nocat.json": {"images": [image], "annotations": [], "categories": []},
        "coco-idlist.json": {"images": [{**image, "id": [1]}], "annotations": [], "categories": [{"id": 1}]},
        "coco-bbox.json": {"images": [image], "annotations": [{**good, "bbox": ["1", 1, 10, 10]}],
                           "categories": [{"id": 1}]},
        "coco-negative.json": {"images": [image], "annotations": [{**good, "bbox": [1, 1, -10, 10]}],
                               "categories": [{"id": 1}]},
        "coco-crowd.json": {"images": [image], "annotations": [{**good, "iscrowd": "yes"}], "categories": [{"id": 1}]},
        "coco-name.json": {"images": [{**image, "file_name": 7}], "annotations": [], "categories": [{"id": 1}]},
        "coco-catid.json": {"images": [image], "annotations": [], "categories": [{"id": "one"}]},
    }
    for name, data in variants.items():
        (folder / name).write_text(json.dumps(data))
    (folder / "coco-binary.json").write_bytes(b"\xff\xfe\x00garbage")


def invoke(folder: Path, *args: str) -> SimpleNamespace:
    """Run the CLI in-process in ``folder``; returns what a subprocess would (exit code, stderr)."""
    before = _listing(folder)
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(cwd)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert _listing(folder) == before, "files were added, removed or changed"
    return SimpleNamespace(returncode=result.exit_code, stderr=result.stderr, stdout=result.stdout)


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


# --- bad model files, through every command that reads a model -----------------------------------
MODEL_COMMANDS = [["bench", "{}"], ["compare", "{}", "-r", "ort-cpu,openvino"], ["eval", "{}", "-d", "digits"],
                  ["quantize", "{}", "-o", "q.onnx", "-m", "fp16"],
                  ["quantize", "{}", "-o", "q.onnx", "--calib", "digits"]]


@pytest.mark.parametrize("name", BAD_MODELS)
@pytest.mark.parametrize("command", MODEL_COMMANDS, ids=lambda c: " ".join(c[:1] + c[2:4]))
def test_bad_model_files(corpus, name, command):
    assert_one_line_error(invoke(corpus, *[a.format(name) for a in command]), name)


@pytest.mark.parametrize("args,fragment", [
    (["bench", "text.onnx"], "cannot make a random input for 's' of type string"),
    (["compare", "text.onnx", "-r", "ort-cpu,openvino"], "cannot make a random input"),
    (["compare", "lenet.onnx", "-r", "ort-cpu,openvino", "--inputs", "nan.npz"], "NaN or infinite"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_inputs_that_cannot_be_made_or_compared(corpus, args, fragment):
    assert_one_line_error(invoke(corpus, *args), fragment)


# --- malformed metadata values ---------------------------------------------------------------------
META_COMMANDS = [["bench", "{}"], ["eval", "{}", "-d", "digits"],
                 ["quantize", "{}", "-o", "q.onnx", "--calib", "digits"],
                 ["compare", "{}", "-r", "ort-cpu,openvino"]]


@pytest.mark.parametrize("key", BAD_META)
@pytest.mark.parametrize("command", META_COMMANDS, ids=lambda c: c[0])
def test_malformed_metadata(corpus, key, command):
    name = f"meta-{key}.onnx"
    assert_one_line_error(invoke(corpus, *[a.format(name) for a in command]), name, BAD_META[key][1])


# --- bad .npz inputs and calibration files ------------------------------------------------------------
@pytest.mark.parametrize("name", BAD_NPZ)
@pytest.mark.parametrize("command", [["compare", "lenet.onnx", "-r", "ort-cpu,openvino", "--inputs", "{}"],
                                     ["quantize", "lenet.onnx", "-o", "q.onnx", "--calib", "{}"]], ids=lambda c: c[0])
def test_bad_npz(corpus, name, command):
    assert_one_line_error(invoke(corpus, *[a.format(name) for a in command]), name, BAD_NPZ[name])


# --- bad COCO files ----------------------------------------------------------------------------------
COCO = {
    "coco-nocat.json": "no categories", "coco-idlist.json": "images #0 has 'id' [1], expected an integer",
    "coco-bbox.json": "'bbox'", "coco-negative.json": "'bbox'", "coco-crowd.json": "'iscrowd'",
    "coco-name.json": "'file_name' 7", "coco-catid.json": "categories #0 has 'id'", "coco-binary.json": "UTF-8",
}


@pytest.mark.parametrize("name", COCO)
@pytest.mark.parametrize("command", [["eval", "lenet.onnx", "-d", "{}"],
                                     ["train", "detector", "-d", "{}", "-o", "runs"],
                                     ["quantize", "lenet.onnx", "-o", "q.onnx", "--calib", "{}"]], ids=lambda c: c[0])
def test_bad_coco(corpus, name, command):
    assert_one_line_error(invoke(corpus, *[a.format(name) for a in command]), name, COCO[name])


# --- bad checkpoints -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BAD_CHECKPOINTS)
@pytest.mark.parametrize("command", [["export", "lenet5", "--weights", "{}", "-o", "x.onnx"],
                                     ["train", "transfer", "-d", "digits", "--transfer-from", "lenet5",
                                      "--weights", "{}", "-o", "runs"],
                                     ["bench", "lenet5", "--weights", "{}"]], ids=lambda c: c[0])
def test_bad_weights(corpus, name, command):
    result = invoke(corpus, *[a.format(name) for a in command])
    assert_one_line_error(result, name, BAD_CHECKPOINTS[name])
    assert "weights_only=False" not in result.stderr and "weights_only` set to `False`" not in result.stderr


@pytest.mark.parametrize("name,fragment", [
    ("ck-arch.pt", "malformed entry"), ("ck-meta.pt", "metadata key 'std' must be positive"),
    ("ck-shapes.pt", "shape [0.weight (3,)"), ("garbage.pt", "not a torch tensor file"),
    ("det-keys.pt", "not an edgekit training checkpoint"),
])
def test_bad_training_checkpoints(corpus, name, fragment):
    assert_one_line_error(invoke(corpus, "train", "transfer", "-d", "digits", "--transfer-from", name, "-o", "runs"),
                          fragment)


def test_detector_checkpoint_loader_is_safe_and_strict(corpus):
    from edgekit.errors import BadInputError
    from edgekit.train.detector import load_detector

    with pytest.raises(BadInputError, match="do not fit this model: missing"):
        load_detector(corpus / "det-keys.pt")
    with pytest.raises(BadInputError, match="argparse.Namespace") as caught:
        load_detector(corpus / "pickled.pt")
    assert "weights_only" not in str(caught.value)


# --- bad numbers -------------------------------------------------------------------------------------
NUMBERS = [
    (["bench", "lenet.onnx", "--duration", "nan"], "--duration"),
    (["bench", "lenet.onnx", "--duration", "-1"], "--duration"),
    (["bench", "lenet.onnx", "--threads", "100000"], "--threads"),
    (["bench", "lenet.onnx", "--threads", "0"], "--threads"),
    (["bench", "lenet.onnx", "--runs", str(10**12)], "--runs"), (["bench", "lenet.onnx", "--warmup", "-1"], "--warmup"),
    (["bench", "lenet.onnx", "--batch", "0"], "--batch"), (["bench", "lenet.onnx", "-O", "threads=100000"], "threads"),
    (["bench", "lenet.onnx", "-O", "threads=nan"], "threads"), (["bench", "lenet.onnx", "--seed", "-1"], "--seed"),
    (["bench", "lenet5", "--input-size", "100000"], "input size"),
    (["export", "lenet5", "--input-size", "100000"], "input size"),
    (["export", "lenet5", "--atol", "nan"], "--atol"), (["export", "lenet5", "--rtol", "inf"], "--rtol"),
    (["export", "lenet5", "--batch", "100000"], "--batch"),
    (["compare", "lenet.onnx", "-r", "ort-cpu,openvino", "--atol", "nan"], "--atol"),
    (["compare", "lenet.onnx", "-r", "ort-cpu,openvino", "--min-cosine", "nan"], "--min-cosine"),
    (["compare", "lenet.onnx", "-r", "ort-cpu,openvino", "-O", "openvino.threads=inf"], "threads"),
    (["eval", "lenet.onnx", "-d", "digits", "-b", "0"], "--batch-size"),
    (["quantize", "lenet.onnx", "-o", "q.onnx", "--calib", "digits", "--max-drop", "nan"], "--max-drop"),
    (["quantize", "lenet.onnx", "-o", "q.onnx", "--calib", "digits", "--calib-size", "0"], "--calib-size"),
    (["quantize", "lenet.onnx", "-o", "q.onnx", "-m", "fp16", "--report", "--duration", "inf"], "--duration"),
    (["quantize", "lenet.onnx", "-o", "q.onnx", "-m", "fp16", "--report", "--threads", "-2"], "--threads"),
    (["train", "lenet5", "-d", "digits", "--epochs", "0"], "--epochs"),
    (["train", "lenet5", "-d", "digits", "--lr", "nan"], "--lr"),
    (["train", "lenet5", "-d", "digits", "-b", "-5"], "--batch-size"),
    (["train", "lenet5", "-d", "digits", "--per-class", "0"], "--per-class"),
    (["train", "lenet5", "-d", "digits", "-O", "weight_decay=abc"], "weight_decay"),
    (["train", "lenet5", "-d", "digits", "-O", "augment=maybe"], "augment"),
    (["train", "detector", "-d", "shapes", "-O", "width=-1"], "width"),
    (["train", "detector", "-d", "shapes", "-O", "train_size=0"], "train_size"),
    (["train", "detector", "-d", "shapes", "-O", "time_limit=nan"], "time_limit"),
]


@pytest.mark.parametrize("args,fragment", NUMBERS, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_numbers(corpus, args, fragment):
    assert_one_line_error(invoke(corpus, *args), fragment)


# --- outputs: unwritable, the input itself, special files -------------------------------------------
OUTPUTS = [
    (["bench", "lenet.onnx", "--json", "/sys/out.json"], "cannot write to folder /sys"),
    (["export", "lenet5", "-o", "/sys/x.onnx"], "cannot write to folder /sys"),
    (["quantize", "lenet.onnx", "-o", "/sys/q.onnx", "--calib", "digits"], "cannot write to folder /sys"),
    (["train", "lenet5", "-d", "digits", "-o", "/sys/run"], "/sys/run"),
    (["train", "lenet5", "-d", "digits", "--json", "/sys/t.json"], "cannot write to folder /sys"),
    (["eval", "lenet.onnx", "-d", "digits", "--json", "/sys/e.json"], "cannot write to folder /sys"),
    (["models", "--json", "/dev/full"], "No space left on device"),
    (["runtimes", "--json", "/dev/full"], "No space left on device"),
    (["quantize", "lenet.onnx", "-o", "/dev/null", "--calib", "digits"], "device or FIFO"),
    (["bench", "lenet.onnx", "--json", "lenet.onnx"], "is the input file"),
    (["bench", "lenet.onnx", "--json", "hardlink.onnx"], "is the input file"),
    (["compare", "lenet.onnx", "-r", "ort-cpu,openvino", "--json", "lenet.onnx"], "is the input file"),
    (["compare", "lenet.onnx", "-r", "ort-cpu,openvino", "--inputs", "ok.npz",
      "--json", "ok.npz"], "is the input file"),
    (["eval", "lenet.onnx", "-d", "digits", "--json", "./lenet.onnx"], "is the input file"),
    (["inspect", "lenet.onnx", "--json", "lenet.onnx"], "is the input file"),
    (["quantize", "lenet.onnx", "-o", "lenet.onnx", "--calib", "digits"], "--overwrite-input"),
    (["quantize", "lenet.onnx", "-o", "hardlink.onnx", "-m", "fp16"], "--overwrite-input"),
    (["quantize", "lenet.onnx", "-o", "q.onnx", "--calib", "ok.npz", "--json", "ok.npz"], "is the input file"),
    (["export", "lenet5", "--weights", "shapes.pt", "-o", "shapes.pt"], "output must be an .onnx file"),
    (["train", "transfer", "-d", "digits", "--transfer-from", "ck-shapes.pt", "--json", "ck-shapes.pt"],
     "is the input file"),
]


@pytest.mark.parametrize("args,fragment", OUTPUTS, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_outputs(corpus, args, fragment):
    assert_one_line_error(invoke(corpus, *args), fragment)
    assert Path("/dev/full").is_char_device() and Path("/dev/null").is_char_device()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels in a few bytes (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def image_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("folders")
    contents = {"bomb": _png_header(100_000, 100_000), "junk": b"not an image", "one": None, "empty": None}
    for name, data in contents.items():
        for label in ("a",) if name == "one" else ("a", "b"):
            (root / name / label).mkdir(parents=True)
            for i in range(4 if name != "empty" or label == "a" else 0):
                (root / name / label / f"{i}.png").write_bytes(data if data is not None else _png_header(8, 8))
    coco = {"images": [{"id": 1, "file_name": "bomb/a/0.png"}], "annotations": [], "categories": [{"id": 1}]}
    (root / "coco-bomb.json").write_text(json.dumps(coco))
    return root


@pytest.mark.parametrize("data,fragment", [
    ("bomb", "(a decompression bomb?)"), ("junk", "cannot read image"), ("one", "only one class folder"),
    ("empty", "has no images"), ("coco-bomb.json", "(a decompression bomb?)"),
])
@pytest.mark.parametrize("command", [["train", "lenet5", "-d", "{}", "-o", "runs", "--epochs", "1", "-q"],
                                     ["eval", "model.onnx", "-d", "{}"]], ids=lambda c: c[0])
def test_bad_image_folders(image_folders, corpus, data, fragment, command):
    if command[0] == "eval" and not (image_folders / "model.onnx").exists():
        shutil.copy(corpus / "lenet.onnx", image_folders / "model.onnx")
    if command[0] == "train" and data.endswith(".json"):
        command = ["train", "detector", "-d", "{}", "-o", "runs"]
    assert_one_line_error(invoke(image_folders, *[a.format(data) for a in command]), fragment)


def test_flat_colour_training_images(tmp_path):
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / "flat" / name).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (32, 32), (90, 90, 90)).save(tmp_path / "flat" / name / f"{i}.png")
    result = invoke(tmp_path, "train", "lenet5", "-d", "flat", "-o", "runs", "--epochs", "1", "-q")
    assert_one_line_error(result, "one flat grey level")


def test_quantize_can_replace_its_input_when_asked(corpus, tmp_path):
    shutil.copy(corpus / "lenet.onnx", tmp_path / "m.onnx")
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(app, ["quantize", "m.onnx", "-o", "m.onnx", "-m", "fp16", "--overwrite-input"])
    finally:
        os.chdir(Path(__file__).parent)
    assert result.exit_code == 0, result.stderr
    from edgekit.meta import read_meta

    assert read_meta(tmp_path / "m.onnx").precision == "fp16" and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
