"""Image checks: type by content (the header, not only the magic bytes), never by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchthumb.images import ImageProblem, image_type, inspect_image
from tests.imagedata import bmp, gif, jpeg, png, webp


@pytest.mark.parametrize(
    ("data", "ext"),
    [(png(), "png"), (jpeg(), "jpg"), (gif(), "gif"), (bmp(), "bmp"), (webp(), "webp")],
)
def test_image_type_reads_the_header(data: bytes, ext: str) -> None:
    """Each supported format is recognised by a well-formed header."""
    assert image_type(data) == ext


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n",  # the signature alone
        b"\x89PNG\r\n\x1a\n" + bytes(32),  # no IHDR chunk
        png()[:29] + b"\0\0\0\0" + png()[33:],  # IHDR with a wrong CRC
        b"\xff\xd8\xff",  # SOI and nothing after it
        b"\xff\xd8\xff\xe0\x00\x00" + bytes(8),  # a segment of length 0
        b"GIF89a" + bytes(100),  # a screen 0 pixels wide
        b"BM" + bytes(100),  # no DIB header
        b"BMW is a car maker, and this is text",
        b"RIFF\0\0\0\0WEBP",  # no bitstream chunk
        b"<svg/>",
    ],
)
def test_a_bare_signature_or_a_broken_header_is_not_an_image(data: bytes) -> None:
    """Magic bytes followed by no valid header are refused."""
    assert image_type(data) is None


def test_a_jpeg_named_png_is_accepted_as_jpeg(tmp_path: Path) -> None:
    """The name does not matter: a JPEG called .png is a JPEG."""
    path = tmp_path / "a.png"
    path.write_bytes(jpeg())
    assert inspect_image(path).ext == "jpg"


def test_a_folder_is_not_an_image(tmp_path: Path) -> None:
    """A directory gives a clear problem, not a traceback."""
    with pytest.raises(ImageProblem, match="is a directory, not a regular file"):
        inspect_image(tmp_path)
