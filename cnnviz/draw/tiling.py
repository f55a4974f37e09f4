"""Pure numpy tiling: a stack of equally sized tiles into one grid image."""

from __future__ import annotations

import math

import numpy as np


def grid_shape_for(count: int, tile_rows: int = 1, tile_cols: int = 1) -> tuple[int, int]:
    """A near-square (rows, cols) layout for ``count`` tiles of the given size.

    The grid is about as wide as it is high in pixels, leaning wider, so wide tiles stack in fewer columns.

    >>> grid_shape_for(32)
    (6, 6)
    >>> grid_shape_for(64)
    (8, 8)
    >>> grid_shape_for(3, tile_rows=1, tile_cols=10)
    (3, 1)
    """
    if count <= 0:
        return (0, 0)
    aspect = tile_rows / tile_cols
    cols = max(1, min(count, math.ceil(math.sqrt(count * aspect))))
    rows = math.ceil(count / cols)
    return rows, cols


def tile(
    tiles: np.ndarray,
    grid_shape: tuple[int, int] | None = None,
    padding: int = 1,
    fill: int | float | tuple[int, ...] = 0,
    blank: int | float | tuple[int, ...] | None = None,
) -> np.ndarray:
    """Lay ``(K, H, W)`` or ``(K, H, W, C)`` tiles row by row into one grid.

    Args:
        tiles: the tiles, in reading order.
        grid_shape: (rows, cols) of the grid; None for a near-square layout.
        padding: pixels of ``fill`` between tiles (not around the edge).
        fill: the value of separators.
        blank: the value of the cells after the last tile (and the separators between them); ``fill`` when None.

    Returns:
        An array of shape ``(rows*H + (rows-1)*padding, cols*W + (cols-1)*padding[, C])`` and ``tiles``' dtype.

    >>> tile(np.arange(4).reshape(4, 1, 1), padding=1, fill=9)[..., ].tolist()
    [[0, 9, 1], [9, 9, 9], [2, 9, 3]]
    >>> tile(np.arange(3).reshape(3, 1, 1), padding=1, fill=9, blank=7).tolist()
    [[0, 9, 1], [9, 9, 9], [2, 7, 7]]
    """
    tiles = np.asarray(tiles)
    if tiles.ndim not in (3, 4):
        raise ValueError(f"tiles must be (K, H, W) or (K, H, W, C), got shape {tiles.shape}")
    count, height, width = tiles.shape[:3]
    rows, cols = grid_shape if grid_shape is not None else grid_shape_for(count, height, width)
    if rows * cols < count:
        raise ValueError(f"a {rows}x{cols} grid cannot hold {count} tiles")
    out_shape = (
        rows * height + (rows - 1) * padding,
        cols * width + (cols - 1) * padding,
        *tiles.shape[3:],
    )
    out = np.empty(out_shape, dtype=tiles.dtype)
    out[...] = fill
    if blank is not None and count < rows * cols:
        last_row, last_col = divmod(count, cols)
        out[last_row * (height + padding) :, max(0, last_col * (width + padding) - padding) :] = blank
    full_rows = count // cols
    if full_rows:  # all tiles of the full rows in one copy, through a (row, y, col, x) view of their cells
        cells = np.lib.stride_tricks.as_strided(
            out,
            shape=(full_rows, height, cols, width, *tiles.shape[3:]),
            strides=(out.strides[0] * (height + padding), out.strides[0], out.strides[1] * (width + padding))
            + out.strides[1:],
        )
        cells[...] = tiles[: full_rows * cols].reshape(full_rows, cols, *tiles.shape[1:]).swapaxes(1, 2)
    for index in range(full_rows * cols, count):
        col = index - full_rows * cols
        top, left = full_rows * (height + padding), col * (width + padding)
        out[top : top + height, left : left + width] = tiles[index]
    return out


def upscale(x: np.ndarray, factor: int, axes: tuple[int, int] = (-2, -1)) -> np.ndarray:
    """Enlarge an array by an integer factor along two axes with nearest-neighbour repetition.

    >>> upscale(np.array([[1, 2]]), 2).tolist()
    [[1, 1, 2, 2], [1, 1, 2, 2]]
    """
    if factor < 1:
        raise ValueError(f"scale factor must be at least 1, got {factor}")
    if factor == 1:
        return x
    return np.repeat(np.repeat(x, factor, axis=axes[0]), factor, axis=axes[1])
