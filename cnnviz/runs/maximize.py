"""A maximisation run, from a model to a grid on disk: what ``cnnviz maximize`` calls."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.draw.headers import format_values, index_span
from cnnviz.draw.marks import number_corners, numbers_fit
from cnnviz.draw.render import Header, Picture, compose, palette
from cnnviz.draw.tiling import grid_shape_for, tile, upscale
from cnnviz.errors import OptionError
from cnnviz.inputs.reader import FeedSettings
from cnnviz.methods.maximize import Maximized, MaximizeOptions, Maximizer
from cnnviz.output.files import Folder, safe_name, save_npy, save_png
from cnnviz.runs.contract import Naming, Progress, RunResult
from cnnviz.selection import check_selection, parse_selection

#: Filters drawn when none are chosen.
DEFAULT_FILTERS = 16
#: Images are enlarged to at least this many pixels on a side in the grid.
MIN_TILE = 96
_WHITE, _BLACK = (255, 255, 255), (0, 0, 0)


@dataclass(frozen=True)
class MaximizeRunOptions(Naming, MaximizeOptions, FeedSettings):
    """What ``maximize`` draws: the optimiser's settings (:class:`cnnviz.methods.maximize.MaximizeOptions`), how
    the model is named (:class:`cnnviz.runs.contract.Naming`), how its inputs are fed
    (:class:`cnnviz.inputs.reader.FeedSettings`: preprocessing, applied inside the optimisation step; the input
    that takes the images, the values the others are held at; the precision, while the images' updates are
    float32), and:

    Attributes:
        layer: the conv layer whose filters to draw.
        filters: a selection such as ``0:16`` or ``1,5,9``; the first :data:`DEFAULT_FILTERS` when None.
        save_raw: also write the images as ``.npy``, ``(F, size, size, channels)`` in 0..1.
        labels: draw the header.

    Raises:
        OptionError: when made with a value that cannot work.
    """

    layer: str = ""
    filters: str | None = None
    save_raw: bool = False
    labels: bool = True

    def __post_init__(self) -> None:
        self.check()
        if not self.layer:
            raise OptionError("maximize needs a layer (`layer`): see 'cnnviz layers'")
        if self.filters is not None:
            check_selection(self.filters, "filter")
        self.check_feeding()


@dataclass
class MaximizeResult(RunResult):
    """What a maximisation run did: :class:`cnnviz.runs.contract.RunResult`, and the images found."""

    maximized: Maximized | None = None


def maximize_picture(result: Maximized, label: str, options: MaximizeOptions, labels: bool = True) -> Picture:
    """The images as a numbered RGB grid, in filter order, with a header naming the settings. Images of other
    channel counts than 1 and 3 (multispectral models) are drawn as featuremaps draws channels: one row per
    filter, a grey tile per channel, the filter's number on its first."""
    images = np.rint(np.clip(result.images, 0.0, 1.0) * 255.0).astype(np.uint8)
    channels = images.shape[-1]
    factor = max(1, -(-MIN_TILE // images.shape[1]))
    if channels in (1, 3):
        tiles = upscale(np.repeat(images, 3 // channels, axis=-1), factor, axes=(1, 2))
        if numbers_fit(tiles.shape[1], tiles.shape[2], result.filters):
            tiles = number_corners(tiles, result.filters, _BLACK, _WHITE)
        shape = grid_shape_for(len(tiles), tiles.shape[1], tiles.shape[2])
    else:
        grey = np.moveaxis(images, -1, 1).reshape(-1, *images.shape[1:3], 1)  # (filters x channels, rows, cols, 1)
        tiles = upscale(np.repeat(grey, 3, axis=-1), factor, axes=(1, 2))
        if numbers_fit(tiles.shape[1], tiles.shape[2], result.filters):
            tiles[::channels] = number_corners(tiles[::channels], result.filters, _BLACK, _WHITE)
        shape = (len(result.filters), channels)
    grid = tile(tiles, shape, padding=2, fill=_WHITE)
    header = None
    if labels:
        low, high = format_values(float(result.activations.min()), float(result.activations.max()))
        header = Header(
            [
                f"{label} | maximize {result.layer} | filters {index_span(result.filters)}",
                options.described
                + (f"; a row per filter, its {channels} channels in grey" if channels not in (1, 3) else ""),
                f"mean activation reached: {low} to {high}",
            ],
            colorbar=False,
        )
    return compose(grid, palette("gray"), header)


def render_maximize(
    model: Any,
    out_dir: Folder,
    options: MaximizeRunOptions,
    progress: Progress | None = None,
) -> MaximizeResult:
    """Optimise an image for each chosen filter of ``options.layer`` and write them as one grid,
    ``out_dir/maximize_<layer>.png`` (and the images as ``.npy``, ``(F, size, size, channels)`` in 0..1, with
    ``options.save_raw``). ``progress`` is called after each step with (filter-steps just done, all filter-steps
    of the run).

    Raises:
        OptionError, LayerNotFound, NotAConvLayer, UnsupportedLayer, UnsupportedModel: before any work.
    """
    report, picture = draw_maximize(model, options, progress)
    assert report.maximized is not None
    target = Path(out_dir) / f"maximize_{safe_name(report.maximized.layer)}.png"
    report.written.append(save_png(picture, target))
    if options.save_raw:
        report.written.append(save_npy(report.maximized.images, target.with_suffix(".npy")))
    return report


def draw_maximize(
    model: Any, options: MaximizeRunOptions, progress: Progress | None = None
) -> tuple[MaximizeResult, Picture]:
    """The images of :func:`render_maximize` and their grid, drawn but not written."""
    report = MaximizeResult()
    maximizer = Maximizer(model, options.layer, options, options.feeding)
    for note in maximizer.notes:
        report.note(note)
    report.precision = maximizer.precision
    total = maximizer.filters
    if options.filters is None:
        chosen = list(range(min(DEFAULT_FILTERS, total)))
        if total > len(chosen):
            report.note(f"drawing filters 0-{len(chosen) - 1} of {total}; choose others with `filters`, e.g. 16:32")
    else:
        chosen = parse_selection(options.filters, total, "filter")
    total_steps = len(chosen) * options.steps
    result = maximizer(chosen, None if progress is None else (lambda done: progress(done, total_steps)))
    report.maximized = result
    return report, maximize_picture(result, options.label_of(model), options, options.labels)
