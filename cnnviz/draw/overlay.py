"""Heat drawn over the image it came from: Grad-CAM heatmaps and feature-map overlays.

A heat value h in 0..1 takes its colour from a colormap and covers the image with opacity ``alpha * sqrt(h)``:
where nothing fires the photo shows through, and where the layer fires the colour dominates (the square root
keeps moderate heat visible; ReLU maps are mostly small). Under the heat the photo is muted, most of its colour
taken out, so that the colormap's colours stand apart from the photo's own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from cnnviz.draw.marks import cross_out, number_corners, numbers_fit
from cnnviz.draw.render import (
    LEVELS,
    MIN_GRID_WIDTH,
    Header,
    Picture,
    compose,
    flat_ranges,
    map_levels,
    palette,
    separator_colour,
)
from cnnviz.draw.text import line_height, text_mask
from cnnviz.draw.tiling import grid_shape_for, tile
from cnnviz.draw.view import MapView
from cnnviz.methods.resample import resize_maps

#: How strongly the hottest places are coloured (0: not at all, 1: colour only).
DEFAULT_ALPHA = 0.6
#: The heat's colormap where none is chosen, as Grad-CAM pictures have it.
HEAT_CMAP = "jet"
#: How much colour is taken out of the photo under the heat (0: none, 1: grey).
MUTE = 0.7
#: Overlay tiles are drawn with this many pixels on their long side, whatever the input size.
OVERLAY_TILE = 192
#: A Grad-CAM picture shows the image at least this many pixels on its long side.
MIN_PANEL = 320
#: Panels per row of a picture of several heatmaps at most; more wrap onto further rows.
MAX_COLUMNS = 5
_BLACK, _WHITE = (0, 0, 0), (255, 255, 255)


def blend(
    pixels: np.ndarray, heat: np.ndarray, cmap: str = HEAT_CMAP, alpha: float = DEFAULT_ALPHA, mute: float = MUTE
) -> np.ndarray:
    """Colour ``heat`` over ``pixels``, muted.

    Args:
        pixels: ``(rows, cols, 3)`` 0..255 (any dtype), or ``(rows, cols)`` / ``(rows, cols, 1)`` grey.
        heat: ``(rows, cols)`` values in 0..1 (clipped).
        cmap: a matplotlib colormap name.
        alpha: the opacity of the colour where ``heat`` is 1.
        mute: how much of the photo's colour to take out (towards its grey level) first.

    Returns:
        ``(rows, cols, 3)`` uint8.

    >>> blend(np.zeros((1, 2, 3)), np.array([[0.0, 1.0]]), "gray", alpha=0.5).tolist()
    [[[0, 0, 0], [128, 128, 128]]]
    >>> blend(np.array([[[200, 100, 0]]]), np.zeros((1, 1)), mute=0.5).tolist()  # grey level 0.299*200+0.587*100
    [[[159, 109, 59]]]
    """
    image = np.asarray(pixels, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    unit = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0.0, 1.0)
    colours = palette(cmap)[np.rint(unit * (LEVELS - 1)).astype(np.intp)].astype(np.float32)
    grey = (image @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    image = image * (1.0 - mute) + grey * mute
    opacity = (alpha * np.sqrt(unit))[..., None]
    return np.rint(np.clip(image * (1.0 - opacity) + colours * opacity, 0.0, 255.0)).astype(np.uint8)


def _resized_image(pixels: np.ndarray, rows: int, cols: int) -> np.ndarray:
    image = np.asarray(pixels, dtype=np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.shape[:2] == (rows, cols):
        return image
    mode_pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    resized = Image.fromarray(mode_pixels).resize((cols, rows), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def _panel_size(rows: int, cols: int, long_side: int) -> tuple[int, int]:
    scale = long_side / max(rows, cols)
    return max(1, round(rows * scale)), max(1, round(cols * scale))


#: The overlay's view where none is given: heat in :data:`HEAT_CMAP`.
OVERLAY_VIEW = MapView(cmap=HEAT_CMAP)


def overlay_grid(
    maps: np.ndarray,
    pixels: np.ndarray,
    view: MapView = OVERLAY_VIEW,
    *,
    alpha: float = DEFAULT_ALPHA,
    header: Header | None = None,
    ranges: tuple[np.ndarray, np.ndarray] | None = None,
    tile_size: int = OVERLAY_TILE,
) -> Picture:
    """One image's feature maps of one layer, each upsampled and blended onto the image, as a grid.

    Args:
        maps: ``(rows, cols, channels)`` activations, channels last.
        pixels: the image as the model saw it (fitted, before preprocessing), ``(rows, cols[, channels])`` 0..255.
        view: how each map becomes heat (``norm``, as in :func:`cnnviz.draw.render.feature_map_grid`), its colormap,
            which maps are drawn in which order, and whether tiles are numbered.
        alpha: the opacity of the hottest places.
        header: a text strip above the grid.
        ranges: the maps' :func:`cnnviz.draw.render.channel_ranges`, if known.
        tile_size: each tile's long side in pixels.

    Returns:
        An RGB :class:`Picture`; tiles are ``tile_size`` pixels on their long side, flat maps crossed out.
    """
    from cnnviz.draw.render import channel_ranges, drawn_channels, select_channels

    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"overlays need 2-D maps, (rows, cols, channels); got {maps.shape}")
    lo, hi = ranges if ranges is not None else channel_ranges(maps)
    numbers = drawn_channels(maps, view.max_maps, view.order)
    maps, lo, hi = select_channels(maps, lo, hi, numbers)
    cmap = view.cmap
    image = np.asarray(pixels)
    rows, cols = _panel_size(image.shape[0], image.shape[1], tile_size)
    heat = resize_maps(map_levels(maps, lo, hi, view.norm).astype(np.float32) / (LEVELS - 1), rows, cols)
    underlay = _resized_image(image, rows, cols)
    tiles = np.stack([blend(underlay, heat[..., k], cmap, alpha) for k in range(maps.shape[-1])])
    entries = palette(cmap)
    separator = separator_colour(entries[:LEVELS])
    tiles = cross_out(tiles, flat_ranges(lo, hi), separator)
    if view.index and len(tiles) and numbers_fit(rows, cols, numbers):
        tiles = number_corners(tiles, numbers, _BLACK, _WHITE)
    grid = tile(tiles, grid_shape_for(len(tiles), rows, cols), padding=2, fill=separator, blank=_WHITE)
    return compose(grid, entries, header)


def heatmap_picture(
    pixels: np.ndarray | None,
    heatmap: np.ndarray,
    *,
    cmap: str = HEAT_CMAP,
    alpha: float = DEFAULT_ALPHA,
    header: Header | None = None,
) -> Picture:
    """A Grad-CAM picture: the image on the left and the heatmap (``(rows, cols)`` >= 0 at the image's size) blended
    onto it on the right, without captions: :func:`heatmaps_picture` of one heatmap."""
    return heatmaps_picture(pixels, [heatmap], cmap=cmap, alpha=alpha, header=header)


def heatmaps_picture(
    pixels: np.ndarray | None,
    heatmaps: Sequence[np.ndarray],
    *,
    titles: Sequence[str] | None = None,
    cmap: str = HEAT_CMAP,
    alpha: float = DEFAULT_ALPHA,
    header: Header | None = None,
) -> Picture:
    """The image, then each heatmap blended onto it, side by side: one column per attribution method.

    Args:
        pixels: the image as the model saw it, ``(rows, cols[, channels])`` 0..255; None for inputs that are not
            images (each heatmap is then drawn alone, in the colormap, and there is no image column).
        heatmaps: ``(rows, cols)`` each, at the image's size; each drawn relative to its own maximum, its negative
            part as 0.
        titles: a caption under each column (the image's first), or None for none.
        cmap: the heat's colormap.
        alpha: the opacity of the hottest places.
        header: a text strip above.

    Returns:
        An RGB :class:`Picture`, each panel at least :data:`MIN_PANEL` pixels on its long side.
    """
    units = []
    for heatmap in heatmaps:
        heat = np.asarray(heatmap, dtype=np.float32)
        peak = float(heat.max(initial=0.0))
        units.append(np.maximum(heat, 0.0) / peak if peak > 0 else np.zeros_like(heat))
    rows, cols = units[0].shape
    factor = max(1, math.ceil(MIN_PANEL / max(rows, cols)))
    if pixels is None:
        panels = [palette(cmap)[np.rint(unit * (LEVELS - 1)).astype(np.intp)] for unit in units]
    else:
        image = blend(pixels, np.zeros_like(units[0]), cmap, 0.0, mute=0.0)
        panels = [image, *(blend(pixels, unit, cmap, alpha) for unit in units)]
    enlarged = [np.repeat(np.repeat(panel, factor, axis=0), factor, axis=1) for panel in panels]
    if titles is not None:
        enlarged = [_captioned(panel, title) for panel, title in zip(enlarged, titles, strict=True)]
    rows = math.ceil(len(enlarged) / MAX_COLUMNS)
    shape = (rows, math.ceil(len(enlarged) / rows))  # rows as even as they can be: 11 panels are 4, 4 and 3
    grid = tile(np.stack(enlarged), shape, padding=8, fill=_WHITE, blank=_WHITE)
    wide = max(0, MIN_GRID_WIDTH - grid.shape[1])
    if wide:
        grid = np.concatenate([grid, np.full((grid.shape[0], wide, 3), 255, dtype=np.uint8)], axis=1)
    return compose(grid, palette(cmap), header)


def _captioned(panel: np.ndarray, title: str) -> np.ndarray:
    """``panel`` with ``title`` in black on a white strip below it, centred (cut to the panel's width)."""
    size = max(12, min(20, panel.shape[1] // 16))
    ink = text_mask(title, size)[:, : panel.shape[1]]
    strip = np.full((line_height(size) + 6, panel.shape[1], 3), 255, dtype=np.uint8)
    left = (panel.shape[1] - ink.shape[1]) // 2
    strip[3 : 3 + ink.shape[0], left : left + ink.shape[1]][ink] = 0
    return np.concatenate([panel, strip], axis=0)
