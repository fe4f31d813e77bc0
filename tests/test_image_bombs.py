"""Image readers are bounded before they allocate: a header declaring 100000x100000 pixels is one line,
through Pillow and through the OpenCV fallback (the device install has no Pillow), in every door."""

import struct
import sys
import zlib

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.errors import BadInputError
from edgekit.frames import MAX_IMAGE_PIXELS, header_size, read_image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path, width=100_000, height=100_000):
    """A PNG whose header declares width x height (its pixel data is a few zero rows)."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    data = _chunk(b"IDAT", zlib.compress(b"\0" * (width + 1) * 4))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + data + _chunk(b"IEND", b""))
    return path


def test_header_sizes_are_read_without_decoding(tmp_path):
    import cv2

    assert header_size(png_bomb(tmp_path / "b.png", 300, 200)) == (300, 200)
    image = np.zeros((48, 64, 3), np.uint8)
    for suffix in (".jpg", ".bmp", ".png"):
        cv2.imwrite(str(tmp_path / f"x{suffix}"), image)
        assert header_size(tmp_path / f"x{suffix}") == (64, 48)


@pytest.mark.parametrize("pillow", [True, False], ids=["pillow", "opencv"])
def test_a_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch, pillow):
    if not pillow:
        monkeypatch.setitem(sys.modules, "PIL", None)   # as on a device without Pillow
    bomb = png_bomb(tmp_path / "bomb.png")
    with pytest.raises(BadInputError, match=r"declares 100000x100000 pixels, more than the 67 megapixels"):
        read_image(bomb)
    assert MAX_IMAGE_PIXELS == 8192 * 8192


def test_a_calibration_folder_holding_a_bomb_is_one_line(tmp_path, zoo_onnx):
    from edgekit.cli.app import app

    folder = tmp_path / "calib"
    folder.mkdir()
    png_bomb(folder / "bomb.png")
    out = tmp_path / "q.onnx"
    result = CliRunner().invoke(app, ["quantize", str(zoo_onnx("lenet5").path), "-o", str(out), "--calib",
                                      str(folder)])
    assert result.exit_code == 2 and "calibration image" in result.output and "declares 100000x100000" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()
