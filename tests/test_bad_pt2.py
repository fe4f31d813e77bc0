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
