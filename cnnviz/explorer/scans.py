"""The layer scans the explorer serves: a method over every image, for one layer, as JSON records.

Each is a :class:`LayerScan`: a :class:`cnnviz.methods.shape.Method`, how the explorer's options and a layer make
the method's options, and how its finished scan becomes the records its command writes with ``--json``. The
explorer runs every one the same way (:meth:`cnnviz.explorer.views.Explorer.scanned`: a task over all images, kept
by layer and number of images) and serves each at ``/api/<name>/<layer>.json``: serving another method over images
is one entry in :data:`SCANS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cnnviz.explorer.options import ExploreOptions
from cnnviz.methods.shape import Method, Scanned
from cnnviz.methods.stats import FilterStats, StatsQuery
from cnnviz.methods.top import TopImages, TopQuery, TopScan


@dataclass(frozen=True)
class Finished:
    """A method scanned over the explorer's images: the method, what it found, and the images it saw (paths, and
    the bytes of uploads)."""

    method: Method[Any]
    scanned: Scanned[Any]
    paths: list[str]
    data: dict[str, bytes]


Records = list[dict[str, Any]]


@dataclass(frozen=True)
class LayerScan:
    """A method over every image for one layer, as the explorer serves it.

    Attributes:
        method: the :class:`cnnviz.methods.shape.Method` subclass.
        query: its options, from the explorer's options and the layer.
        records: the records of a finished scan, from the model, the scan, the explorer's options and the layer.
    """

    method: type[Method[Any]]
    query: Callable[[ExploreOptions, str], Any]
    records: Callable[[Any, Finished, ExploreOptions, str], Records]


def top_scan(finished: Finished) -> TopScan:
    """A finished ``top`` scan as :func:`cnnviz.runs.top.draw_top` takes it."""
    method: Any = finished.method
    tops = method.finish(finished.scanned.partial)
    scanned = finished.scanned
    layers = list(method.extractor.layers)
    return TopScan(layers, tops, finished.paths, scanned.failures, method.notes, method.precision, finished.data)


def _top_records(model: Any, finished: Finished, options: ExploreOptions, layer: str) -> Records:
    from cnnviz.runs.top import draw_top, public_records

    drawing = draw_top(model, top_scan(finished), options.top_options(layer))
    return public_records(drawing.result.records)


def _stats_records(model: Any, finished: Finished, options: ExploreOptions, layer: str) -> Records:
    method: Any = finished.method
    return [row for layer_stats in method.finish(finished.scanned.partial) for row in layer_stats.rows()]


#: The scans the explorer serves, by the name in their route: the records of ``cnnviz top --json`` and of
#: ``cnnviz stats --json``.
SCANS: dict[str, LayerScan] = {
    "top": LayerScan(TopImages, lambda options, layer: TopQuery([layer], options.k, options.by, None), _top_records),
    "stats": LayerScan(FilterStats, lambda options, layer: StatsQuery([layer]), _stats_records),
}
