"""Tiling: golden arrays from small np.arange inputs."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz.draw.tiling import grid_shape_for, tile, upscale


def test_tile_lays_tiles_row_by_row_with_padding_and_fill() -> None:
    tiles = np.arange(12).reshape(3, 2, 2)

    grid = tile(tiles, padding=1, fill=-1)

    np.testing.assert_array_equal(
        grid,
        [
            [0, 1, -1, 4, 5],
            [2, 3, -1, 6, 7],
            [-1, -1, -1, -1, -1],
            [8, 9, -1, -1, -1],
            [10, 11, -1, -1, -1],
        ],
    )


def test_tile_keeps_non_square_tiles_rows_and_cols() -> None:
    tiles = np.arange(2 * 1 * 3).reshape(2, 1, 3)  # 1 row x 3 cols each

    grid = tile(tiles, grid_shape=(2, 1), padding=0)

    np.testing.assert_array_equal(grid, [[0, 1, 2], [3, 4, 5]])


def test_tile_colour_tiles_and_explicit_grid() -> None:
    tiles = np.arange(2 * 1 * 1 * 3).reshape(2, 1, 1, 3)

    grid = tile(tiles, grid_shape=(1, 2), padding=1, fill=(9, 9, 9))

    assert grid.shape == (1, 3, 3)
    np.testing.assert_array_equal(grid[0], [[0, 1, 2], [9, 9, 9], [3, 4, 5]])


def test_tile_rejects_too_small_grid_and_bad_rank() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        tile(np.zeros((5, 2, 2)), grid_shape=(2, 2))
    with pytest.raises(ValueError, match="must be"):
        tile(np.zeros((2, 2)))


@pytest.mark.parametrize(
    ("count", "tile_rows", "tile_cols", "expected"),
    [(1, 1, 1, (1, 1)), (64, 1, 1, (8, 8)), (512, 14, 14, (23, 23)), (32, 1, 1, (6, 6)), (8, 1, 16, (8, 1))],
)
def test_grid_shape_is_near_square_in_pixels(count: int, tile_rows: int, tile_cols: int, expected: tuple) -> None:
    rows, cols = grid_shape_for(count, tile_rows, tile_cols)
    assert (rows, cols) == expected
    assert rows * cols >= count


def test_upscale_repeats_pixels() -> None:
    np.testing.assert_array_equal(
        upscale(np.array([[[1, 2], [3, 4]]]), 2)[0], [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    )
    with pytest.raises(ValueError):
        upscale(np.zeros((2, 2)), 0)


@pytest.mark.parametrize(
    ("count", "grid", "padding", "colour"),
    [(7, (3, 3), 2, False), (9, (3, 3), 1, False), (5, (2, 4), 0, True), (4, (1, 4), 3, True), (3, (4, 1), 1, False)],
)
def test_tile_puts_every_tile_where_a_cell_by_cell_layout_would(
    count: int, grid: tuple[int, int], padding: int, colour: bool
) -> None:
    # full rows are copied through a strided view in one go; the last, partial row tile by tile
    rng = np.random.default_rng(count)
    tiles = rng.integers(0, 200, size=(count, 4, 6, 3) if colour else (count, 4, 6), dtype=np.uint8)
    out = tile(tiles, grid_shape=grid, padding=padding, fill=250, blank=251)
    rows, cols = grid
    assert out.shape[:2] == (rows * 4 + (rows - 1) * padding, cols * 6 + (cols - 1) * padding)
    expected = np.full_like(out, 250)
    last_row, last_col = divmod(count, cols)
    if count < rows * cols:
        expected[last_row * (4 + padding) :, max(0, last_col * (6 + padding) - padding) :] = 251
    for index in range(count):
        top, left = (index // cols) * (4 + padding), (index % cols) * (6 + padding)
        expected[top : top + 4, left : left + 6] = tiles[index]
    np.testing.assert_array_equal(out, expected)
    assert out.flags.c_contiguous
