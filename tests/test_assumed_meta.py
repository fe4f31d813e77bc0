"""A torch factory exported without --meta says what it assumed, the file records it, and predict's
message for a file without a task names the `meta set` to run."""

import json

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from edgekit.cli.app import app

FACTORY = '''
import torch


def net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 3))
'''


def test_a_factory_export_without_meta_says_what_it_assumed(tmp_path):
    source = tmp_path / "mynet.py"
    source.write_text(FACTORY)
    out = tmp_path / "net.onnx"
    result = CliRunner().invoke(app, ["export", f"{source}:net", "-o", str(out), "--input-size", "32"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "assumed (no --meta given; recorded in the file as assumed): task unknown, color RGB, mean 0.485,0.456," \
           "0.406, std 0.229,0.224,0.225, resize stretch" in text
    assert f"edgekit meta set {out} task=... color=... mean=... std=... resize=..." in text
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["extra"])["assumed"] == ["task", "color", "mean", "std", "resize"]

    image = tmp_path / "x.npy"
    np.save(image, np.zeros((32, 32, 3), np.uint8))
    from edgekit.errors import BadInputError
    from edgekit.predictor import Predictor

    with pytest.raises(BadInputError, match=rf"set it with `edgekit meta set {out} task=classification"):
        Predictor(out)

    given = CliRunner().invoke(app, ["export", f"{source}:net", "-o", str(tmp_path / "m.onnx"), "--input-size", "32",
                                     "--meta", "task=classification", "--meta", "labels=a,b,c", "--meta",
                                     "mean=0.5,0.5,0.5", "--meta", "std=0.5,0.5,0.5"])
    assert given.exit_code == 0, given.output
    assert "assumed" in given.output and "color RGB, resize stretch" in " ".join(given.output.split())
    assert "task unknown" not in given.output
