"""Image files: what type they really are (by magic bytes), whether they may be uploaded.

Pure (no I/O beyond reading the file): the sandbox checks uploads with the same rules.

The upload call takes at most 5 MB per image (facts §2.1); the allowed formats are not
documented, so batchthumb accepts the common web image types and checks the bytes, not the name.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

from batchthumb.files import FileRefused, read_regular
from batchthumb.model import LocalImage

MAX_IMAGE_BYTES = 5 * 1024 * 1024
CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "webp": "image/webp",
}
_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# JPEG markers that may follow SOI: every segment marker but RSTn, SOI, EOI and TEM.
_JPEG_FIRST = frozenset(range(0xC0, 0xFF)) - frozenset(range(0xD0, 0xDA))
_BMP_HEADERS = frozenset((12, 40, 52, 56, 64, 108, 124))  # the DIB header sizes Windows knows
_WEBP_CHUNKS = (b"VP8 ", b"VP8L", b"VP8X")


class ImageProblem(ValueError):
    """A file that cannot be uploaded as a thumbnail; the message says why."""


def _png(data: bytes) -> bool:
    """A PNG signature followed by a well-formed IHDR chunk (size, CRC, depth and colour)."""
    if len(data) < 33 or data[8:16] != b"\x00\x00\x00\x0dIHDR":
        return False
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    (crc,) = struct.unpack(">I", data[29:33])
    return (
        0 < width < 2**31
        and 0 < height < 2**31
        and depth in _PNG_DEPTHS.get(colour, ())
        and crc == zlib.crc32(data[12:29])
    )


def _jpeg(data: bytes) -> bool:
    """SOI, then a first segment whose length fits in the file."""
    if len(data) < 6 or data[3] not in _JPEG_FIRST:
        return False
    (length,) = struct.unpack(">H", data[4:6])
    return bool(2 <= length <= len(data) - 4)


def _gif(data: bytes) -> bool:
    """The signature and a logical screen of non-zero width and height."""
    if len(data) < 13:
        return False
    width, height = struct.unpack("<HH", data[6:10])
    return bool(width > 0 and height > 0)


def _bmp(data: bytes) -> bool:
    """A file header whose pixels start inside the file, and a known DIB header."""
    if len(data) < 26:
        return False
    offset, header = struct.unpack("<II", data[10:18])
    if header not in _BMP_HEADERS or not 14 + header <= offset <= len(data):
        return False
    if header == 12:
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return bool(width > 0 and height != 0)


def _webp(data: bytes) -> bool:
    """A RIFF container of type WEBP whose first chunk is a VP8 bitstream or the extended header."""
    return len(data) >= 20 and data[8:12] == b"WEBP" and data[12:16] in _WEBP_CHUNKS


def image_type(data: bytes) -> str | None:
    """The image type its header says (png, jpg, gif, bmp, webp), or None.

    More than the magic bytes: the header after them must be well-formed too, so a file that
    merely starts with a signature (or with ``BM``, as some text does) is not an image.
    """
    if data.startswith(_PNG):
        return "png" if _png(data) else None
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg" if _jpeg(data) else None
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif" if _gif(data) else None
    if data.startswith(b"BM"):
        return "bmp" if _bmp(data) else None
    if data.startswith(b"RIFF"):
        return "webp" if _webp(data) else None
    return None


def _read(path: Path) -> bytes:
    try:
        return read_regular(
            path, limit=MAX_IMAGE_BYTES, what="an image (the API takes at most 5 MB)"
        )
    except FileRefused as exc:
        reason = "does not exist" if exc.reason == "no such file" else exc.reason
        raise ImageProblem(f"{path} {reason}") from None


def inspect_image(path: Path) -> LocalImage:
    """Check that ``path`` is an uploadable image; its type, size and sha256."""
    data = _read(path)
    ext = image_type(data)
    if ext is None:
        raise ImageProblem(f"{path} is not a PNG, JPEG, GIF, BMP or WebP image (by its content)")
    return LocalImage(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), ext=ext)


def read_image(image: LocalImage) -> bytes:
    """The bytes of a checked image, refusing a file changed since the job was read."""
    data = _read(image.path)
    if hashlib.sha256(data).hexdigest() != image.sha256:
        raise ImageProblem(f"{image.path} changed since the job was checked")
    return data


def upload_name(data: bytes) -> str:
    """A file name for uploading ``data``: its hash and its real type."""
    return f"{hashlib.sha256(data).hexdigest()[:16]}.{image_type(data) or 'png'}"
