"""Turn activations and kernels into pictures: normalise, colour with a colormap, tile, add a header strip.

A picture is a palette image: one byte per pixel indexing a 256-entry palette whose first :data:`LEVELS` entries
are the colormap and whose last entries are reserved for separators, the header background and its text. Only
``--rgb`` filter grids are true colour.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cnnviz.errors import OptionError
from cnnviz.normalize import minmax, standardize, symmetric, to_levels
from cnnviz.tiling import tile, upscale

#: Palette entries used by the colormap; the indices from here on are reserved.
LEVELS = 252
SEPARATOR = 252
BACKGROUND = 253
INK = 254
_RESERVED_COLOURS = {
    SEPARATOR: (255, 255, 255),
    BACKGROUND: (255, 255, 255),
    INK: (0, 0, 0),
}

# Feature maps are (K, H, W): "map" and "standardize" work per map, "layer" over all of them.
_MAP_NORMALIZERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "map": lambda maps: minmax(maps, axis=(1, 2)),
    "layer": lambda maps: minmax(maps, axis=None),
    "standardize": lambda maps: standardize(maps, axis=(1, 2)),
}
# Kernels are (F, C, kh, kw): "filter" works per filter, the others over the whole layer.
_FILTER_NORMALIZERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "global": lambda kernels: minmax(kernels, axis=None),
    "filter": lambda kernels: minmax(kernels, axis=(1, 2, 3)),
    "symmetric": lambda kernels: symmetric(kernels, axis=None),
}
MAP_NORMS = tuple(_MAP_NORMALIZERS)
FILTER_NORMS = tuple(_FILTER_NORMALIZERS)
#: Automatic scaling aims for tiles at least this many pixels on their short side ...
MIN_MAP_TILE = 48
MIN_KERNEL_TILE = 24
#: ... without letting their long side grow past this many (a 1-D map is a long, one-pixel-high strip).
MAX_MAP_TILE = 512
MAX_KERNEL_TILE = 256

#: zlib level for PNGs. Palette grids compress well at any level, and level 1 encodes in about half the time
#: of Pillow's default for files a few percent larger (bench/bench_png.py measures it).
PNG_COMPRESS_LEVEL = 1

_FONT_SIZE = 12
_LINE_HEIGHT = 15
_MARGIN = 6
_BAR_WIDTH = 128
_BAR_HEIGHT = 8


@dataclass(frozen=True)
class Picture:
    """An image ready to be written.

    Attributes:
        pixels: uint8, either ``(rows, cols)`` palette indices or ``(rows, cols, 3)`` RGB.
        palette: ``(256, 3)`` uint8 RGB entries for palette pictures; None for RGB pictures.
    """

    pixels: np.ndarray
    palette: np.ndarray | None

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
        """The picture encoded as PNG; the same picture always gives the same bytes."""
        buffer = io.BytesIO()
        self.to_pil().save(buffer, format="PNG", compress_level=compress_level)
        return buffer.getvalue()

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


def palette(cmap: str = "viridis") -> np.ndarray:
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
    for index, colour in _RESERVED_COLOURS.items():
        entries[index] = colour
    return entries


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


def _normalize_maps(maps: np.ndarray, norm: str) -> np.ndarray:
    """(K, H, W) maps to 0..1."""
    check_norm(norm, MAP_NORMS, "feature map normalisation")
    return _MAP_NORMALIZERS[norm](maps)


def feature_map_grid(
    maps: np.ndarray,
    *,
    norm: str = "map",
    cmap: str = "viridis",
    max_maps: int | None = None,
    scale: int | None = None,
    padding: int = 1,
    header: Header | None = None,
) -> Picture:
    """Render one image's activations of one layer as a near-square grid, one tile per channel.

    Args:
        maps: channels last: ``(rows, cols, channels)`` for 2-D layers or ``(steps, channels)`` for 1-D ones.
        norm: ``map`` (each map min-max), ``layer`` (one scale for the layer) or ``standardize``
            (``(x - mean) / std * 64 + 128`` per map, as in the tutorials).
        cmap: a matplotlib colormap name.
        max_maps: show only the first this many channels.
        scale: integer nearest-neighbour enlargement; None picks one so small maps stay visible.
        padding: separator width between tiles.
        header: a text strip to put above the grid, or None for a bare grid.

    Returns:
        A palette :class:`Picture`. Tiles are ordered by channel index, row by row.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3:
        raise OptionError(f"feature maps must be (rows, cols, channels) or (steps, channels), got {maps.shape}")
    stack = np.moveaxis(maps, -1, 0)
    if max_maps is not None:
        stack = stack[:max_maps]
    levels = to_levels(_normalize_maps(stack, norm), LEVELS)
    factor = scale or auto_scale(levels.shape[1], levels.shape[2], MIN_MAP_TILE, MAX_MAP_TILE)
    grid = tile(upscale(levels, factor), padding=padding, fill=SEPARATOR)
    return _compose(grid, palette(cmap), header)


def _normalize_kernels(kernels: np.ndarray, norm: str) -> np.ndarray:
    """(F, C, kh, kw) kernels to 0..1."""
    check_norm(norm, FILTER_NORMS, "filter normalisation")
    return _FILTER_NORMALIZERS[norm](kernels)


def filter_grid(
    kernels: np.ndarray,
    *,
    filters: Sequence[int] | None = None,
    channels: Sequence[int] | None = None,
    norm: str = "global",
    cmap: str = "viridis",
    rgb: bool = False,
    scale: int | None = None,
    padding: int = 1,
    header: Header | None = None,
) -> Picture:
    """Render a layer's kernels: one row per filter, one column per input channel.

    Normalisation is computed over the whole layer (``global``, ``symmetric``) or each whole filter
    (``filter``) before ``filters`` and ``channels`` select what is drawn, so a selection keeps the layer's scale.

    Args:
        kernels: ``(filters, channels, rows, cols)``, as :func:`cnnviz.filters.layer_kernels` returns.
        filters: indices of the filters to draw (rows of the grid); all when None.
        channels: indices of the input channels to draw (columns); all when None.
        norm: ``global`` (min-max over the layer), ``filter`` (min-max per filter) or ``symmetric`` (0 at the
            middle of the colormap).
        cmap: a matplotlib colormap name; unused with ``rgb``.
        rgb: draw each filter's three input channels as one colour patch, filters in a near-square grid.
        scale: integer nearest-neighbour enlargement; None picks one that makes a 3x3 kernel visible.
        padding: separator width between tiles.
        header: a text strip to put above the grid, or None.

    Raises:
        OptionError: ``rgb`` on a layer without exactly 3 input channels, or an unknown ``norm``.
    """
    kernels = np.asarray(kernels, dtype=np.float32)
    if kernels.ndim != 4:
        raise OptionError(f"kernels must be (filters, channels, rows, cols), got {kernels.shape}")
    unit = _normalize_kernels(kernels, norm)
    unit = unit[list(filters)] if filters is not None else unit
    if rgb:
        if unit.shape[1] != 3:
            raise OptionError(f"--rgb needs kernels with 3 input channels; this layer's have {unit.shape[1]}")
        patches = np.moveaxis(unit, 1, -1)  # (F, kh, kw, 3)
        factor = scale or auto_scale(patches.shape[1], patches.shape[2], MIN_KERNEL_TILE, MAX_KERNEL_TILE)
        colours = np.rint(upscale(patches, factor, axes=(1, 2)) * 255.0).astype(np.uint8)
        grid = tile(colours, padding=padding, fill=_RESERVED_COLOURS[SEPARATOR])
        return _compose(grid, palette(cmap), header)
    unit = unit[:, list(channels)] if channels is not None else unit
    count, depth, rows, cols = unit.shape
    levels = to_levels(unit, LEVELS).reshape(count * depth, rows, cols)
    factor = scale or auto_scale(levels.shape[1], levels.shape[2], MIN_KERNEL_TILE, MAX_KERNEL_TILE)
    grid = tile(
        upscale(levels, factor),
        grid_shape=(count, depth),
        padding=padding,
        fill=SEPARATOR,
    )
    return _compose(grid, palette(cmap), header)


def _compose(grid: np.ndarray, entries: np.ndarray, header: Header | None) -> Picture:
    """Put the header strip above the grid, widening whichever is narrower with background."""
    if header is None:
        return Picture(grid, None if grid.ndim == 3 else entries)
    strip = _header_strip(header, grid.shape[1])
    width = max(strip.shape[1], grid.shape[1])
    strip = _pad_cols(strip, width, BACKGROUND)
    if grid.ndim == 3:
        body = _pad_cols(grid, width, _RESERVED_COLOURS[BACKGROUND])
        return Picture(np.concatenate([entries[strip], body]), None)
    return Picture(np.concatenate([strip, _pad_cols(grid, width, BACKGROUND)]), entries)


def _pad_cols(array: np.ndarray, width: int, fill: int | tuple[int, ...]) -> np.ndarray:
    if array.shape[1] >= width:
        return array
    out = np.empty((array.shape[0], width, *array.shape[2:]), dtype=array.dtype)
    out[...] = fill
    out[:, : array.shape[1]] = array
    return out


@functools.cache
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=_FONT_SIZE)


def _text_mask(text: str) -> np.ndarray:
    """One line of text as a boolean ink mask, cropped on the right to its last inked column.

    Text is drawn one-bit (the palette has a single ink colour), and one-bit glyphs come out wider than the
    font's advance widths say, so extents are measured on the drawn pixels.
    """
    font = _font()
    canvas = Image.new("1", (int(font.getlength(text) * 1.25) + _LINE_HEIGHT, _LINE_HEIGHT), 0)
    draw = ImageDraw.Draw(canvas)
    draw.fontmode = "1"
    draw.text((0, 0), text, fill=1, font=font)
    mask = np.asarray(canvas, dtype=bool)
    inked = np.flatnonzero(mask.any(axis=0))
    return mask[:, : inked[-1] + 1] if inked.size else mask[:, :0]


def _header_strip(header: Header, min_width: int) -> np.ndarray:
    """The header as palette indices: text lines on the left, a labelled colorbar on the right."""
    lines = [_text_mask(line) for line in header.lines]
    low, high = _text_mask(header.low), _text_mask(header.high)
    text_width = max((mask.shape[1] for mask in lines), default=0)
    bar_width = max(_BAR_WIDTH, low.shape[1] + high.shape[1] + _MARGIN) if header.colorbar else 0
    width = max(min_width, _MARGIN + text_width + 3 * _MARGIN + bar_width + _MARGIN)
    height = max(len(lines) * _LINE_HEIGHT, _BAR_HEIGHT + 2 + _LINE_HEIGHT) + 2 * _MARGIN
    strip = np.full((height, width), BACKGROUND, dtype=np.uint8)

    def stamp(mask: np.ndarray, top: int, left: int) -> None:
        rows, cols = mask.shape
        strip[top : top + rows, left : left + cols][mask] = INK

    for number, mask in enumerate(lines):
        stamp(mask, _MARGIN + number * _LINE_HEIGHT, _MARGIN)
    if header.colorbar:
        bar_left, bar_top = width - bar_width - _MARGIN, _MARGIN + 2
        strip[bar_top : bar_top + _BAR_HEIGHT, bar_left : bar_left + bar_width] = np.linspace(
            0, LEVELS - 1, bar_width
        ).round()
        stamp(low, bar_top + _BAR_HEIGHT + 2, bar_left)
        stamp(high, bar_top + _BAR_HEIGHT + 2, width - _MARGIN - high.shape[1])
    return strip
