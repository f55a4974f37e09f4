"""cnnviz's own PNG writer: every file it makes must read back, pixel for pixel, in Pillow."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from cnnviz.draw import png
from cnnviz.draw.png import encode_png


def _read(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_palette_pictures_read_back_with_their_palette() -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(37, 53), dtype=np.uint8)  # odd sizes: no row padding anywhere
    entries = rng.integers(0, 256, size=(256, 3), dtype=np.uint8)
    image = _read(encode_png(pixels, entries))
    assert (image.mode, image.size) == ("P", (53, 37))
    np.testing.assert_array_equal(np.asarray(image), pixels)
    np.testing.assert_array_equal(np.asarray(image.getpalette(), dtype=np.uint8).reshape(-1, 3), entries)


def test_short_palettes_and_a_single_pixel() -> None:
    entries = np.array([[255, 0, 0], [0, 0, 255]], dtype=np.uint8)
    image = _read(encode_png(np.array([[1]], dtype=np.uint8), entries))
    assert image.convert("RGB").getpixel((0, 0)) == (0, 0, 255)


def test_rgb_pictures_and_views_read_back() -> None:
    rng = np.random.default_rng(2)
    whole = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    view = whole[2:17:2, 5:, :]  # not contiguous
    image = _read(encode_png(view))
    assert image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), view)


def test_same_pixels_same_bytes_and_any_level_is_taken() -> None:
    pixels = np.tile(np.arange(200, dtype=np.uint8), (50, 1))
    entries = np.zeros((256, 3), dtype=np.uint8)
    assert encode_png(pixels, entries) == encode_png(pixels.copy(), entries.copy())
    for level in (-3, 0, 1, 99):
        np.testing.assert_array_equal(np.asarray(_read(encode_png(pixels, entries, level))), pixels)


def test_the_standard_zlib_makes_the_same_picture(monkeypatch: pytest.MonkeyPatch) -> None:
    # where isal is not installed
    pixels = np.random.default_rng(3).integers(0, 4, size=(64, 64), dtype=np.uint8)
    entries = np.eye(4, 3, dtype=np.uint8) * 255
    monkeypatch.setattr(png, "_compress", zlib.compress)
    monkeypatch.setattr(png, "MAX_LEVEL", 9)
    data = encode_png(pixels, entries, level=9)
    np.testing.assert_array_equal(np.asarray(_read(data)), pixels)


@pytest.mark.parametrize(
    ("pixels", "entries", "message"),
    [
        (np.zeros((2, 2), np.float32), None, "must be uint8"),
        (np.zeros((2, 2), np.uint8), None, r"RGB pixels must be \(rows, cols, 3\)"),
        (np.zeros((2, 2, 3), np.uint8), np.zeros((4, 3), np.uint8), "palette pictures need"),
        (np.zeros((2, 2), np.uint8), np.zeros((4, 4), np.uint8), "palette pictures need"),
        (np.zeros((2, 2), np.uint8), np.zeros((257, 3), np.uint8), "1 to 256 colours"),
        (np.zeros((0, 2), np.uint8), np.zeros((4, 3), np.uint8), "at least one pixel"),
    ],
)
def test_refuses_what_png_cannot_hold(pixels: np.ndarray, entries: np.ndarray | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_png(pixels, entries)
