"""PNG encoding of cnnviz's pictures, built for speed on large grids.

A grid of VGG16's first layer is 64 maps of 224 x 224, over three million pixels, and a batch run writes
thousands of them. Pillow's PNG encoder spends most of a grid's drawing time in zlib; the same deflate stream
made by ISA-L (the ``isal`` package, a dependency on the common platforms) takes a seventh of that (block1 grid:
7.3 ms against 52 ms) for a file of about the same size (``bench/bench_png.py`` measures both). PNG is simple
enough to write directly (signature, header, palette, one compressed data chunk, end), so that is what
:func:`encode_png` does, with the standard library's zlib where ``isal`` is not installed. Pillow still reads
every image cnnviz opens, and any PNG reader reads these.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import numpy as np

try:  # ISA-L's deflate: same format as zlib's, several times faster at its low levels
    from isal import isal_zlib

    _compress: Callable[..., bytes] = isal_zlib.compress
    #: Highest level the deflate in use takes: ISA-L has levels 0-3, zlib 0-9.
    MAX_LEVEL = 3
except ImportError:  # pragma: no cover - isal ships wheels for the usual platforms
    _compress = zlib.compress
    MAX_LEVEL = 9

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PALETTE_COLOUR, _TRUE_COLOUR = 3, 2


def _chunk(kind: bytes, data: bytes) -> list[bytes]:
    # in parts: the data chunk is megabytes, and joining it here would copy it twice more
    return [struct.pack(">I", len(data)), kind, data, struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))]


def encode_png(pixels: np.ndarray, palette: np.ndarray | None = None, level: int = 1) -> bytes:
    """PNG bytes for ``(rows, cols)`` uint8 indices into a ``(N, 3)`` uint8 ``palette`` (N <= 256), or for
    ``(rows, cols, 3)`` uint8 RGB when ``palette`` is None. ``level`` is the deflate level, cut to
    :data:`MAX_LEVEL`; the same pixels at the same level always give the same bytes.

    >>> data = encode_png(np.array([[0, 1]], np.uint8), np.array([[0, 0, 0], [255, 255, 255]], np.uint8))
    >>> data[:8] == SIGNATURE, data[12:16], struct.unpack(">IIBB", data[16:26])
    (True, b'IHDR', (2, 1, 8, 3))

    Raises:
        ValueError: pixels or palette of the wrong shape or type.
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"PNG pixels must be uint8, got {pixels.dtype}")
    if palette is None:
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"RGB pixels must be (rows, cols, 3), got {pixels.shape}")
        colour = _TRUE_COLOUR
    else:
        entries = np.asarray(palette)
        if pixels.ndim != 2 or entries.dtype != np.uint8 or entries.ndim != 2 or entries.shape[1] != 3:
            raise ValueError(f"palette pictures need (rows, cols) pixels and (N, 3) uint8 entries, got {pixels.shape}")
        if not 1 <= len(entries) <= 256:
            raise ValueError(f"a PNG palette holds 1 to 256 colours, got {len(entries)}")
        colour = _PALETTE_COLOUR
    rows, cols = pixels.shape[:2]
    if rows == 0 or cols == 0:
        raise ValueError(f"a PNG needs at least one pixel, got {rows}x{cols}")
    # Each row starts with its filter type; 0 (none) is the fastest to make, and palette indices gain little
    # from the others.
    raw = np.zeros((rows, 1 + pixels[0].size), dtype=np.uint8)
    raw[:, 1:] = pixels.reshape(rows, -1)
    header = struct.pack(">IIBBBBB", cols, rows, 8, colour, 0, 0, 0)
    parts = [SIGNATURE, *_chunk(b"IHDR", header)]
    if palette is not None:
        parts += _chunk(b"PLTE", entries.tobytes())
    parts += _chunk(b"IDAT", _compress(raw.data, min(max(level, 0), MAX_LEVEL)))
    parts += _chunk(b"IEND", b"")
    return b"".join(parts)
