"""The header text above grids, and option checks that come before any model work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnviz import FilterOptions, MapOptions, OptionError, conv_layers, render_feature_maps, render_filters
from cnnviz.draw.headers import filter_header, map_header
from cnnviz.draw.view import FilterView, MapView


def test_map_header_names_model_layer_shape_range_and_scale(line_model) -> None:
    conv = conv_layers(line_model)[0]
    maps = np.zeros((6, 6, 1), dtype=np.float32)
    maps[:, 2:4] = 3.0

    header = map_header("line.keras", conv, maps, "line.png", MapView(norm="layer", max_maps=None))

    assert list(header.lines) == [
        "line.keras | detector (Conv2D) | output 6x6x1",
        "line.png | range [0.00, 3.00] | norm layer | 1 of 1 maps",
    ]
    assert (header.low, header.high, header.colorbar) == ("0.00", "3.00", True)
    capped = map_header("m", conv, np.ones((2, 2, 40)), "x.jpg", MapView(norm="map", max_maps=8), fit="crop")
    assert capped.lines[1] == "x.jpg (crop) | range [1.00, 1.00] | norm map | 8 of 40 maps, 8 flat (crossed out)"
    assert (capped.low, capped.high) == ("map min", "map max")


def test_filter_header_describes_the_grid_layout(line_model) -> None:
    conv = conv_layers(line_model)[0]
    kernels = np.array([[[[-0.5, 0.25]]], [[[0.0, 0.125]]]])  # 2 filters, 1 channel, 1x2

    header = filter_header("m", conv, kernels, [0, 1], [0], FilterView(norm="symmetric", rgb=False))

    assert list(header.lines) == [
        "m | detector (Conv2D) | kernel 1x2, 1 in, 2 filters",
        "filters 0-1 (numbered), each a row of channels 0-0 | range [-0.500, 0.250] | norm symmetric",
    ]
    assert (header.low, header.high) == ("-0.500", "0.500")
    dead = filter_header("m", conv, np.array([[[[1.0]]], [[[0.0]]]]), [0, 1], [0], FilterView(norm="global", rgb=False))
    assert dead.lines[1].endswith("| range [0.00, 1.00] | norm global | 1 dead (crossed out)")
    rgb = filter_header("m", conv, np.zeros((9, 3, 3, 3)), [1, 5, 7], [0, 1, 2], FilterView(norm="global", rgb=True))
    assert rgb.lines[1].startswith("filters 1,5,7 as RGB patches") and not rgb.colorbar


def test_bad_norm_or_colormap_is_refused_before_any_work(line_model, tmp_path: Path) -> None:
    # refused when the options are made, whoever makes them
    with pytest.raises(OptionError, match="unknown feature map normalisation 'global'; choose one of: map, layer"):
        render_feature_maps(line_model, [], tmp_path, MapOptions(norm="global"))
    with pytest.raises(OptionError, match="unknown colormap 'viridiss'"):
        render_filters(line_model, tmp_path, FilterOptions(layer="detector", cmap="viridiss"))
    assert list(tmp_path.iterdir()) == []


def test_filter_header_says_which_part_of_a_separable_kernel_is_drawn(keras) -> None:
    model = keras.Sequential([keras.Input((8, 8, 2)), keras.layers.SeparableConv2D(4, 3, name="sep")])
    conv = conv_layers(model)[0]

    header = filter_header("m", conv, np.zeros((2, 1, 3, 3)), [0, 1], [0], FilterView(norm="global", rgb=False))

    assert header.lines[0] == "m | sep (SeparableConv2D) | kernel 3x3, 1 in, 2 filters (the depthwise part)"


def test_standardize_labels_the_colorbar_ends_two_deviations_from_the_mean(line_model) -> None:
    conv = conv_layers(line_model)[0]

    header = map_header("m", conv, np.arange(8.0).reshape(2, 2, 2), "x.jpg", MapView(norm="standardize", max_maps=None))

    assert (header.low, header.high) == ("mean-2sd", "mean+2sd")
    assert header.lines[1] == "x.jpg | range [0.00, 7.00] | norm standardize | 2 of 2 maps"


def test_a_long_list_of_filters_is_shortened_to_its_first_six(line_model) -> None:
    conv = conv_layers(line_model)[0]
    kernels = np.zeros((16, 1, 3, 3), dtype=np.float32)

    def layout(filters: list[int]) -> str:
        return (
            filter_header("m", conv, kernels, filters, [0], FilterView(norm="global", rgb=False))
            .lines[1]
            .split(" | ")[0]
        )

    assert layout([0, 2, 4, 6, 8, 10]) == "filters 0,2,4,6,8,10 (numbered), each a row of channels 0-0"
    assert layout([0, 2, 4, 6, 8, 10, 12]) == "filters 0,2,4,6,8,10... (numbered), each a row of channels 0-0"
    assert layout([3, 4, 5, 6, 7, 8, 9]) == "filters 3-9 (numbered), each a row of channels 0-0"
