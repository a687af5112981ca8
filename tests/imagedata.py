"""Tiny but well-formed images of each format the upload takes, for tests."""

from __future__ import annotations

import struct
import zlib


def png(seed: int = 0) -> bytes:
    """A valid 1x1 PNG, different for each seed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixel = zlib.compress(b"\x00" + seed.to_bytes(3, "big"))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixel) + chunk(b"IEND", b"")
    )


def jpeg() -> bytes:
    """The start of a JFIF JPEG: SOI and an APP0 segment."""
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(16)


def gif() -> bytes:
    """A GIF89a header with a 1x1 logical screen."""
    return b"GIF89a\x01\x00\x01\x00\x00\x00\x00" + b";"


def bmp() -> bytes:
    """A 1x1 24-bit BMP with a BITMAPINFOHEADER."""
    pixels = bytes(4)
    info = struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, len(pixels), 0, 0, 0, 0)
    header = struct.pack("<2sIHHI", b"BM", 14 + len(info) + len(pixels), 0, 0, 14 + len(info))
    return header + info + pixels


def webp() -> bytes:
    """A RIFF WEBP container holding a (truncated) VP8 chunk."""
    body = b"WEBPVP8 " + struct.pack("<I", 10) + bytes(10)
    return b"RIFF" + struct.pack("<I", len(body)) + body
