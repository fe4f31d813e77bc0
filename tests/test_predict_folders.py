"""predict on folders as users lay them out: class sub-folders are read (eval's layout), an unreadable
file is one line and skipped while the others are predicted, and the run then exits 1."""

import numpy as np
from typer.testing import CliRunner

from edgekit.cli.app import app


def test_sub_folders_are_read_and_unreadable_files_skipped_then_exit_1(tmp_path, zoo_onnx):
    import cv2

    for name in ("cat", "dog"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "photos" / name / f"{name}.png"), np.full((40, 40, 3), 128, np.uint8))
    (tmp_path / "photos" / "dog" / "broken.jpg").write_bytes(b"not a jpeg")
    result = CliRunner().invoke(app, ["predict", str(zoo_onnx("lenet5").path), str(tmp_path / "photos")])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert any(line.startswith(str(tmp_path / "photos" / "cat" / "cat.png")) for line in lines)
    assert any(line.startswith(str(tmp_path / "photos" / "dog" / "dog.png")) for line in lines)
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors[0].startswith(f"error: cannot read image {tmp_path / 'photos' / 'dog' / 'broken.jpg'}")
    assert errors[-1] == "error: 1 of 3 images could not be read (listed above)"
