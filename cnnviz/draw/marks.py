"""Marks drawn onto tiles before they are laid out: index numbers, and crosses over flat (dead) tiles.

Tiles are ``(K, H, W)`` palette indices or ``(K, H, W, 3)`` RGB; no function changes its input: each returns a new
array, or the input itself when there is nothing to draw on it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from cnnviz.draw.text import line_height, text_mask

#: Font size of tile numbers, in pixels: small enough to sit in the corner of a 48-pixel map.
INDEX_FONT = 10
Colour = int | tuple[int, ...]


def _label(number: int) -> np.ndarray:
    return text_mask(str(number), INDEX_FONT)


def label_size(numbers: Sequence[int]) -> tuple[int, int]:
    """(rows, cols) of a box that holds any of ``numbers``, a pixel of margin around the digits."""
    return _label_box(tuple(numbers))


@functools.lru_cache(maxsize=256)
def _label_box(numbers: tuple[int, ...]) -> tuple[int, int]:
    # A batch run asks for the same few hundred numbers for every grid it draws.
    widest = max((_label(number).shape[1] for number in numbers), default=0)
    return line_height(INDEX_FONT) + 1, widest + 3


def numbers_fit(tile_rows: int, tile_cols: int, numbers: Sequence[int]) -> bool:
    """Whether a box for ``numbers`` leaves most of a ``tile_rows`` x ``tile_cols`` tile visible: at most a third
    of its height and half of its width."""
    rows, cols = label_size(numbers)
    return 3 * rows <= tile_rows and 2 * cols <= tile_cols


def number_corners(tiles: np.ndarray, numbers: list[int], ink: Colour, background: Colour) -> np.ndarray:
    """Write each tile's number in a box at its top-left corner.

    >>> out = number_corners(np.zeros((1, 20, 30), np.uint8), [7], ink=9, background=8)
    >>> int(out[0, 0, 0]), bool((out[0, :13, :8] == 9).any()), int(out[0, 19, 29])
    (8, True, 0)
    """
    out = np.array(tiles, copy=True)
    boxes = _label_boxes(tuple(numbers))  # True where ink goes
    box_rows, box_cols = boxes.shape[1:]
    corners = out[:, :box_rows, :box_cols]
    corners[...] = background
    corners[boxes] = ink
    return out


@functools.lru_cache(maxsize=32)
def _label_boxes(numbers: tuple[int, ...]) -> np.ndarray:
    """The corner boxes of :func:`number_corners` as one ``(K, rows, cols)`` ink mask: the same few hundred
    numbers go on every grid of a batch run, so they are drawn once."""
    box_rows, box_cols = label_size(numbers)
    boxes = np.zeros((len(numbers), box_rows, box_cols), dtype=bool)
    for box, number in zip(boxes, numbers, strict=True):
        mask = _label(number)
        box[1 : 1 + mask.shape[0], 2 : 2 + mask.shape[1]] = mask
    boxes.setflags(write=False)
    return boxes


def number_gutters(strips: np.ndarray, numbers: list[int], ink: Colour, background: Colour) -> np.ndarray:
    """Put a column of ``background`` left of each strip with its number, right-aligned at the top.

    >>> number_gutters(np.zeros((2, 14, 5), np.uint8), [3, 12], ink=9, background=8).shape
    (2, 14, 20)
    """
    _, cols = label_size(numbers)
    out = np.empty((strips.shape[0], strips.shape[1], cols + 1, *strips.shape[3:]), dtype=strips.dtype)
    out[...] = background
    for gutter, number in zip(out, numbers, strict=True):
        mask = _label(number)
        right = cols - 1
        gutter[: mask.shape[0], right - mask.shape[1] : right][mask] = ink
    return np.concatenate([out, strips], axis=2)


def cross_out(tiles: np.ndarray, flat: np.ndarray, colour: Colour) -> np.ndarray:
    """Draw both diagonals across the tiles where ``flat`` is True, in ``colour``, so that a dead map or filter
    reads as crossed out rather than merely dark.

    >>> cross_out(np.zeros((2, 3, 3), np.uint8), np.array([True, False]), colour=5)[:, :, 0].tolist()
    [[5, 0, 5], [0, 0, 0]]
    """
    rows, cols = tiles.shape[1:3]
    if not flat.any() or rows == 0 or cols == 0:
        return tiles
    out = np.array(tiles, copy=True)
    steps = max(rows, cols)
    along_rows = np.rint(np.linspace(0, rows - 1, steps)).astype(int)
    along_cols = np.rint(np.linspace(0, cols - 1, steps)).astype(int)
    for index in np.flatnonzero(flat):
        out[index, along_rows, along_cols] = colour
        out[index, along_rows, cols - 1 - along_cols] = colour
    return out
