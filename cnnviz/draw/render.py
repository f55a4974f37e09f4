"""Turn activations and kernels into pictures: normalise, colour with a colormap, tile, add a header strip.

A picture is a palette image: one byte per pixel indexing a 256-entry palette whose first :data:`LEVELS` entries
are the colormap and whose last entries are reserved for separators, the header background and its text. Only
``--rgb`` filter grids are true colour.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from cnnviz.draw.marks import cross_out, label_size, number_corners, number_gutters, numbers_fit
from cnnviz.draw.normalize import EPSILON, minmax, range_levels, scale_range, standardize, symmetric, to_levels
from cnnviz.draw.png import encode_png
from cnnviz.draw.text import line_height, text_mask
from cnnviz.draw.tiling import grid_shape_for, tile, upscale
from cnnviz.draw.view import FilterView, MapView
from cnnviz.errors import OptionError

#: Palette entries used by the colormap; the indices from here on are reserved.
LEVELS = 252
SEPARATOR = 252
BACKGROUND = 253
INK = 254
_WHITE = (255, 255, 255)
_RESERVED_COLOURS = {BACKGROUND: _WHITE, INK: (0, 0, 0)}
#: Separators (and crosses over flat tiles) take the first of these that stands apart from every colour of the
#: colormap (white vanishes between near-zero weights in RdBu_r, black at the dark end of magma), else the one
#: farthest from them.
_SEPARATOR_CHOICES = [_WHITE, (0, 0, 0), (128, 128, 128), (255, 0, 255), (0, 200, 255)]
_DISTINCT = 100.0

# Feature maps are (H, W, K), channels last as the model gives them, with their per-channel minima and maxima
# (K,): "map" and "standardize" work per map, "layer" over all of them. Each gives the palette levels.
_MAP_LEVELS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "map": lambda maps, lo, hi: range_levels(maps, lo, hi, LEVELS),
    "layer": lambda maps, lo, hi: range_levels(maps, lo.min(initial=np.inf), hi.max(initial=-np.inf), LEVELS),
    "standardize": lambda maps, lo, hi: to_levels(standardize(maps, axis=(0, 1)), LEVELS, overwrite=True),
}
# Kernels are (F, C, kh, kw): "filter" works per filter, the others over the whole layer.
_FILTER_NORMALIZERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "global": lambda kernels: minmax(kernels, axis=None),
    "filter": lambda kernels: minmax(kernels, axis=(1, 2, 3)),
    "symmetric": lambda kernels: symmetric(kernels, axis=None),
}
MAP_NORMS = tuple(_MAP_LEVELS)
FILTER_NORMS = tuple(_FILTER_NORMALIZERS)
#: Automatic scaling aims for tiles at least this many pixels on their short side ...
MIN_MAP_TILE = 48
MIN_KERNEL_TILE = 24
#: ... without letting their long side grow past this many (a 1-D map is a long, one-pixel-high strip).
MAX_MAP_TILE = 512
MAX_KERNEL_TILE = 256

#: Deflate level for PNGs. Palette grids compress well at any level; level 1 is the fastest that still finds
#: repeated strings (bench/bench_png.py measures the levels).
PNG_COMPRESS_LEVEL = 1

#: Auto-scaled grids are enlarged to at least this width, so that a few small maps or kernels are not a postage
#: stamp under a header that is wider than they are.
MIN_GRID_WIDTH = 640
#: A map or filter whose values span less than this fraction of its layer's largest magnitude is drawn crossed out.
FLAT_RELATIVE = 1e-4
#: Gap between one filter's row of kernels and the next, in separator widths.
FILTER_GAP = 3


@dataclass(frozen=True, repr=False)
class Picture:
    """An image ready to be written.

    Attributes:
        pixels: uint8, either ``(rows, cols)`` palette indices or ``(rows, cols, 3)`` RGB.
        palette: ``(256, 3)`` uint8 RGB entries for palette pictures; None for RGB pictures.
    """

    pixels: np.ndarray
    palette: np.ndarray | None

    def __repr__(self) -> str:
        rows, cols = self.pixels.shape[:2]
        return f"Picture({rows} rows x {cols} cols, {'palette' if self.palette is not None else 'RGB'})"

    def to_pil(self) -> Image.Image:
        """The picture as a Pillow image: mode "P" with its palette, or "RGB"."""
        if self.palette is None:
            return Image.fromarray(self.pixels, mode="RGB")
        image = Image.fromarray(self.pixels, mode="P")
        image.putpalette(self.palette.reshape(-1).tolist())
        return image

    def to_rgb(self) -> np.ndarray:
        """The picture as an ``(rows, cols, 3)`` RGB array."""
        return self.pixels if self.palette is None else self.palette[self.pixels]

    def png_bytes(self, compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
        """The picture encoded as PNG (:func:`cnnviz.draw.png.encode_png`); the same picture always gives the same
        bytes."""
        return encode_png(self.pixels, self.palette, compress_level)

    def _repr_png_(self) -> bytes:
        """PNG bytes for Jupyter, which shows a Picture left at the end of a cell as the image itself."""
        return self.png_bytes()


@dataclass(frozen=True)
class Header:
    """The text strip above a grid: a few lines of text and a colorbar with labels at its two ends.

    ``colorbar=False`` leaves the bar out, for pictures whose colours are not a colormap (``--rgb`` filters).
    """

    lines: Sequence[str]
    low: str = ""
    high: str = ""
    colorbar: bool = True


def palette(cmap: str) -> np.ndarray:
    """A ``(256, 3)`` uint8 palette: ``cmap`` sampled at :data:`LEVELS` points, then the reserved colours.

    Raises:
        OptionError: matplotlib has no colormap of that name.
    """
    import matplotlib

    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError as exc:
        raise OptionError(f"unknown colormap '{cmap}'; try viridis, gray, magma, inferno, RdBu_r") from exc
    entries = np.zeros((256, 3), dtype=np.uint8)
    rgba = colormap(np.linspace(0.0, 1.0, LEVELS))
    entries[:LEVELS] = np.rint(np.asarray(rgba)[:, :3] * 255.0).astype(np.uint8)
    entries[SEPARATOR] = separator_colour(entries[:LEVELS])
    for index, colour in _RESERVED_COLOURS.items():
        entries[index] = colour
    return entries


def separator_colour(colours: np.ndarray) -> tuple[int, int, int]:
    """The first colour of :data:`_SEPARATOR_CHOICES` at least :data:`_DISTINCT` (in RGB) from every one of
    ``colours``, else the one farthest from them.

    >>> separator_colour(np.array([[255, 255, 255], [200, 200, 200]])), separator_colour(np.array([[0, 0, 0]]))
    ((0, 0, 0), (255, 255, 255))
    >>> separator_colour(np.linspace(0, 255, 50)[:, None].repeat(3, axis=1))  # a gray ramp
    (255, 0, 255)
    """
    table = np.asarray(colours, dtype=np.float64).reshape(-1, 3)
    distances = [float(np.linalg.norm(table - np.asarray(choice), axis=1).min()) for choice in _SEPARATOR_CHOICES]
    for choice, distance in zip(_SEPARATOR_CHOICES, distances, strict=True):
        if distance >= _DISTINCT:
            return choice
    return _SEPARATOR_CHOICES[int(np.argmax(distances))]


def check_norm(norm: str, norms: Sequence[str], what: str) -> None:
    """Raise :class:`OptionError` if ``norm`` is not one of ``norms``."""
    if norm not in norms:
        raise OptionError(f"unknown {what} '{norm}'; choose one of: {', '.join(norms)}")


def auto_scale(rows: int, cols: int, smallest: int, largest: int) -> int:
    """The integer factor that makes a ``rows`` x ``cols`` tile at least ``smallest`` pixels on its short side,
    as long as its long side stays within ``largest``. Both sides grow alike, so tiles keep their shape.

    >>> auto_scale(3, 3, 24, 256), auto_scale(224, 224, 48, 512), auto_scale(1, 7, 24, 256), auto_scale(1, 100, 48, 512)
    (8, 1, 24, 5)
    """
    wanted = math.ceil(smallest / max(1, min(rows, cols)))
    return max(1, min(wanted, largest // max(1, rows, cols)))


def grid_scale(rows: int, cols: int, grid_cols: int, smallest: int, largest: int, extra: int = 0) -> int:
    """:func:`auto_scale`, raised so that ``grid_cols`` tiles side by side (plus ``extra`` pixels of separators
    and labels) make a grid at least :data:`MIN_GRID_WIDTH` wide, within the same ``largest`` bound.

    >>> grid_scale(60, 60, 4, 48, 512), grid_scale(224, 224, 8, 48, 512)
    (3, 1)
    """
    factor = auto_scale(rows, cols, smallest, largest)
    wanted = math.ceil(max(0, MIN_GRID_WIDTH - extra) / max(1, grid_cols * cols))
    return max(factor, min(wanted, largest // max(1, rows, cols)))


def map_levels(maps: np.ndarray, lo: np.ndarray, hi: np.ndarray, norm: str) -> np.ndarray:
    """(H, W, K) maps with their per-channel minima and maxima (:func:`channel_ranges`) to palette levels,
    0..LEVELS-1, by a normalisation of :data:`MAP_NORMS`."""
    check_norm(norm, MAP_NORMS, "feature map normalisation")
    return _MAP_LEVELS[norm](maps, lo, hi)


def flat_tiles(stack: np.ndarray, axes: tuple[int, ...], relative: float = FLAT_RELATIVE) -> np.ndarray:
    """Which slices of ``stack`` are flat: their values span less than ``relative`` times the largest magnitude in
    the whole stack (a dead map: all zeros after a ReLU, or the bias alone).

    >>> flat_tiles(np.array([[[0.0, 0.0]], [[0.0, 1.0]], [[2.0, 2.00001]]]), (1, 2)).tolist()
    [True, False, True]
    """
    if not stack.size:
        return np.zeros([size for axis, size in enumerate(stack.shape) if axis not in axes], dtype=bool)
    return flat_ranges(stack.min(axis=axes), stack.max(axis=axes), relative)


def flat_ranges(lo: np.ndarray, hi: np.ndarray, relative: float = FLAT_RELATIVE) -> np.ndarray:
    """:func:`flat_tiles` from each slice's minimum ``lo`` and maximum ``hi``.

    >>> flat_ranges(np.array([0.0, 0.0, 2.0]), np.array([0.0, 1.0, 2.00001])).tolist()
    [True, False, True]
    """
    if not lo.size:
        return np.zeros(lo.shape, dtype=bool)
    bound = max(abs(float(lo.min())), abs(float(hi.max())))  # the largest magnitude of all the slices
    return (hi - lo) <= max(bound * relative, EPSILON)


def channel_ranges(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each channel's minimum and maximum over channels-last ``maps``: what normalisation, the header, the flat
    test and the manifest all need, computed once (two passes over the maps).

    >>> [r.tolist() for r in channel_ranges(np.array([[[1.0, -2.0], [3.0, 0.0]]]))]
    [[1.0, -2.0], [3.0, 0.0]]
    """
    rows = np.asarray(maps).reshape(-1, maps.shape[-1])
    if not rows.shape[0]:
        empty = np.full(maps.shape[-1], np.nan, dtype=np.float32)
        return empty, empty
    return _per_column(rows, np.minimum), _per_column(rows, np.maximum)


def _per_column(rows: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
    """``ufunc.reduce(rows, axis=0)``, several rows at a time: numpy reduces a (pixels, 64) array one 64-value row
    after another, five times slower than over rows of about a thousand values, so a few pixels' channels are
    laid side by side first and folded together after."""
    count, channels = rows.shape
    side = max(1, 1024 // max(1, channels))
    whole = count // side * side
    if side == 1 or not whole:
        return ufunc.reduce(rows, axis=0)
    folded = ufunc.reduce(ufunc.reduce(rows[:whole].reshape(-1, side * channels), axis=0).reshape(side, channels))
    return ufunc(folded, ufunc.reduce(rows[whole:], axis=0)) if whole < count else folded


def dead_filters(kernels: np.ndarray, relative: float = FLAT_RELATIVE) -> np.ndarray:
    """Which ``(F, C, kh, kw)`` filters have all their weights at zero, or within ``relative`` of the layer's
    largest weight (decayed to nothing in training).

    >>> dead_filters(np.array([[[[0.0, 1e-9]]], [[[0.5, 0.5]]]])).tolist()
    [True, False]
    """
    if not kernels.size:
        return np.zeros(kernels.shape[0], dtype=bool)
    magnitude = np.abs(kernels)
    return magnitude.max(axis=(1, 2, 3)) <= max(float(magnitude.max()) * relative, EPSILON)


#: How feature-map tiles are ordered: by channel, or by how strongly each map fires (its mean, highest first).
MAP_ORDERS = ("channel", "activation")


def drawn_channels(maps: np.ndarray, max_maps: int | None = None, order: str = "channel") -> list[int]:
    """The channels of channels-last ``maps`` a grid draws, in the order it draws them: the first ``max_maps`` by
    channel, or the ``max_maps`` whose maps have the highest mean, highest first (ties by channel).

    >>> maps = np.zeros((2, 2, 4)); maps[..., 2] = 3.0; maps[..., 0] = 1.0
    >>> drawn_channels(maps, 2), drawn_channels(maps, 2, "activation"), drawn_channels(maps, None, "activation")
    ([0, 1], [2, 0], [2, 0, 1, 3])
    """
    if order not in MAP_ORDERS:
        raise OptionError(f"unknown map order '{order}'; choose one of: {', '.join(MAP_ORDERS)}")
    channels = maps.shape[-1]
    if order == "channel":
        return list(range(channels if max_maps is None else min(max_maps, channels)))
    means = maps.reshape(-1, channels).mean(axis=0, dtype=np.float64)
    ranked = np.argsort(-means, kind="stable")
    return [int(index) for index in ranked[:max_maps]]


#: The views of :func:`feature_map_grid` and :func:`filter_grid` where none is given.
MAP_VIEW, FILTER_VIEW = MapView(), FilterView()


def feature_map_grid(
    maps: np.ndarray,
    view: MapView = MAP_VIEW,
    *,
    padding: int = 1,
    header: Header | None = None,
    ranges: tuple[np.ndarray, np.ndarray] | None = None,
) -> Picture:
    """Render one image's activations of one layer as a near-square grid, one tile per channel.

    Args:
        maps: channels last: ``(rows, cols, channels)`` for 2-D layers or ``(steps, channels)`` for 1-D ones.
        view: how the grid is drawn (:class:`cnnviz.draw.view.MapView`): ``norm`` ``map`` (each map min-max),
            ``layer`` (one scale for the layer) or ``standardize`` (``(x - mean) / std * 64 + 128`` per map, as in
            the tutorials); the colormap; ``max_maps`` and ``order`` (``activation``: the maps with the highest
            mean first, :func:`drawn_channels`, each still numbered by its channel); ``scale`` (None picks one so
            small maps stay visible and the grid is at least :data:`MIN_GRID_WIDTH` wide); ``index``, each tile
            numbered with its channel where tiles are large enough.
        padding: separator width between tiles.
        header: a text strip to put above the grid, or None for a bare grid.
        ranges: the maps' :func:`channel_ranges`, when the caller has them already; computed when None.

    Returns:
        A palette :class:`Picture`. Tiles are laid out row by row in ``order``; a flat map (one value all over, a
        dead filter's) is crossed out in the separator colour.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3:
        raise OptionError(f"feature maps must be (rows, cols, channels) or (steps, channels), got {maps.shape}")
    lo, hi = ranges if ranges is not None else channel_ranges(maps)
    layout = map_grid_layout(maps, max_maps=view.max_maps, scale=view.scale, padding=padding, order=view.order)
    numbers = layout.channels
    if numbers != list(range(maps.shape[-1])):
        maps, lo, hi = select_channels(maps, lo, hi, numbers)
    levels = np.moveaxis(map_levels(maps, lo, hi, view.norm), -1, 0)  # (K, H, W), a view
    tiles = cross_out(upscale(levels, layout.factor), flat_ranges(lo, hi), SEPARATOR)
    if view.index and numbers and numbers_fit(tiles.shape[1], tiles.shape[2], numbers):
        tiles = number_corners(tiles, numbers, INK, BACKGROUND)
    grid = tile(tiles, grid_shape=layout.grid, padding=padding, fill=SEPARATOR, blank=BACKGROUND)
    return compose(grid, palette(view.cmap), header)


@dataclass(frozen=True)
class GridLayout:
    """Where :func:`feature_map_grid` puts each map, so that a viewer can tell which tile is which.

    Attributes:
        channels: the channels drawn, in the order of the tiles (row by row).
        grid: (rows, cols) of tiles.
        tile: (rows, cols) of one tile in pixels, after enlargement.
        factor: the enlargement.
        padding: the separator between tiles, in pixels.
    """

    channels: list[int]
    grid: tuple[int, int]
    tile: tuple[int, int]
    factor: int
    padding: int

    @property
    def size(self) -> tuple[int, int]:
        """(rows, cols) of the grid in pixels, without the header above it."""
        return (
            self.grid[0] * self.tile[0] + (self.grid[0] - 1) * self.padding,
            self.grid[1] * self.tile[1] + (self.grid[1] - 1) * self.padding,
        )


def map_grid_layout(
    maps: np.ndarray,
    *,
    max_maps: int | None = None,
    scale: int | None = None,
    padding: int = 1,
    order: str = "channel",
) -> GridLayout:
    """The layout :func:`feature_map_grid` draws ``maps`` (channels last, 3-D) in, given the same settings.

    >>> layout = map_grid_layout(np.zeros((4, 6, 5)), scale=2)
    >>> layout.channels, layout.grid, layout.tile, layout.size
    ([0, 1, 2, 3, 4], (3, 2), (8, 12), (26, 25))
    """
    numbers = drawn_channels(maps, max_maps, order)
    rows, cols = int(maps.shape[0]), int(maps.shape[1])
    grid_rows, grid_cols = grid_shape_for(len(numbers), rows, cols)
    factor = scale or grid_scale(rows, cols, grid_cols, MIN_MAP_TILE, MAX_MAP_TILE, (grid_cols - 1) * padding)
    return GridLayout(numbers, (grid_rows, grid_cols), (rows * factor, cols * factor), factor, padding)


def select_channels(
    maps: np.ndarray, lo: np.ndarray, hi: np.ndarray, numbers: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The maps and their per-channel ranges of the channels ``numbers``, in that order: a view where they are the
    first ones in order, else a copy."""
    if numbers == list(range(len(numbers))):
        count = len(numbers)
        return maps[..., :count], lo[:count], hi[:count]
    return maps[..., numbers], lo[numbers], hi[numbers]


#: The filter normalisations that one fixed value range can replace (``filter`` scales each filter on its own).
FIXED_RANGE_NORMS = ("global", "symmetric")


def _normalize_kernels(kernels: np.ndarray, norm: str, value_range: tuple[float, float] | None) -> np.ndarray:
    """(F, C, kh, kw) kernels to 0..1, by their own range or by ``value_range`` (values outside it clipped)."""
    check_norm(norm, FILTER_NORMS, "filter normalisation")
    if value_range is None:
        return _FILTER_NORMALIZERS[norm](kernels)
    lo, hi = check_value_range(value_range, norm)
    if norm == "symmetric":
        bound = max(abs(lo), abs(hi))
        lo, hi = -bound, bound
    return np.clip(scale_range(kernels, lo, hi), 0.0, 1.0)


def check_value_range(value_range: tuple[float, float], norm: str) -> tuple[float, float]:
    """A fixed ``(low, high)`` range for filter colours, checked against the normalisation it replaces.

    Raises:
        OptionError: ``norm`` is ``filter`` (a scale per filter cannot be one fixed range), or the range is empty
            or not finite.
    """
    if norm not in FIXED_RANGE_NORMS:
        raise OptionError(f"a fixed value range needs norm {' or '.join(FIXED_RANGE_NORMS)}, not '{norm}'")
    lo, hi = (float(value) for value in value_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise OptionError(f"a value range needs finite low < high, got [{lo}, {hi}]")
    return lo, hi


def filter_grid(
    kernels: np.ndarray,
    view: FilterView = FILTER_VIEW,
    *,
    filters: Sequence[int] | None = None,
    channels: Sequence[int] | None = None,
    padding: int = 1,
    header: Header | None = None,
) -> Picture:
    """Render a layer's kernels: each filter is a row of kernels, one per input channel.

    The rows are laid out in a near-square block (a layer with few input channels, such as a first layer's three
    or a depthwise layer's one, would otherwise be one tall strip), in filter order, row by row, with a wider gap
    between filters than between channels. Normalisation is computed over the whole layer (``global``,
    ``symmetric``) or each whole filter (``filter``) before ``filters`` and ``channels`` select what is drawn, so
    a selection keeps the layer's scale.

    Args:
        kernels: ``(filters, channels, rows, cols)``, as :func:`cnnviz.methods.filters.layer_kernels` returns.
        view: how the grid is drawn (:class:`cnnviz.draw.view.FilterView`): ``norm`` ``global`` (min-max over the
            layer), ``filter`` (min-max per filter) or ``symmetric`` (0 at the middle of the colormap); the
            colormap (unused with ``rgb``: each filter's three input channels as one colour patch); ``scale``
            (None picks one that makes a 3x3 kernel visible and the grid at least :data:`MIN_GRID_WIDTH` wide);
            ``index``, each filter's number left of its row; ``value_range``, a fixed ``(low, high)`` for
            ``global`` (low and high at the colormap's ends) and ``symmetric`` (the larger magnitude at the ends)
            instead of the kernels' own range, so grids of one layer at different times share one scale; values
            outside it take the end colours.
        filters: indices of the filters to draw; all when None.
        channels: indices of the input channels to draw; all when None.
        padding: separator width between the kernels of a filter.
        header: a text strip to put above the grid, or None.

    Raises:
        OptionError: ``rgb`` on a layer without exactly 3 input channels, an unknown ``norm``, or a
            ``value_range`` with ``norm="filter"``.
    """
    kernels = np.asarray(kernels, dtype=np.float32)
    if kernels.ndim != 4:
        raise OptionError(f"kernels must be (filters, channels, rows, cols), got {kernels.shape}")
    numbers = list(filters) if filters is not None else list(range(kernels.shape[0]))
    unit = _normalize_kernels(kernels, view.norm, view.value_range)[numbers]
    flat = dead_filters(kernels[numbers])
    if view.rgb:
        if unit.shape[1] != 3:
            raise OptionError(f"`rgb` needs kernels with 3 input channels; this layer's have {unit.shape[1]}")
        patches = np.rint(np.moveaxis(unit, 1, -1)[:, None] * 255.0).astype(np.uint8)  # (F, 1, kh, kw, 3)
        grid = _filter_rows(patches, numbers, flat, view, padding, (_WHITE, _RESERVED_COLOURS[INK]))
        return compose(grid, palette(view.cmap), header)
    unit = unit[:, list(channels)] if channels is not None else unit
    grid = _filter_rows(to_levels(unit, LEVELS), numbers, flat, view, padding, (SEPARATOR, INK))
    return compose(grid, palette(view.cmap), header)


def _filter_rows(
    kernels: np.ndarray,
    numbers: list[int],
    flat: np.ndarray,
    view: FilterView,
    padding: int,
    colours: tuple[int | tuple[int, ...], int | tuple[int, ...]],
) -> np.ndarray:
    """Lay ``(F, C, kh, kw[, 3])`` drawn kernels out as one row of C kernels per filter, the rows in a near-square
    block; ``numbers`` label the rows (with ``view.index``), ``flat`` filters are crossed out; ``colours`` are the
    separator's and the numbers' ink."""
    scale, separator, ink = view.scale, *colours
    count, depth, rows, cols = kernels.shape[:4]
    background = _WHITE if kernels.ndim == 5 else BACKGROUND
    gap = padding * FILTER_GAP
    factor = scale or auto_scale(rows, cols, MIN_KERNEL_TILE, MAX_KERNEL_TILE)
    labelled = view.index and rows * factor >= label_size(numbers)[0]
    gutter = label_size(numbers)[1] + 1 if labelled else 0

    def row_width(factor: int) -> int:
        return depth * cols * factor + (depth - 1) * padding + gutter

    block_rows, block_cols = grid_shape_for(count, rows * factor, row_width(factor))
    if scale is None:
        largest = max(factor, MAX_KERNEL_TILE // max(1, rows, cols))
        while factor < largest and block_cols * row_width(factor) + (block_cols - 1) * gap < MIN_GRID_WIDTH:
            factor += 1
    tiles = upscale(kernels.reshape(count * depth, rows, cols, *kernels.shape[4:]), factor, axes=(1, 2))
    tiles = cross_out(tiles, np.repeat(flat, depth), separator)
    strips = np.stack([tile(tiles[f * depth : (f + 1) * depth], (1, depth), padding, separator) for f in range(count)])
    if labelled:
        strips = number_gutters(strips, numbers, ink, background)
    return tile(strips, (block_rows, block_cols), gap, separator, blank=background)


def compose(grid: np.ndarray, entries: np.ndarray, header: Header | None) -> Picture:
    """A :class:`Picture` of ``grid`` (palette indices into ``entries``, or RGB) with the header strip above it,
    widening whichever is narrower with background."""
    if header is None:
        return Picture(grid, None if grid.ndim == 3 else entries)
    strip = _header_strip(header, grid.shape[1])
    width = max(strip.shape[1], grid.shape[1])
    strip = _pad_cols(strip, width, BACKGROUND)
    if grid.ndim == 3:
        body = _pad_cols(grid, width, _WHITE)
        return Picture(np.concatenate([entries[strip], body]), None)
    return Picture(np.concatenate([strip, _pad_cols(grid, width, BACKGROUND)]), entries)


def _pad_cols(array: np.ndarray, width: int, fill: int | tuple[int, ...]) -> np.ndarray:
    if array.shape[1] >= width:
        return array
    out = np.empty((array.shape[0], width, *array.shape[2:]), dtype=array.dtype)
    out[...] = fill
    out[:, : array.shape[1]] = array
    return out


def header_font_size(width: int) -> int:
    """The header's font size for a grid ``width`` pixels wide: 12 up to 1,000 pixels, then growing with it.

    >>> header_font_size(640), header_font_size(1800), header_font_size(10000)
    (12, 22, 28)
    """
    return max(12, min(28, round(width / 80)))


def _header_strip(header: Header, min_width: int) -> np.ndarray:
    """The header as palette indices: text lines on the left, a labelled colorbar on the right, all sized for a
    grid ``min_width`` pixels wide."""
    size = header_font_size(min_width)
    line, margin = line_height(size), size // 2
    bar_width, bar_height = round(128 * size / 12), round(8 * size / 12)
    lines = [text_mask(text, size) for text in header.lines]
    low, high = text_mask(header.low, size), text_mask(header.high, size)
    text_width = max((mask.shape[1] for mask in lines), default=0)
    bar_width = max(bar_width, low.shape[1] + high.shape[1] + margin) if header.colorbar else 0
    width = max(min_width, margin + text_width + 3 * margin + bar_width + margin)
    height = max(len(lines) * line, bar_height + 2 + line) + 2 * margin
    strip = np.full((height, width), BACKGROUND, dtype=np.uint8)

    def stamp(mask: np.ndarray, top: int, left: int) -> None:
        rows, cols = mask.shape
        strip[top : top + rows, left : left + cols][mask] = INK

    for number, mask in enumerate(lines):
        stamp(mask, margin + number * line, margin)
    if header.colorbar:
        bar_left, bar_top = width - bar_width - margin, margin + 2
        strip[bar_top : bar_top + bar_height, bar_left : bar_left + bar_width] = np.linspace(
            0, LEVELS - 1, bar_width
        ).round()
        stamp(low, bar_top + bar_height + 2, bar_left)
        stamp(high, bar_top + bar_height + 2, width - margin - high.shape[1])
    return strip
