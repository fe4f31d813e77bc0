"""Every malformed model source is one clear line (exit 2): missing files and factories, factories that
do not return a module, checkpoints that do not fit or that the safe loader refuses, bad input specs."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from edgekit.errors import BadInputError
from edgekit.exporters.checkpoint import load_weights
from edgekit.exporters.user_module import load_source
from edgekit.inputs.specs import parse_input_spec, parse_input_specs
from edgekit.sources import parse_source
from tests.conftest import assert_one_line_error, run_cli


class Pickled:
    """An arbitrary class: a checkpoint holding it is refused by weights_only loading."""


@pytest.fixture()
def factories(tmp_path):
    path = tmp_path / "user_models.py"
    path.write_text(textwrap.dedent("""
        import torch.nn as nn
        def net():
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
        def small():
            return nn.Conv2d(3, 4, 3)
        def not_a_module():
            return {"conv": 1}
        def raises():
            raise RuntimeError("CUDA is needed to build this")
        def needs_args(classes):
            return nn.Linear(3, classes)
        def exits():
            import sys
            sys.exit(0)
        def interrupted():
            raise KeyboardInterrupt
        NUMBER = 3
    """))
    (tmp_path / "broken.py").write_text("def oops(:\n")
    (tmp_path / "script.py").write_text("import sys\nsys.exit(0)\ndef net():\n    pass\n")
    return path


def test_source_kinds(tmp_path, factories):
    assert parse_source(f"{factories}:net").kind == "factory"
    assert parse_source("torchvision.models:resnet18").kind == "factory"
    assert parse_source("lenet5").kind == "zoo"
    (tmp_path / "m.pt2").write_bytes(b"x")
    assert parse_source(str(tmp_path / "m.pt2")).kind == "exported"


@pytest.mark.parametrize("suffix, message", [
    (":missing_file", "model factory file not found"),
])
def test_missing_factory_file(tmp_path, suffix, message):
    with pytest.raises(BadInputError, match=message):
        parse_source(f"{tmp_path}/nowhere.py:net")


@pytest.mark.parametrize("factory, message", [
    ("nett", "has no factory 'nett' — did you mean 'net'?"),
    ("not_a_module", "returned a dict, not a torch.nn.Module"),
    ("raises", "failed: RuntimeError: CUDA is needed to build this"),
    ("needs_args", "must take no arguments"),
    ("NUMBER", "is a int, not a factory function"),
    ("exits", r"called sys.exit\(0\)"),   # exit 0 would read as success, with nothing written
])
def test_bad_factories(factories, factory, message):
    with pytest.raises(BadInputError, match=message.replace("?", r"\?")):
        load_source(f"{factories}:{factory}")


def test_a_factory_raising_keyboard_interrupt_is_one_line_and_exit_130(factories, tmp_path):
    result = run_cli("export", f"{factories}:interrupted", "--input", "x:1x3x8x8", "-o", str(tmp_path / "i.onnx"))
    assert result.returncode == 130 and result.stderr.strip().splitlines() == [
        "error: interrupted (Ctrl-C)"], result.stderr


def test_unimportable_sources(factories):
    with pytest.raises(BadInputError, match="cannot import .*broken.py: SyntaxError"):
        load_source(f"{factories.parent / 'broken.py'}:oops")
    with pytest.raises(BadInputError, match=r"script.py: it called sys.exit\(0\) on import"):
        load_source(f"{factories.parent / 'script.py'}:net")
    with pytest.raises(BadInputError, match="cannot import no_such_pkg.models: no module named 'no_such_pkg'"):
        load_source("no_such_pkg.models:net")


def test_checkpoint_mismatches_are_listed(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 8, 3))
    state = model.state_dict()
    state["1.weight"] = torch.zeros(8, 4, 5, 5)  # wrong shape
    del state["0.bias"]  # missing
    state["head.weight"] = torch.zeros(2)  # unexpected
    torch.save(state, tmp_path / "ck.pt")
    with pytest.raises(BadInputError) as raised:
        load_weights(model, tmp_path / "ck.pt")
    text = str(raised.value)
    assert "missing 1 [0.bias]" in text and "unexpected 1 [head.weight]" in text
    assert "1.weight (8, 4, 5, 5) vs (8, 4, 3, 3)" in text
    torch.save({"model": model.state_dict()}, tmp_path / "wrapped.pt")
    load_weights(model, tmp_path / "wrapped.pt")  # nested under a usual key: fits
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "dp.pt")
    load_weights(model, tmp_path / "dp.pt")  # DataParallel prefix: fits


def test_refused_checkpoint_says_why_and_never_how_to_bypass(tmp_path, factories):
    torch.save({"conv": Pickled()}, tmp_path / "evil.pt")
    with pytest.raises(BadInputError) as raised:
        load_weights(nn.Conv2d(3, 4, 3), tmp_path / "evil.pt")
    text = str(raised.value)
    assert "refused by the safe loader" in text and "Pickled" in text
    assert "weights_only" not in text and "trust" not in text
    result = run_cli("export", f"{factories}:small", "--weights", str(tmp_path / "evil.pt"), "-o",
                     str(tmp_path / "out.onnx"))
    assert_one_line_error(result, "refused by the safe loader")
    assert "weights_only=False" not in result.stderr and not (tmp_path / "out.onnx").exists()


@pytest.mark.slow
def test_cli_errors_are_one_line(tmp_path, factories):
    out = str(tmp_path / "o.onnx")
    assert_one_line_error(run_cli("export", f"{tmp_path}/nope.py:net", "-o", out), "model factory file not found")
    assert_one_line_error(run_cli("export", f"{factories}:not_a_module", "-o", out), "not a torch.nn.Module")
    assert_one_line_error(run_cli("export", f"{factories}:small", "--input", "x:1x3x2.5x8", "-o", out),
                          "dim '2.5' is not an integer")
    assert_one_line_error(run_cli("export", f"{factories}:small", "--input", "x:1x4x8x8", "-o", out),
                          "does not run on inputs x (1, 4, 8, 8)")
    assert_one_line_error(run_cli("export", "lenet5", "--input", "x:1x1x32x32", "-o", out),
                          "zoo model takes --input-size")
    assert_one_line_error(run_cli("export", "lenet5", "--meta", "mean=0.5,0.5,0.5", "-o", out),
                          "mean has 3 values but color GRAY has 1")  # checked before the export
    sd = tmp_path / "state.pt"
    torch.save(nn.Conv2d(3, 4, 3).state_dict(), sd)
    assert_one_line_error(run_cli("bench", str(sd)), "is not a TorchScript file", "--weights")
    assert not (tmp_path / "o.onnx").exists()


@pytest.mark.parametrize("text, message", [
    ("x", "must look like name:1x3x224x224"),
    ("x:1x3x224x224:float", "unknown dtype 'float'"),
    ("x:1x-3x4", "dim '-3' is not an integer"),
    ("x:0x3", "must be between 1"),
    ("1x:1x3", "is not a tensor name"),
])
def test_bad_input_specs(text, message):
    with pytest.raises(BadInputError, match=message):
        parse_input_spec(text)


def test_input_specs_parse_dynamic_dims():
    spec = parse_input_spec("images:batch=2x3x?x?=320:float16")
    assert spec.shape == ("batch", 3, "images_dim2", "images_dim3") and spec.dtype == "float16"
    assert spec.sample_shape() == (2, 3, 224, 320)
    with pytest.raises(BadInputError, match="given twice"):
        parse_input_specs(["a:1", "a:2"])
