"""A user module defined in this file goes through export → compare → quantize → bench → Predictor,
with its inputs from a data loader (also defined here), saved inputs and golden outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

HERE = Path(__file__).resolve()
FACTORY = f"{HERE}:make_net"
LOADER = f"{HERE}:calibration_batches"


def make_net():
    """The user's model: a small classifier with an input named 'image' (not edgekit's 'input')."""
    import torch
    from torch import nn

    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


def calibration_batches():
    """The user's data loader: dicts of input name → array."""
    rng = np.random.default_rng(1)
    for _ in range(4):
        yield {"image": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)}


@pytest.mark.slow
def test_user_module_through_every_command(tmp_path):
    model = tmp_path / "net.onnx"
    exported = run_cli("export", FACTORY, "--input", "image:1x3x32x32", "-o", str(model),
                       "--meta", "task=classification", "--meta", "labels=cat,dog,bird",
                       "--meta", "mean=0.5,0.5,0.5", "--meta", "std=0.25,0.25,0.25")
    assert exported.returncode == 0, exported.stderr
    assert "verified on ONNX Runtime vs torch" in exported.stdout and ": ok" in exported.stdout

    golden, saved = tmp_path / "golden.npz", tmp_path / "inputs.npz"
    compared = run_cli("compare", FACTORY, "--input", "image:1x3x32x32", "-r", "ort-cpu,openvino",
                       "--data-loader", LOADER, "--save-inputs", str(saved), "--save-outputs", str(golden),
                       "--json", str(tmp_path / "c.json"))
    assert compared.returncode == 0, compared.stderr
    record = json.loads((tmp_path / "c.json").read_text())
    assert record["reference"] == "torch" and record["batches"] == 4 and record["passed"]
    with np.load(saved) as arrays:
        assert sorted(arrays.files) == [f"{i}:image" for i in range(4)]

    # a later check of a device against the golden outputs: passes, then fails on tampered outputs
    again = run_cli("compare", str(model), "-r", "openvino", "--load-inputs", str(saved), "--load-outputs", str(golden))
    assert again.returncode == 0, again.stderr
    with np.load(golden) as arrays:
        tampered = {key: arrays[key] + (0.5 if key.startswith("2:") else 0.0) for key in arrays.files}
    np.savez(tmp_path / "tampered.npz", **tampered)
    failed = run_cli("compare", str(model), "-r", "openvino", "--load-inputs", str(saved),
                     "--load-outputs", str(tmp_path / "tampered.npz"))
    assert failed.returncode == 1 and "compare failed against saved outputs tampered.npz" in failed.stderr

    int8 = tmp_path / "net.int8.onnx"
    quantized = run_cli("quantize", str(model), "-o", str(int8), "--data-loader", LOADER)
    assert quantized.returncode == 0, quantized.stderr
    assert "on 4 samples" in quantized.stdout

    benched = run_cli("bench", str(int8), "--warmup", "1", "--runs", "5", "--data-loader", LOADER,
                      "--json", str(tmp_path / "b.json"))
    assert benched.returncode == 0, benched.stderr
    bench = json.loads((tmp_path / "b.json").read_text())
    assert bench["inputs"] == {"image": [1, 3, 32, 32]} and bench["latency"]["count"] == 5

    from edgekit import Predictor

    images = [np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8) for i in range(3)]
    with Predictor(model) as predict:  # the metadata set at export drives pre- and post-processing
        predictions = predict(images)
    import torch

    net = make_net().eval()
    for image, prediction in zip(images, predictions):
        x = torch.from_numpy(((image / 255.0 - 0.5) / 0.25).astype(np.float32).transpose(2, 0, 1)[None])
        with torch.no_grad():
            expected = int(net(x).argmax())
        assert prediction.label == expected and prediction.names[0] == ("cat", "dog", "bird")[expected]
