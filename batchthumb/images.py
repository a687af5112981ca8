"""Image files: what type they really are (by magic bytes), whether they may be uploaded.

Pure (no I/O beyond reading the file): the sandbox checks uploads with the same rules.

The upload call takes at most 5 MB per image (facts §2.1); the allowed formats are not
documented, so batchthumb accepts the common web image types and checks the bytes, not the name.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from batchthumb.model import LocalImage

MAX_IMAGE_BYTES = 5 * 1024 * 1024
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
)
CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "webp": "image/webp",
}


class ImageProblem(ValueError):
    """A file that cannot be uploaded as a thumbnail; the message says why."""


def image_type(data: bytes) -> str | None:
    """The image type its first bytes say (png, jpg, gif, bmp, webp), or None."""
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def inspect_image(path: Path) -> LocalImage:
    """Check that ``path`` is an uploadable image; its type, size and sha256."""
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise ImageProblem(f"{path} is {size} bytes; the API takes at most 5 MB")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageProblem(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ImageProblem(f"{path} is a folder, not an image file") from None
    except OSError as exc:
        raise ImageProblem(f"{path} cannot be read: {exc.strerror}") from None
    ext = image_type(data)
    if ext is None:
        raise ImageProblem(f"{path} is not a PNG, JPEG, GIF, BMP or WebP image (by its content)")
    return LocalImage(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), ext=ext)


def read_image(image: LocalImage) -> bytes:
    """The bytes of a checked image, refusing a file changed since the job was read."""
    try:
        data = image.path.read_bytes()
    except OSError as exc:
        raise ImageProblem(f"{image.path} cannot be read: {exc.strerror}") from None
    if hashlib.sha256(data).hexdigest() != image.sha256:
        raise ImageProblem(f"{image.path} changed since the job was checked")
    return data


def upload_name(data: bytes) -> str:
    """A file name for uploading ``data``: its hash and its real type."""
    return f"{hashlib.sha256(data).hexdigest()[:16]}.{image_type(data) or 'png'}"
