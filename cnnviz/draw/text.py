"""Text as pixel masks, for the header strip and the tile numbers: Pillow's bundled font, drawn one-bit."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def line_height(size: int) -> int:
    """The rows one line of text takes at font ``size`` (pixels), descenders included."""
    return round(size * 1.25)


@functools.lru_cache(maxsize=4096)
def _cached_mask(text: str, size: int) -> np.ndarray:
    font = _font(size)
    height = line_height(size)
    canvas = Image.new("1", (int(font.getlength(text) * 1.25) + height, height), 0)
    draw = ImageDraw.Draw(canvas)
    draw.fontmode = "1"
    draw.text((0, 0), text, fill=1, font=font)
    mask = np.asarray(canvas, dtype=bool)
    inked = np.flatnonzero(mask.any(axis=0))
    mask = mask[:, : inked[-1] + 1] if inked.size else mask[:, :0]
    mask.setflags(write=False)
    return mask


def text_mask(text: str, size: int = 12) -> np.ndarray:
    """One line of text as a read-only boolean ink mask, ``line_height(size)`` rows high, cropped on the right to
    its last inked column.

    Text is drawn one-bit (pictures have a single ink colour), and one-bit glyphs come out wider than the font's
    advance widths say, so extents are measured on the drawn pixels.

    >>> text_mask("", 10).shape
    (12, 0)
    """
    return _cached_mask(text, size)
