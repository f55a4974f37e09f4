"""The text of the header strip above each grid: what was drawn, from what, and on which scale."""

from __future__ import annotations

import math

import numpy as np

from cnnviz.draw.render import Header, channel_ranges, dead_filters, drawn_channels, flat_ranges
from cnnviz.draw.view import FilterView, MapView
from cnnviz.models.graph import ConvLayer, shape_text

#: What the drawn kernels are, for layers whose kernel is not one plain stack of filters.
_KERNEL_NOTES = {
    "DepthwiseConv1D": " (one per input channel and multiplier)",
    "DepthwiseConv2D": " (one per input channel and multiplier)",
    "SeparableConv1D": " (the depthwise part)",
    "SeparableConv2D": " (the depthwise part)",
}


def format_values(*values: float) -> list[str]:
    """Numbers shown side by side (a range, a colorbar's ends) at one precision: three significant digits of the
    largest magnitude, or scientific notation for very small or large ones.

    >>> format_values(-0.449, 0.3566), format_values(0.0, 61.79), format_values(0.0, 2e-05), format_values(0.0, 0.0)
    (['-0.449', '0.357'], ['0.0', '61.8'], ['0.00e+00', '2.00e-05'], ['0', '0'])
    """
    largest = max((abs(value) for value in values), default=0.0)
    if largest == 0.0:
        return ["0" for _ in values]
    if not 1e-3 <= largest < 1e6:
        return [f"{value:.2e}" for value in values]
    decimals = max(0, 2 - math.floor(math.log10(largest)))
    return [f"{value:.{decimals}f}" for value in values]


def index_span(indices: list[int]) -> str:
    """``0-63`` for a run of indices, else the first six and ``...`` for more.

    >>> index_span([0, 1, 2]), index_span([1, 5, 9])
    ('0-2', '1,5,9')
    """
    if indices == list(range(indices[0], indices[-1] + 1)):
        return f"{indices[0]}-{indices[-1]}"
    shown = ",".join(str(i) for i in indices[:6])
    return shown + ("..." if len(indices) > 6 else "")


def _token_note(conv: ConvLayer) -> str:
    """What a transformer block's maps are (:attr:`ConvLayer.tokens`); nothing for a conv layer."""
    if conv.tokens is None:
        return ""
    return " | patch tokens" + (" (class token left out)" if conv.tokens == 1 else f" ({conv.tokens} left out)")


def map_header(
    model_label: str,
    conv: ConvLayer,
    maps: np.ndarray,
    image_name: str,
    view: MapView,
    *,
    fit: str = "none",
    ranges: tuple[np.ndarray, np.ndarray] | None = None,
) -> Header:
    """The header of a feature-map grid.

    Args:
        model_label: how to name the model.
        conv: the layer drawn.
        maps: its activations for one image, channels last, before normalisation.
        image_name: the image's file name.
        view: how the grid is drawn: its ``norm`` labels the colorbar's ends, ``max_maps`` and ``order`` say which
            maps are drawn (:func:`cnnviz.draw.render.drawn_channels`).
        fit: how the image was given the model's input size (``crop``, ``pad``, ``stretch``), or ``none`` when
            it kept its own.
        ranges: the maps' :func:`cnnviz.draw.render.channel_ranges`, if known already.
    """
    norm, order = view.norm, view.order
    channels = maps.shape[-1]
    numbers = drawn_channels(maps, view.max_maps, order)
    shown = len(numbers)
    mins, maxes = ranges if ranges is not None else channel_ranges(maps)
    lo, hi = format_values(float(mins.min()), float(maxes.max()))
    ends = {"map": ("map min", "map max"), "layer": (lo, hi), "standardize": ("mean-2sd", "mean+2sd")}
    low, high = ends[norm]
    flat = int(flat_ranges(mins[numbers], maxes[numbers]).sum())
    return Header(
        lines=[
            f"{model_label} | {conv.path} ({conv.kind}) | output {shape_text(maps.shape)}" + _token_note(conv),
            f"{image_name}{'' if fit == 'none' else f' ({fit})'} | range [{lo}, {hi}] | norm {norm} | "
            f"{shown} of {channels} maps"
            + (", most active first" if order == "activation" else "")
            + (f", {flat} flat (crossed out)" if flat else ""),
        ],
        low=low,
        high=high,
    )


def filter_header(
    model_label: str,
    conv: ConvLayer,
    kernels: np.ndarray,
    filters: list[int],
    channels: list[int],
    view: FilterView,
) -> Header:
    """The header of a filter grid.

    Args:
        model_label: how to name the model.
        conv: the layer drawn.
        kernels: all its kernels, ``(filters, channels, rows, cols)``, before normalisation.
        filters: the filters drawn (rows).
        channels: the input channels drawn (columns).
        view: how the grid is drawn: its ``norm`` labels the colorbar's ends; ``rgb`` patches have no colorbar; a
            fixed ``value_range`` is shown at the colorbar's ends and said in the text.
    """
    norm, rgb, value_range = view.norm, view.rgb, view.value_range
    count, depth, kh, kw = kernels.shape
    lo, hi = float(kernels.min()), float(kernels.max())
    low_text, high_text = format_values(lo, hi)
    scale_lo, scale_hi = value_range if value_range is not None else (lo, hi)
    bound = max(abs(scale_lo), abs(scale_hi))
    scale_lo_text, scale_hi_text, bound_text = format_values(scale_lo, scale_hi, bound)
    ends = {
        "global": (scale_lo_text, scale_hi_text),
        "filter": ("filter min", "filter max"),
        "symmetric": ("-" + bound_text, bound_text),
    }
    low, high = ends[norm]
    fixed = "" if value_range is None else f", scale fixed at [{low}, {high}]"
    if rgb:
        layout = f"filters {index_span(filters)} as RGB patches"
    else:
        layout = f"filters {index_span(filters)} (numbered), each a row of channels {index_span(channels)}"
    dead = int(dead_filters(kernels[filters]).sum())
    return Header(
        lines=[
            f"{model_label} | {conv.path} ({conv.kind}) | kernel {kh}x{kw}, {depth} in, {count} filters"
            + _KERNEL_NOTES.get(conv.kind, ""),
            f"{layout} | range [{low_text}, {high_text}] | norm {norm}{fixed}"
            + (f" | {dead} dead (crossed out)" if dead else ""),
        ],
        low=low,
        high=high,
        colorbar=not rgb,
    )
