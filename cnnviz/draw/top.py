"""The picture of ``cnnviz top``: one row per filter, its number first, then its best patches, best first, each in
its own colours with its value beneath; a leading image (the filter's ``maximize`` picture) where given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from cnnviz.draw.render import Header, Picture, compose, palette
from cnnviz.draw.text import line_height, text_mask

#: Each patch is scaled to fit a square tile of this many pixels, keeping its proportions.
TILE = 96
_GAP = 4
_FONT = 12
_WHITE, _INK, _EMPTY = (255, 255, 255), (0, 0, 0), (236, 238, 241)


def drawable_input(array: np.ndarray, ready: bool) -> np.ndarray:
    """An input as a picture: pixels (``ready`` False) in their own colours as uint8, or a model-ready array (or an
    image of other than 1 or 3 channels) as its channels' mean scaled to 0..255 grey, ``(rows, cols)``.

    >>> drawable_input(np.array([[[0.0, 2.0], [4.0, 6.0]]]), True).tolist()
    [[0, 255]]
    """
    if not ready and array.shape[-1] in (1, 3):
        return np.clip(np.rint(array), 0, 255).astype(np.uint8)
    grey = array.mean(axis=-1)
    low, high = float(grey.min()), float(grey.max())
    return np.rint((grey - low) / (high - low or 1.0) * 255).astype(np.uint8)


@dataclass(frozen=True)
class TopRow:
    """One filter's row: its number, its patches (uint8 ``(rows, cols, 3)``) with their values, best first, and
    an optional leading picture."""

    filter: int
    patches: Sequence[np.ndarray]
    values: Sequence[float]
    lead: np.ndarray | None = None


def top_picture(rows: Sequence[TopRow], k: int, header: Header | None = None, tile: int = TILE) -> Picture:
    """The rows as one RGB picture: a column of filter numbers, then ``k`` cells per row (empty cells where fewer
    images were seen), each a patch scaled to fit ``tile`` x ``tile`` (small patches enlarged by whole pixels,
    so a 3x3 receptive field stays three crisp blocks) above its value."""
    leads = any(row.lead is not None for row in rows)
    numbers = [text_mask(f"#{row.filter}", _FONT + 2) for row in rows]
    label_width = max((mask.shape[1] for mask in numbers), default=0) + 2 * _GAP
    caption = line_height(_FONT)
    cell_width, cell_height = tile + _GAP, tile + caption + _GAP
    width = label_width + (k + leads) * cell_width + _GAP
    canvas = np.full((len(rows) * cell_height + _GAP, width, 3), _WHITE, dtype=np.uint8)
    for number, (row, mask) in enumerate(zip(rows, numbers, strict=True)):
        top = _GAP + number * cell_height
        _stamp(canvas, mask, top + (tile - mask.shape[0]) // 2, _GAP)
        left = label_width
        if leads:
            if row.lead is not None:
                _place(canvas, fit_to_tile(row.lead, tile), top, left, tile)
                _stamp(canvas, text_mask("looks for", _FONT), top + tile, left)
            left += cell_width
        for slot in range(k):
            if slot < len(row.patches):
                _place(canvas, fit_to_tile(row.patches[slot], tile), top, left, tile)
                _stamp(canvas, text_mask(_value_text(row.values[slot]), _FONT), top + tile, left)
            else:
                canvas[top : top + tile, left : left + tile] = _EMPTY
            left += cell_width
    return compose(canvas, palette("gray"), header)


def _value_text(value: float) -> str:
    """A patch's value in 4 significant digits.

    >>> _value_text(1234.5678), _value_text(0.012345), _value_text(-2.0)
    ('1235', '0.01235', '-2')
    """
    return f"{value:.4g}"


def fit_to_tile(patch: np.ndarray, tile: int = TILE) -> np.ndarray:
    """``patch`` scaled to fit ``tile`` x ``tile``: enlarged by a whole factor (nearest, so pixels stay crisp)
    when that at least doubles it, else resized smoothly to fill the tile."""
    patch = np.asarray(patch, dtype=np.uint8)
    if patch.ndim == 2:
        patch = patch[..., None]
    if patch.shape[-1] == 1:
        patch = np.repeat(patch, 3, axis=-1)
    rows, cols = patch.shape[:2]
    if max(rows, cols) == tile:  # fitted already
        return patch
    factor = tile // max(rows, cols)
    if factor >= 2:
        return np.repeat(np.repeat(patch, factor, axis=0), factor, axis=1)
    scale = tile / max(rows, cols)
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    return np.asarray(Image.fromarray(patch).resize(size, Image.Resampling.LANCZOS))


def _place(canvas: np.ndarray, image: np.ndarray, top: int, left: int, tile: int) -> None:
    """Centre ``image`` in the tile at ``(top, left)``."""
    rows, cols = image.shape[:2]
    down, right = top + (tile - rows) // 2, left + (tile - cols) // 2
    canvas[down : down + rows, right : right + cols] = image


def _stamp(canvas: np.ndarray, mask: np.ndarray, top: int, left: int) -> None:
    rows, cols = mask.shape
    rows, cols = min(rows, canvas.shape[0] - top), min(cols, canvas.shape[1] - left)
    canvas[top : top + rows, left : left + cols][mask[:rows, :cols]] = _INK
