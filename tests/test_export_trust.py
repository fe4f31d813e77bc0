"""The export check never passes on nothing: a random-weight detector's empty box match falls back to
the raw tensors and says so, degenerate random-weight logits are compared in units of their std and
say so, and an export whose outputs compare nothing at all is an error (exit 1) naming the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from edgekit.errors import CheckFailedError
from edgekit.exporters import ExportConfig
from edgekit.exporters.torch_onnx import verify_export
from edgekit.meta import ModelMeta

HERE = Path(__file__).resolve()
CENTERNET = {"type": "centernet", "outputs": ["output0", "output1", "output2"], "stride": 4}
TORCHVISION = ModelMeta(task="detection", input_size=(64, 64), labels=("a", "b"),
                        extra={"decoder": {"type": "torchvision", "outputs": ["boxes", "scores", "labels"]}})


def random_centernet():
    import torch

    from edgekit.zoo.detector import centernet_small

    torch.manual_seed(0)
    return centernet_small(3)   # heatmap bias −4.6: every score ≈ 0.01, below any threshold


def constant():
    import torch

    class Constant(torch.nn.Module):
        def forward(self, x):
            return x.mean() * 0 + torch.ones(1, 10)

    return Constant()


def test_random_detector_export_says_no_box_and_compares_the_tensors(tmp_path):
    from edgekit.exporters.user_module import export_source
    from edgekit.inputs.specs import parse_input_specs

    result = export_source(f"{HERE}:random_centernet", tmp_path / "det.onnx", inputs=parse_input_specs(
        ["input:1x3x64x64"]), meta_changes={"task": "detection", "decoder": CENTERNET})
    assert result.boxes is None and result.parity.passed
    line = result.summary
    assert "boxes matched" not in line and "0/0" not in line
    assert "no box above the score threshold 0.05 on either side: raw outputs compared" in line
    assert line.endswith(": ok") and "min cosine 1.0000" in line


def _torchvision_outputs(scores: np.ndarray, order: np.ndarray | None = None):
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 30, (len(scores), 2)).astype(np.float32)
    outputs = {"boxes": np.concatenate([corners, corners + 20], axis=1), "scores": scores.astype(np.float32),
               "labels": rng.integers(1, 2, len(scores)).astype(np.int64)}
    return outputs if order is None else {name: value[order] for name, value in outputs.items()}


def test_tied_random_boxes_in_another_order_are_not_0_of_0_ok():
    tied = np.full(20, 1 / 91)   # random weights: every score the same, below the threshold
    reference = _torchvision_outputs(tied)
    actual = _torchvision_outputs(tied, order=np.arange(20)[::-1])
    with pytest.raises(CheckFailedError) as error:
        verify_export(reference, actual, TORCHVISION, ExportConfig())
    message = str(error.value)
    assert message.startswith("export does not match torch, file not written: ") and "0/0" not in message
    assert "no box above the score threshold 0.05 on either side: raw outputs compared" in message
    assert "FAILED on boxes" in message and "export trained weights (--weights FILE)" in message


def test_boxes_decide_when_tensors_differ_only_in_order():
    scores = np.linspace(0.9, 0.5, 20)
    reference = _torchvision_outputs(scores)
    actual = _torchvision_outputs(scores, order=np.r_[1, 0, np.arange(2, 20)])
    parity, boxes = verify_export(reference, actual, TORCHVISION, ExportConfig())
    assert not parity.passed and boxes is not None and boxes.passed and boxes.matched == 20


@pytest.mark.slow
def test_an_export_that_compares_nothing_is_an_error(tmp_path):
    from edgekit.exporters.user_module import export_source

    target = tmp_path / "constant.onnx"
    with pytest.raises(CheckFailedError, match="the export check compared nothing, file not written: outputs have "
                                               r"no spread \(std 0\)"):
        export_source(f"{HERE}:constant", target)
    assert not target.exists()
    result = run_cli("export", f"{HERE}:constant", "-o", str(target))
    assert result.returncode == 1 and not target.exists(), result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: the export check compared nothing") and "--weights FILE" in line


def test_random_mobilenet_logits_are_said_to_have_no_spread(zoo_onnx):
    result = zoo_onnx("mobilenet_v3_small")
    (output,) = result.parity.outputs
    assert output.spread < 1e-6 and result.parity.passed   # float32 compares them relative to their scale
    assert "output has no spread (std " in result.parity.summary()
    assert "random weights?), compared in units of its std): ok" in result.parity.summary()
    resnet = zoo_onnx("resnet18")
    assert resnet.parity.note == "" and resnet.parity.summary().endswith(": ok")
