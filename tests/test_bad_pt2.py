"""A malformed torch.export archive is one line on stderr: torch's logged traceback (19 lines of
warnings) stays off it unless EDGEKIT_DEBUG=1."""

import zipfile

import pytest

from conftest import run_cli


@pytest.mark.slow
def test_a_malformed_pt2_is_one_line(tmp_path):
    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("archive/version", "1")
        archive.writestr("archive/data.pkl", "junk")
    result = run_cli("export", str(bad), "-o", str(tmp_path / "out.onnx"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {bad} is not a torch.export program: torch could not "
                                                  "deserialize it (EDGEKIT_DEBUG=1 shows torch's reason)"]
    assert not (tmp_path / "out.onnx").exists()


class _Code:
    """Unpickling this runs a shell command (what a hostile checkpoint does)."""

    def __reduce__(self):
        import os

        return (os.system, ("echo PWNED > pwned.txt",))


def test_a_checkpoint_holding_code_is_refused_naming_what_it_pickles(tmp_path, monkeypatch):
    import torch
    from typer.testing import CliRunner

    from edgekit.cli.app import app

    monkeypatch.chdir(tmp_path)
    torch.save({"weight": torch.zeros(2), "payload": _Code()}, tmp_path / "evil.pt")
    result = CliRunner().invoke(app, ["export", "lenet5", "-o", str(tmp_path / "x.onnx"), "--weights",
                                      str(tmp_path / "evil.pt")])
    assert result.exit_code == 2 and "refused by the safe loader (it pickles posix.system" in result.output
    assert not (tmp_path / "pwned.txt").exists() and not (tmp_path / "x.onnx").exists()
