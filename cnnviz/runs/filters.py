"""The filter run, from a model to a PNG grid of a layer's kernels: what ``cnnviz filters`` calls."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.draw.headers import filter_header
from cnnviz.draw.render import FILTER_NORMS, Picture, check_value_range, filter_grid
from cnnviz.draw.view import FilterView
from cnnviz.errors import LayerNotFound
from cnnviz.methods.filters import layer_kernels
from cnnviz.models.graph import ConvLayer, trace
from cnnviz.output.files import Folder, safe_name, save_png
from cnnviz.output.manifest import update_manifest
from cnnviz.runs.contract import Naming, Progress, RunResult, check_view
from cnnviz.selection import check_selection, parse_selection

#: Filters and input channels drawn by default; huge layers (block5_conv1: 512 x 512) are cut to this.
DEFAULT_MAX_FILTERS = 64
DEFAULT_MAX_CHANNELS = 64


@dataclass(frozen=True)
class FilterOptions(Naming, FilterView):
    """How ``filters`` selects, normalises and draws (see :func:`cnnviz.draw.render.filter_grid`, which it is handed
    whole as its view).

    Besides the shared parts (:class:`cnnviz.runs.contract.Naming`, :class:`cnnviz.draw.view.FilterView`: ``norm``,
    ``cmap``, ``scale``, ``labels``, ``index``, ``rgb``, ``value_range``):

    Attributes:
        layer: the conv layer, or a pattern (``block1_*``) for several, each its own grid; the first conv layer
            (whose kernels see the image itself) when None.
        filters: the filters to draw, a selection such as ``0:16`` or ``1,5,9``; up to 64 when None.
        channels: the input channels to draw, likewise.

    Raises:
        OptionError: when made with a value that cannot work.
    """

    layer: str | None = None
    filters: str | None = None
    channels: str | None = None

    def __post_init__(self) -> None:
        check_view(self, FILTER_NORMS, "filter normalisation")
        if self.value_range is not None:
            check_value_range(self.value_range, self.norm)
        for text, what in ((self.filters, "filter"), (self.channels, "channel")):
            if text is not None:
                check_selection(text, what)


def _choose(text: str | None, total: int, cap: int, what: str, report: RunResult) -> list[int]:
    if text is not None:
        return parse_selection(text, total, what)
    if total > cap:
        report.note(f"showing {what}s 0-{cap - 1} of {total}; choose others with `{what}s`, e.g. {cap}:{2 * cap}")
        return list(range(cap))
    return list(range(total))


def render_filters(
    model: Any,
    out_dir: Folder,
    options: FilterOptions | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Write a conv layer's kernels as one PNG grid, ``out_dir/filters_<layer>.png``, and add it to
    ``out_dir/manifest.json``.

    ``options.layer`` may be a pattern (``block1_*``): each conv layer it matches gets its own grid. None draws the
    first conv layer, whose kernels see the image itself. ``progress`` is called with (layers just drawn, layers).

    Raises:
        LayerNotFound, NotAConvLayer, UnsupportedLayer, OptionError: before anything is written.
    """
    options = options if options is not None else FilterOptions()
    label = options.label_of(model)
    report = RunResult()
    traced = trace(model)
    if options.layer is None:
        if not traced.convs:
            raise LayerNotFound(f"model '{model.name}' has no conv layers")
        convs = traced.convs[:1]
        report.notes.append(f"no `layer` given: drawing the first conv layer, {convs[0].path}")
    else:
        convs = traced.find([options.layer])
    stacks = [(conv, layer_kernels(conv)) for conv in convs]  # every layer readable before any file is written
    written: dict[str, dict[str, Any]] = {}
    try:
        for conv, kernels in stacks:
            picture = filter_picture(label, conv, kernels, options, report)
            target = save_png(picture, Path(out_dir) / f"filters_{safe_name(conv.path)}.png")
            report.written.append(target)
            written[conv.path] = {"png": str(target), "norm": options.norm, "kernels": list(kernels.shape)}
            if progress is not None:
                progress(1, len(stacks))
    finally:
        update_manifest(Path(out_dir) / "manifest.json", options.about(model.name), filters=written)
    return report


def filter_picture(
    label: str,
    conv: ConvLayer,
    kernels: np.ndarray,
    options: FilterOptions,
    report: RunResult,
) -> Picture:
    """A layer's filter grid, with its header unless ``options.labels`` is off; ``label`` names the model in the
    header. Huge layers are cut to :data:`DEFAULT_MAX_FILTERS` filters and :data:`DEFAULT_MAX_CHANNELS` channels
    unless ``options`` selects them, with a note in ``report`` saying so and naming the option to change."""
    rows = _choose(options.filters, kernels.shape[0], DEFAULT_MAX_FILTERS, "filter", report)
    cols = (
        list(range(kernels.shape[1]))
        if options.rgb
        else _choose(options.channels, kernels.shape[1], DEFAULT_MAX_CHANNELS, "channel", report)
    )
    header = filter_header(label, conv, kernels, rows, cols, options) if options.labels else None
    return filter_grid(kernels, options, filters=rows, channels=cols, header=header)
