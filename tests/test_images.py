"""Image checks: type by magic bytes, not by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchthumb.images import ImageProblem, image_type, inspect_image


@pytest.mark.parametrize(
    ("data", "ext"),
    [
        (b"\x89PNG\r\n\x1a\nrest", "png"),
        (b"\xff\xd8\xff\xe0", "jpg"),
        (b"GIF89a..", "gif"),
        (b"BM....", "bmp"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "webp"),
        (b"<svg/>", None),
    ],
)
def test_image_type_reads_magic_bytes(data: bytes, ext: str | None) -> None:
    """Each supported format is recognised by its first bytes; anything else is not."""
    assert image_type(data) == ext


def test_a_jpeg_named_png_is_accepted_as_jpeg(tmp_path: Path) -> None:
    """The name does not matter: a JPEG called .png is a JPEG."""
    path = tmp_path / "a.png"
    path.write_bytes(b"\xff\xd8\xff\xe0data")
    assert inspect_image(path).ext == "jpg"


def test_a_folder_is_not_an_image(tmp_path: Path) -> None:
    """A directory gives a clear problem, not a traceback."""
    with pytest.raises(ImageProblem, match="is a folder"):
        inspect_image(tmp_path)
