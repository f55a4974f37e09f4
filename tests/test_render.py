"""Grids rendered from handcrafted filters and maps, checked pixel by pixel."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from PIL import Image

from cnnviz import Header, OptionError, feature_map_grid, filter_grid
from cnnviz.draw.marks import INDEX_FONT, label_size
from cnnviz.draw.render import (
    BACKGROUND,
    INK,
    LEVELS,
    MIN_GRID_WIDTH,
    SEPARATOR,
    channel_ranges,
    header_font_size,
    palette,
)
from cnnviz.draw.text import text_mask
from cnnviz.draw.view import FilterView, MapView
from tests.conftest import VERTICAL_LINE

TOP = LEVELS - 1


def test_vertical_line_detector_kernel_renders_as_a_bright_middle_column() -> None:
    kernels = VERTICAL_LINE[None, None]  # one filter, one channel

    picture = filter_grid(kernels, FilterView(norm="global", scale=2))

    column = np.array([0, 0, TOP, TOP, 0, 0], dtype=np.uint8)
    np.testing.assert_array_equal(picture.pixels, np.tile(column, (6, 1)))
    assert picture.palette is not None


def test_filter_grid_rows_are_filters_and_columns_are_channels() -> None:
    # filter f, channel c is the constant value 10*f + c: 2 filters x 3 channels of 1x1 kernels
    kernels = np.array([[[[0.0]], [[1.0]], [[2.0]]], [[[10.0]], [[11.0]], [[12.0]]]])

    picture = filter_grid(kernels, FilterView(norm="global", scale=1), padding=1)

    expected_levels = np.rint(np.array([[0, 1, 2], [10, 11, 12]]) / 12 * TOP)
    assert picture.pixels.shape == (5, 5)  # two rows of three kernels, 3 separators apart (1 between channels)
    np.testing.assert_array_equal(picture.pixels[0, ::2], expected_levels[0])
    np.testing.assert_array_equal(picture.pixels[4, ::2], expected_levels[1])
    assert (picture.pixels[1:4] == SEPARATOR).all() and (picture.pixels[:, 1::2] == SEPARATOR).all()


def test_filter_selection_keeps_the_whole_layer_scale() -> None:
    kernels = np.array([[[[0.0]]], [[[5.0]]], [[[10.0]]]])  # 3 filters, 1 channel, 1x1

    picture = filter_grid(kernels, FilterView(norm="global", scale=1), filters=[1])

    assert picture.pixels.tolist() == [[round(TOP / 2)]]


def test_symmetric_puts_zero_weights_at_the_middle_and_filter_norm_scales_each_filter() -> None:
    kernels = np.array([[[[-2.0, 0.0, 1.0]]], [[[0.0, 50.0, 100.0]]]])  # 2 filters of 1x3

    symmetric = filter_grid(kernels, FilterView(norm="symmetric", scale=1), padding=0).pixels
    per_filter = filter_grid(kernels, FilterView(norm="filter", scale=1), padding=0).pixels

    # 1x3 kernels keep their shape: one row each
    np.testing.assert_array_equal(symmetric[0], np.rint(np.array([0.49, 0.5, 0.505]) * TOP).astype(int))
    np.testing.assert_array_equal(per_filter[0], [0, round(TOP * 2 / 3), TOP])
    np.testing.assert_array_equal(per_filter[-1], [0, round(TOP / 2), TOP])
    assert symmetric.shape == per_filter.shape == (2, 3)


def test_rgb_filters_are_colour_patches() -> None:
    kernels = np.zeros((2, 3, 1, 1))
    kernels[0, 0] = 1.0  # filter 0: pure red
    kernels[1, 2] = 1.0  # filter 1: pure blue

    picture = filter_grid(kernels, FilterView(rgb=True, norm="global", scale=1), padding=1)

    assert picture.palette is None
    assert picture.pixels.shape == (1, 5, 3)  # side by side, a 3-pixel gap between filters
    assert picture.pixels[0, 0].tolist() == [255, 0, 0]
    assert picture.pixels[0, 1:4].tolist() == [[255, 255, 255]] * 3
    assert picture.pixels[0, 4].tolist() == [0, 0, 255]
    with pytest.raises(OptionError, match="3 input channels"):
        filter_grid(np.zeros((2, 4, 1, 1)), FilterView(rgb=True))


def test_feature_map_grid_orders_tiles_by_channel_and_keeps_aspect() -> None:
    maps = np.zeros((2, 3, 3), dtype=np.float32)  # rows=2, cols=3, 3 channels; channel k is bright at column k
    for k in range(3):
        maps[:, k, k] = 1.0

    picture = feature_map_grid(maps, MapView(norm="map", scale=1), padding=1)

    rows, cols = picture.pixels.shape
    assert (rows, cols) == (2 * 2 + 1, 2 * 3 + 1)  # 2x2 grid of 2x3 tiles: non-square maps keep their shape
    for k in range(3):
        top, left = divmod(k, 2)
        tile_pixels = picture.pixels[top * 3 : top * 3 + 2, left * 4 : left * 4 + 3]
        expected = np.zeros((2, 3), dtype=np.uint8)
        expected[:, k] = TOP
        np.testing.assert_array_equal(tile_pixels, expected)
    assert (picture.pixels[3:, 3:] == BACKGROUND).all()  # the unused cell, and the separator before it
    assert (picture.pixels[2] == SEPARATOR).all() and (picture.pixels[:2, 3] == SEPARATOR).all()


def test_a_dead_map_is_flat_and_crossed_out_in_every_norm() -> None:
    maps = np.zeros((4, 4, 2), dtype=np.float32)
    maps[..., 1] = np.arange(16).reshape(4, 4)
    cross = np.eye(4, dtype=bool) | np.eye(4, dtype=bool)[::-1]

    for norm, flat in [("map", 0), ("layer", 0), ("standardize", round(128 / 255 * TOP))]:
        pixels = feature_map_grid(maps, MapView(norm=norm, scale=1), padding=0).pixels
        assert (pixels[:, :4][cross] == SEPARATOR).all() and (pixels[:, :4][~cross] == flat).all(), norm
        assert not (pixels[:, 4:] == SEPARATOR).any(), norm  # the live map is not marked


def test_layer_norm_compares_maps_and_max_maps_caps() -> None:
    maps = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 4.0), np.full((2, 2), 2.0)], axis=-1)
    maps[0, 0, :] = 0.0

    pixels = feature_map_grid(maps, MapView(norm="layer", max_maps=2, scale=1), padding=0).pixels

    assert pixels.shape == (2, 4)
    assert pixels[1, 1] == round(TOP / 4) and pixels[1, 3] == TOP


def test_palette_is_the_colormap_plus_reserved_colours() -> None:
    entries = palette("viridis")

    viridis = matplotlib.colormaps["viridis"]
    assert entries[0].tolist() == [round(c * 255) for c in viridis(0.0)[:3]]
    assert entries[TOP].tolist() == [round(c * 255) for c in viridis(1.0)[:3]]
    assert entries[INK].tolist() == [0, 0, 0] and entries[BACKGROUND].tolist() == [255, 255, 255]
    with pytest.raises(OptionError, match="unknown colormap 'nope'"):
        palette("nope")


def test_header_sits_above_the_grid_with_text_and_colorbar() -> None:
    maps = np.random.default_rng(0).random((8, 8, 4)).astype(np.float32)
    bare = feature_map_grid(maps, MapView(scale=1))

    picture = feature_map_grid(maps, MapView(scale=1), header=Header(["model | layer"], "low", "high"))

    grid_rows, grid_cols = bare.pixels.shape
    strip = picture.pixels[: picture.pixels.shape[0] - grid_rows]
    assert strip.shape[0] > 10
    assert (strip == INK).any()  # text
    bar_rows = [row for row in strip if (row < LEVELS).sum() > 64]
    assert bar_rows, "no colorbar"
    ramp = bar_rows[0][bar_rows[0] < LEVELS]
    assert ramp[0] == 0 and ramp[-1] == TOP and (np.diff(ramp.astype(int)) >= 0).all()
    np.testing.assert_array_equal(picture.pixels[strip.shape[0] :, :grid_cols], bare.pixels)
    assert (picture.pixels[strip.shape[0] :, grid_cols:] == BACKGROUND).all()  # the grid is padded to the width


def test_header_text_never_runs_into_the_colorbar() -> None:
    long_line = "rows: filters 0-7; cols: channels 0-2 | range [-0.449, 0.3565] | norm symmetric"
    picture = feature_map_grid(
        np.zeros((2, 2, 1)), MapView(scale=1), header=Header(["short", long_line], "-0.449", "0.449")
    )

    strip = picture.pixels[: picture.pixels.shape[0] - 2]
    bar_left = np.flatnonzero((strip < LEVELS).any(axis=0)).min()
    assert (strip[:, : bar_left - 12] == INK).any()  # the text is drawn, left of the bar
    assert not (strip[:, bar_left - 12 : bar_left] == INK).any()  # with clear space before the bar and its labels


def test_picture_to_rgb_looks_up_the_palette_for_notebooks() -> None:
    picture = feature_map_grid(np.array([[[0.0], [1.0]], [[1.0], [0.0]]]), MapView(cmap="gray", scale=1))  # one 2x2 map

    rgb = picture.to_rgb()

    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [255, 255, 255]
    assert picture.to_pil().mode == "P"
    shown = Image.open(io.BytesIO(picture._repr_png_()))  # what Jupyter displays
    np.testing.assert_array_equal(np.asarray(shown.convert("RGB")), rgb)


def test_thin_kernels_and_maps_keep_their_shape_when_scaled_up() -> None:
    one_by_seven = filter_grid(
        np.arange(7.0).reshape(1, 1, 1, 7), FilterView(index=False)
    )  # an Inception-style 1x7 kernel
    signal = feature_map_grid(np.arange(100.0).reshape(100, 1), MapView(index=False))  # a 1-D map of 100 steps

    assert one_by_seven.pixels.shape == (36, 252)  # scaled 36x (the cap: 256 on the long side), still 1:7
    assert signal.pixels.shape == (5, 500)  # scaled 5x, held back by the long side's cap of 512


def test_small_grids_are_enlarged_so_the_grid_not_the_header_sets_the_width() -> None:
    maps = np.random.default_rng(0).random((60, 60, 16)).astype(np.float32)  # a 4x4 grid of 60x60 maps

    picture = feature_map_grid(maps, header=Header(["emotion model | conv2d_3 | output 60x60x16"]))

    # 60x60 maps would already be past the 48-pixel minimum; the grid is raised to 640 wide instead
    assert picture.pixels.shape[1] == 4 * 180 + 3
    assert picture.pixels.shape[1] >= MIN_GRID_WIDTH


def test_tiles_are_numbered_where_they_fit_and_not_otherwise() -> None:
    maps = np.zeros((48, 48, 12), dtype=np.float32)
    maps[...] = np.arange(48.0)[None, :, None]  # every map a ramp: none flat

    numbered = feature_map_grid(maps, MapView(scale=1)).pixels
    plain = feature_map_grid(maps, MapView(scale=1, index=False)).pixels
    tiny = feature_map_grid(maps[:8, :8], MapView(scale=1)).pixels

    rows, cols = label_size(range(12))
    assert (numbered[:rows, :cols] == BACKGROUND).sum() > (numbered[:rows, :cols] == INK).sum() > 0
    tile_11 = numbered[2 * 49 : 2 * 49 + rows, 3 * 49 : 3 * 49 + cols]  # grid 3 rows x 4 cols: tile 11 is last
    expected = np.full((rows, cols), BACKGROUND, dtype=np.uint8)
    mask = text_mask("11", INDEX_FONT)
    expected[1 : 1 + mask.shape[0], 2 : 2 + mask.shape[1]][mask] = INK
    np.testing.assert_array_equal(tile_11, expected)
    assert not (plain == INK).any() and not (tiny == INK).any()  # asked off, or tiles too small
    for k in range(12):  # nothing changes outside the number boxes
        top, left = (k // 4) * 49, (k % 4) * 49
        numbered[top : top + rows, left : left + cols] = plain[top : top + rows, left : left + cols]
    np.testing.assert_array_equal(numbered, plain)


def test_filter_rows_wrap_into_a_block_numbered_in_filter_order() -> None:
    kernels = np.arange(16 * 3 * 9, dtype=np.float32).reshape(16, 3, 3, 3)  # 16 filters of three 3x3 kernels

    picture = filter_grid(kernels, FilterView(scale=8))

    rows, cols = picture.pixels.shape
    gutter = label_size(range(16))[1] + 1
    strip = 3 * 24 + 2 + gutter  # three 24-pixel kernels, 2 separators, the number gutter
    assert (rows, cols) == (6 * 24 + 5 * 3, 3 * strip + 2 * 3)  # 6 rows of 3 filters, 3-pixel gaps
    # filter 1 sits right of filter 0, filter 3 below it: order reads left to right, then down
    assert picture.pixels[0, strip + 3 + gutter] == np.rint(27 / (16 * 27 - 1) * TOP)
    assert picture.pixels[27, gutter] == np.rint(81 / (16 * 27 - 1) * TOP)
    assert (picture.pixels[: 5 * 27, strip : strip + 3] == SEPARATOR).all()  # the gap; the last row has blanks


def test_separators_stand_out_from_the_colormap() -> None:
    assert palette("viridis")[SEPARATOR].tolist() == [255, 255, 255]
    assert palette("RdBu_r")[SEPARATOR].tolist() == [0, 0, 0]  # white is its middle: near-zero weights
    assert palette("gray")[SEPARATOR].tolist() == [255, 0, 255]


def test_dead_filters_are_crossed_out() -> None:
    kernels = np.ones((2, 1, 3, 3), dtype=np.float32)
    kernels[1] = 1e-9  # decayed to nothing

    pixels = filter_grid(kernels, FilterView(norm="symmetric", scale=1, index=False)).pixels

    assert pixels.shape == (3, 9)
    assert (pixels[:, :3] == TOP).all()
    assert pixels[:, 6:].tolist() == [[SEPARATOR, 126, SEPARATOR], [126, SEPARATOR, 126], [SEPARATOR, 126, SEPARATOR]]


def test_a_picture_is_one_line_in_a_python_session() -> None:
    assert repr(feature_map_grid(np.zeros((4, 6, 1)), MapView(scale=1))) == "Picture(4 rows x 6 cols, palette)"
    assert repr(filter_grid(np.ones((1, 3, 1, 1)), FilterView(rgb=True, scale=1))) == "Picture(1 rows x 1 cols, RGB)"


def test_the_header_text_grows_with_the_grid() -> None:
    header = Header(["model | layer | output"], "low", "high")

    def text_rows(width: int) -> int:
        picture = feature_map_grid(
            np.random.default_rng(0).random((10, width, 1)), MapView(scale=1, index=False), header=header
        )
        strip = picture.pixels[: picture.pixels.shape[0] - 10]
        inked = np.flatnonzero((strip[:, :200] == INK).any(axis=1))
        return int(inked[-1] - inked[0] + 1)  # the height of the drawn text

    narrow, wide = text_rows(640), text_rows(2400)
    assert header_font_size(640) == 12 and header_font_size(2400) == 28
    assert wide >= 2 * narrow  # 28 px type against 12 px


@pytest.mark.parametrize("shape", [(7, 5, 3), (224, 224, 64), (13, 1, 64), (1, 1, 64), (3, 1, 2000), (15, 17, 16)])
def test_channel_ranges_equal_plain_reductions_for_any_pixel_count(shape: tuple[int, int, int]) -> None:
    # pixels are folded in groups; counts that do not divide evenly leave a remainder that must still count
    maps = np.random.default_rng(sum(shape)).normal(size=shape).astype(np.float32)
    maps[-1, -1, 0] = 50.0  # in the remainder, if there is one
    lo, hi = channel_ranges(maps)
    np.testing.assert_array_equal(lo, maps.min(axis=(0, 1)))
    np.testing.assert_array_equal(hi, maps.max(axis=(0, 1)))
    assert hi[0] == 50.0


def test_channel_ranges_carry_nan_to_its_channel_only() -> None:
    maps = np.ones((15, 17, 16), dtype=np.float32)
    maps[3, 4, 5] = np.nan
    lo, hi = channel_ranges(maps)
    assert np.isnan(lo).tolist() == np.isnan(hi).tolist() == [index == 5 for index in range(16)]


def test_filter_norm_scales_each_whole_filter_not_each_channel() -> None:
    from cnnviz.draw.render import _normalize_kernels

    # (filters, channels, rows, cols): filter 0 spans 0..3 over its two channels, filter 1 spans 0..20
    kernels = np.array([[[[0.0, 1.0]], [[2.0, 3.0]]], [[[0.0, 10.0]], [[10.0, 20.0]]]], dtype=np.float32)

    unit = _normalize_kernels(kernels, "filter", None)

    np.testing.assert_allclose(unit[0, :, 0], [[0.0, 1 / 3], [2 / 3, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(unit[1, :, 0], [[0.0, 0.5], [0.5, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(_normalize_kernels(kernels, "global", None)[0, 1, 0], [0.1, 0.15], rtol=1e-6)


def test_standardize_scales_each_map_by_its_own_mean_and_spread() -> None:
    maps = np.zeros((1, 2, 2), dtype=np.float32)
    maps[0, :, 0] = [1.0, 3.0]  # mean 2, sd 1: mean -+ 1 sd -> 128 -+ 64
    maps[0, :, 1] = [10.0, 50.0]  # mean 30, sd 20: the same levels, as the map's own scale

    pixels = feature_map_grid(maps, MapView(norm="standardize", scale=1), padding=0).pixels

    low, high = round(64 / 255 * TOP), round(192 / 255 * TOP)
    assert pixels.tolist() == [[low, high], [low, high]]  # two maps, one above the other


def test_activation_order_draws_the_most_active_maps_first_numbered_by_channel() -> None:
    from cnnviz.draw.headers import map_header
    from cnnviz.models.graph import ConvLayer

    maps = np.zeros((2, 2, 3), dtype=np.float32)
    maps[..., 0], maps[..., 1], maps[..., 2] = 1.0, 3.0, 2.0  # means 1, 3, 2
    maps[0, 0, :] = 0.0  # one low pixel each, so no map is flat

    by_channel = feature_map_grid(maps, MapView(norm="layer", max_maps=2, scale=1, index=False), padding=0).pixels
    by_activity = feature_map_grid(
        maps, MapView(norm="layer", max_maps=2, scale=1, index=False, order="activation"), padding=0
    ).pixels

    assert by_channel[1].tolist() == [round(TOP / 3), round(TOP / 3), TOP, TOP]  # channels 0, 1; scale 0..3
    assert by_activity[1].tolist() == [TOP, TOP, round(2 * TOP / 3), round(2 * TOP / 3)]  # channels 1, 2
    conv = ConvLayer("c", None, "Conv2D", (3, 3), (2, 2, 3), 0, False)
    header = map_header("m", conv, maps, "x.png", MapView(norm="layer", max_maps=2, order="activation"))
    assert header.lines[1] == "x.png | range [0.00, 3.00] | norm layer | 2 of 3 maps, most active first"
