"""The text of the header strip above each grid: what was drawn, from what, and on which scale."""

from __future__ import annotations

import numpy as np

from cnnviz.graph import ConvLayer, shape_text
from cnnviz.render import Header

#: What the drawn kernels are, for layers whose kernel is not one plain stack of filters.
_KERNEL_NOTES = {
    "DepthwiseConv1D": " (one per input channel and multiplier)",
    "DepthwiseConv2D": " (one per input channel and multiplier)",
    "SeparableConv1D": " (the depthwise part)",
    "SeparableConv2D": " (the depthwise part)",
}


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _span(indices: list[int]) -> str:
    """``0-63`` for a run of indices, else the first few.

    >>> _span([0, 1, 2]), _span([1, 5, 9])
    ('0-2', '1,5,9')
    """
    if indices == list(range(indices[0], indices[-1] + 1)):
        return f"{indices[0]}-{indices[-1]}"
    shown = ",".join(str(i) for i in indices[:6])
    return shown + ("..." if len(indices) > 6 else "")


def map_header(
    model_label: str,
    conv: ConvLayer,
    maps: np.ndarray,
    image_name: str,
    *,
    norm: str,
    max_maps: int | None,
    fit: str = "none",
) -> Header:
    """The header of a feature-map grid.

    Args:
        model_label: how to name the model.
        conv: the layer drawn.
        maps: its activations for one image, channels last, before normalisation.
        image_name: the image's file name.
        norm: ``map``, ``layer`` or ``standardize``; labels the colorbar's ends.
        max_maps: the cap on maps drawn, if any.
        fit: how the image was given the model's input size (``crop``, ``pad``, ``stretch``), or ``none`` when
            it kept its own.
    """
    channels = maps.shape[-1]
    shown = channels if max_maps is None else min(max_maps, channels)
    lo, hi = float(maps.min()), float(maps.max())
    ends = {"map": ("map min", "map max"), "layer": (_fmt(lo), _fmt(hi)), "standardize": ("mean-2sd", "mean+2sd")}
    low, high = ends[norm]
    return Header(
        lines=[
            f"{model_label} | {conv.path} ({conv.kind}) | output {shape_text(maps.shape)}",
            f"{image_name}{'' if fit == 'none' else f' ({fit})'} | range [{_fmt(lo)}, {_fmt(hi)}] | norm {norm} | "
            f"{shown} of {channels} maps",
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
    *,
    norm: str,
    rgb: bool,
) -> Header:
    """The header of a filter grid.

    Args:
        model_label: how to name the model.
        conv: the layer drawn.
        kernels: all its kernels, ``(filters, channels, rows, cols)``, before normalisation.
        filters: the filters drawn (rows).
        channels: the input channels drawn (columns).
        norm: ``global``, ``filter`` or ``symmetric``; labels the colorbar's ends.
        rgb: whether filters are drawn as colour patches (no colorbar then).
    """
    count, depth, kh, kw = kernels.shape
    lo, hi = float(kernels.min()), float(kernels.max())
    bound = max(abs(lo), abs(hi))
    ends = {
        "global": (_fmt(lo), _fmt(hi)),
        "filter": ("filter min", "filter max"),
        "symmetric": (_fmt(-bound), _fmt(bound)),
    }
    low, high = ends[norm]
    if rgb:
        layout = f"filters {_span(filters)} as RGB patches"
    else:
        layout = f"rows: filters {_span(filters)}; cols: channels {_span(channels)}"
    return Header(
        lines=[
            f"{model_label} | {conv.path} ({conv.kind}) | kernel {kh}x{kw}, {depth} in, {count} filters"
            + _KERNEL_NOTES.get(conv.kind, ""),
            f"{layout} | range [{_fmt(lo)}, {_fmt(hi)}] | norm {norm}",
        ],
        low=low,
        high=high,
        colorbar=not rgb,
    )
