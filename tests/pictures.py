"""Small, real PNG thumbnails for tests: a Gantt-like chart, its colours picked by a seed."""

from __future__ import annotations

import colorsys
import random
import struct
import zlib

WIDTH, HEIGHT = 160, 100


def thumbnail(seed: int) -> bytes:
    """A 160x100 PNG: a pale background and a few bars, different for every seed."""
    pick = random.Random(seed)
    hue = pick.random()
    bar = _rgb(hue, 0.55, 0.85)
    accent = _rgb((hue + 0.5) % 1.0, 0.45, 0.8)
    background = _rgb(hue, 0.06, 0.99)
    grid = _rgb(hue, 0.08, 0.9)
    bars = [(pick.randrange(8, 80), pick.randrange(25, 75)) for _ in range(5)]
    highlight = pick.randrange(len(bars))
    rows = []
    for y in range(HEIGHT):
        row = bytearray(b"\x00")  # filter type: none
        lane = (y - 10) // 16
        in_bar = 0 <= lane < len(bars) and 4 <= (y - 10) % 16 < 12
        for x in range(WIDTH):
            colour = grid if x % 20 == 0 else background
            if in_bar:
                start, length = bars[lane]
                if start <= x < start + length:
                    colour = accent if lane == highlight else bar
            row += colour
        rows.append(bytes(row))
    return _png(b"".join(rows))


def _rgb(h: float, s: float, v: float) -> bytes:
    return bytes(round(c * 255) for c in colorsys.hsv_to_rgb(h, s, v))


def _png(pixels: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels, 9))
        + chunk(b"IEND", b"")
    )
