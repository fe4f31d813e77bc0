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


def test_an_npz_that_inflates_to_gigabytes_is_refused_before_loading(tmp_path, monkeypatch):
    """A 2 MB .npz of zeros declaring GBs was read in full (2.6 GB RSS) before the shape error. The cap
    is lowered here (1 GiB in use) so the bomb is quick to write."""
    import zipfile

    from edgekit import fileio
    from edgekit.fileio import read_npz

    monkeypatch.setattr(fileio, "MAX_NPZ_BYTES", 64 * 2**20)
    bomb = tmp_path / "inputs.npz"
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    header["shape"] = (1, 3, 4096, 4096)   # 192 MiB declared
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("input.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            chunk = bytes(2**24)
            for _ in range(192 * 2**20 // len(chunk)):
                member.write(chunk)
    assert bomb.stat().st_size < 2**20
    with pytest.raises(BadInputError, match="inflates to more than 64 MiB"):
        read_npz(bomb, "inputs")
    liar = tmp_path / "liar.npz"
    with zipfile.ZipFile(liar, "w") as archive:
        with archive.open("input.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, header)
    with pytest.raises(BadInputError, match="declares"):
        read_npz(liar, "inputs")
