"""The ``top`` run: for each filter of a layer, the real images, and the patch of each, that excite it most.

One pass over the images finds each filter's ``k`` best (:func:`cnnviz.methods.top.scan_top`); then only the
winning images are decoded again, to cut the receptive field of each maximum out of the image as the model saw it
(after ``fit``), in its own colours. Receptive fields come from the graph (:mod:`cnnviz.models.receptive`), or,
where a layer's effect on positions is not known, from the support of the gradient of that one position, and the
run says which. The scan runs on the engine the options choose (:func:`cnnviz.engines.dispatch.scan_inputs`); the
patches are cut here, on the model loaded in this process, so both engines give the same records.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz._keras import keras_module
from cnnviz.draw.headers import index_span
from cnnviz.draw.render import Header, Picture
from cnnviz.draw.top import TILE, TopRow, drawable_input, fit_to_tile, top_picture
from cnnviz.engines.dispatch import scan_inputs
from cnnviz.engines.naming import ModelRef
from cnnviz.errors import CnnvizError, ImageLoadError, OptionError
from cnnviz.inputs.gather import Images, gather_inputs
from cnnviz.inputs.reader import Reader
from cnnviz.methods.top import DEFAULT_K, TopImages, TopK, TopQuery, TopScan, check_ranking, support_boxes
from cnnviz.models.graph import ConvLayer, sized_input_shape, trace
from cnnviz.models.receptive import UnknownField, receptive_field
from cnnviz.output.files import Folder, safe_name, save_bytes, save_png
from cnnviz.output.manifest import update_manifest
from cnnviz.runs.contract import EngineReading, Naming, Progress, RunResult, counted
from cnnviz.selection import check_selection, parse_selection

#: Filters per picture: a layer with more is drawn in pages, top_<layer>_064-127.png.
PAGE = 64
#: The columns of --csv, and the keys of each --json record.
FIELDS = ("layer", "filter", "rank", "image", "value", "position", "box")


@dataclass(frozen=True)
class TopOptions(Naming, EngineReading):
    """What ``top`` ranks and draws, besides the shared parts (:class:`cnnviz.engines.naming.Naming`,
    :class:`cnnviz.engines.dispatch.EngineReading`: how images are read, and where the scan runs).

    Attributes:
        layer: the conv layer (2-D maps), a pattern for several, or a sequence of names, paths and patterns.
        filters: a selection such as ``0:16``; every filter when None (in pages of :data:`PAGE`).
        k: the images kept per filter.
        by: ``max`` (the map's highest value, with its position and receptive field) or ``mean`` (the map's mean:
            the whole image).
        json: write the records as JSON to this file.
        csv: write them as CSV to this file.
        maximize: lead each row with the filter's ``maximize`` picture (gradient work: seconds per filter).
        labels: draw the header.
        max_filters: without ``filters``, rank only each layer's first this many filters (a note says so).

    Raises:
        OptionError: when made with a value that cannot work.
    """

    layer: str | Sequence[str] = ""
    filters: str | None = None
    k: int = DEFAULT_K
    by: str = "max"
    json: str | os.PathLike[str] | None = None
    csv: str | os.PathLike[str] | None = None
    maximize: bool = False
    labels: bool = True
    max_filters: int | None = None

    @property
    def layers(self) -> list[str]:
        """The layers ``layer`` names, as a list."""
        return [self.layer] if isinstance(self.layer, str) else list(self.layer)

    def __post_init__(self) -> None:
        self.check_engine_reading()
        if self.max_filters is not None and self.max_filters < 1:
            raise OptionError(f"max_filters must be at least 1, got {self.max_filters}")
        if not self.layer:
            raise OptionError("top needs a layer (`layer`): see 'cnnviz layers'")
        check_ranking(self.by, self.k)
        if self.filters is not None:
            check_selection(self.filters, "filter")


@dataclass
class TopResult(RunResult):
    """What a ``top`` run did: :class:`cnnviz.runs.contract.RunResult`, the layers ranked, and one record per
    filter and rank (``{"layer", "filter", "rank", "image", "value", "position", "box"}``, as ``--json`` writes
    them)."""

    layers: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)


def render_top(
    model: Any,
    images: Images,
    out_dir: Folder,
    options: TopOptions,
    progress: Progress | None = None,
) -> TopResult:
    """Rank the images for each filter of ``options.layer`` and write ``out_dir/top_<layer>.png`` (one row per
    filter: its ``k`` best patches), the records as JSON and CSV where asked, and the run in the manifest.
    ``progress`` is called with (images just scanned, images in the run).

    Raises:
        OptionError, LayerNotFound, NotAConvLayer, UnsupportedLayer: before any image is read.
    """
    inputs = gather_inputs(images, exclude=Path(out_dir))
    query = TopQuery(options.layers, options.k, options.by, options.filters)
    scanned = scan_inputs(TopImages, query, model, inputs, options, counted(progress, len(inputs)))
    loaded = model.load() if isinstance(model, ModelRef) else model  # the patches are cut here, on either engine
    method = (
        scanned.method if isinstance(scanned.method, TopImages) else TopImages(loaded, Reader(loaded, options), query)
    )
    paths = [item.path for item in inputs]
    tops = method.finish(scanned.partial)
    scan = TopScan(list(method.extractor.layers), tops, paths, scanned.failures, method.notes, method.precision)
    return top_result(loaded, scan, out_dir, options)


@dataclass
class TopDrawing:
    """A finished scan's records and pictures, drawn but not written: ``pictures`` holds each layer's pictures by
    file stem (``top_<layer>``, or pages ``top_<layer>_064-127``), in order."""

    result: TopResult
    pictures: dict[str, dict[str, Picture]] = field(default_factory=dict)


def draw_top(model: Any, scan: TopScan, options: TopOptions) -> TopDrawing:
    """Cut the winners' patches and draw the pictures of a finished scan (for either engine, or the explorer)."""
    result = TopResult(failures=list(scan.failures), fit=options.fit, inputs=len(scan.inputs))
    result.precision = scan.precision
    drawing = TopDrawing(result)
    patches = Patches(model, options, scan.inputs, scan.data)
    result.preprocessing = patches.step
    chosen = {conv.path: _chosen_filters(scan.tops[conv.path], options, result, conv.path) for conv in scan.layers}
    cut = patches.cut_winners(scan, chosen)
    for conv in scan.layers:
        top = scan.tops[conv.path]
        rows, records = [], []
        for filter_index in chosen[conv.path]:
            drawn: list[np.ndarray] = []
            for rank in range(options.k):
                image = int(top.image[filter_index, rank])
                if image < 0:
                    break
                box, patch = cut[conv.path, filter_index, rank]
                position = (int(top.row[filter_index, rank]), int(top.col[filter_index, rank]))
                value = float(top.value[filter_index, rank])
                records.append(top_record(conv.path, filter_index, rank, scan.inputs[image], value, position, box))
                drawn.append(patch)
            values = [float(v) for v in top.value[filter_index, : len(drawn)]]
            rows.append(TopRow(filter_index, drawn, values, patches.maximized(conv, filter_index)))
        result.records.extend(records)
        result.layers.append(conv.path)
        title = f"{options.label_of(model)} | top {min(options.k, len(scan.inputs))} of {len(scan.inputs)} images"
        drawing.pictures[conv.path] = _pictures(rows, conv, options, title, patches.method(conv))
    result.notes.extend(scan.notes + patches.notes)
    return drawing


def top_result(model: Any, scan: TopScan, out_dir: Folder, options: TopOptions) -> TopResult:
    """Draw a finished scan (:func:`draw_top`) and write its pictures, the records where asked, and the manifest."""
    out = Path(out_dir)
    drawing = draw_top(model, scan, options)
    result = drawing.result
    sections: dict[str, Any] = {}
    for layer, pictures in drawing.pictures.items():
        written = [save_png(picture, out / f"{stem}.png") for stem, picture in pictures.items()]
        result.written.extend(written)
        sections[layer] = {"png": [str(path) for path in written], "k": options.k, "by": options.by}
    if options.json is not None:
        text = json.dumps(public_records(result.records), indent=2) + "\n"
        result.written.append(save_bytes(text.encode(), options.json))
    if options.csv is not None:
        result.written.append(save_bytes(_csv(result.records).encode(), options.csv))
    about = options.about(model.name)
    update_manifest(out / "manifest.json", about, failures=scan.failures, sections={"top": sections})
    return result


def _chosen(selection: str | None, filters: int) -> list[int]:
    return parse_selection(selection, filters, "filter") if selection is not None else list(range(filters))


def _chosen_filters(top: TopK, options: TopOptions, result: TopResult, layer: str) -> list[int]:
    """The filters of a layer to rank: the selection, or all (the first ``max_filters``, with a note)."""
    chosen = _chosen(options.filters, top.value.shape[0])
    if options.filters is None and options.max_filters is not None and len(chosen) > options.max_filters:
        chosen = chosen[: options.max_filters]
        result.note(f"{layer}: ranking filters 0-{options.max_filters - 1} of {top.value.shape[0]}")
    return chosen


def top_record(
    layer: str,
    filter_index: int,
    rank: int,
    image: str,
    value: float,
    position: tuple[int, int],
    box: tuple[int, int, int, int] | None,
) -> dict[str, Any]:
    return {
        "layer": layer,
        "filter": filter_index,
        "rank": rank + 1,
        "image": image,
        "value": value,
        "position": list(position) if box is not None else None,
        "box": list(box) if box is not None else None,
    }


def public_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records as ``--json`` writes them: without the layer where one layer was ranked."""
    layers = {record["layer"] for record in records}
    return [{k: v for k, v in record.items() if k != "layer" or len(layers) > 1} for record in records]


def _csv(records: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FIELDS)
    for record in records:
        cells = [record[name] for name in FIELDS]
        writer.writerow([_cell(cell) for cell in cells])
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    """A CSV cell: a list as its numbers joined by spaces, None as empty."""
    if value is None:
        return ""
    return " ".join(str(item) for item in value) if isinstance(value, list) else value


class Patches:
    """The winning images decoded again, as the model saw them, and the receptive fields cut out of them."""

    def __init__(self, model: Any, options: TopOptions, inputs: list[str], data: dict[str, bytes]) -> None:
        self.model, self.options, self.inputs, self.data = model, options, inputs, data
        self.reader = Reader(model, options)
        self.step = self.reader.preprocessing
        self.notes: list[str] = []
        self._traces: dict[tuple[int, ...], Any] = {}
        self._fields: dict[tuple[str, tuple[int, ...]], Any] = {}
        self._by_gradient: set[str] = set()
        self._to_maps: dict[tuple[str, tuple[int, ...]], Any] = {}
        self._maximized: dict[str, Any] = {}

    def cut_winners(
        self, scan: TopScan, chosen: dict[str, list[int]], tile: int = TILE
    ) -> dict[tuple[str, int, int], tuple[tuple[int, int, int, int] | None, np.ndarray]]:
        """(box, patch) for every winning entry of the ``chosen`` filters, by (layer, filter, rank): each winning
        image decoded once, all its patches cut, then let go; patches are kept scaled to a ``tile`` (
        :func:`cnnviz.draw.top.fit_to_tile`), so memory grows with filters x k, not with the images."""
        wanted: dict[int, list[tuple[ConvLayer, int, int]]] = {}
        for conv in scan.layers:
            top = scan.tops[conv.path]
            for filter_index in chosen[conv.path]:
                for rank in range(self.options.k):
                    image = int(top.image[filter_index, rank])
                    if image >= 0:
                        wanted.setdefault(image, []).append((conv, filter_index, rank))
        cut = {}
        for image, entries in sorted(wanted.items()):
            array, ready = self.decoded(image)
            pixels = drawable_input(array, ready)
            at = {
                (conv.path, filter_index, rank): (
                    int(scan.tops[conv.path].row[filter_index, rank]),
                    int(scan.tops[conv.path].col[filter_index, rank]),
                )
                for conv, filter_index, rank in entries
            }
            boxes = self._boxes(entries, at, array, ready) if self.options.by == "max" else {}
            for conv, filter_index, rank in entries:
                box = boxes.get((conv.path, at[conv.path, filter_index, rank]))
                patch = pixels if box is None else pixels[box[0] : box[2], box[1] : box[3]]
                cut[conv.path, filter_index, rank] = box, fit_to_tile(patch, tile)
        return cut

    def _boxes(
        self,
        entries: list[tuple[ConvLayer, int, int]],
        at: dict[tuple[str, int, int], tuple[int, int]],
        array: np.ndarray,
        ready: bool,
    ) -> dict[tuple[str, tuple[int, int]], tuple[int, int, int, int] | None]:
        """The box of every (layer, position) one image's entries need, each once: a box depends on the image and
        the position, not the filter; where the graph gives no receptive field, all of a layer's positions go
        through the gradient together."""
        positions: dict[str, tuple[ConvLayer, set[tuple[int, int]]]] = {}
        for conv, filter_index, rank in entries:
            positions.setdefault(conv.path, (conv, set()))[1].add(at[conv.path, filter_index, rank])
        boxes: dict[tuple[str, tuple[int, int]], tuple[int, int, int, int] | None] = {}
        for path, (conv, wanted) in positions.items():
            ordered = sorted(wanted)
            for position, box in zip(ordered, self._layer_boxes(conv, array, ready, ordered), strict=True):
                boxes[path, position] = box
        return boxes

    def _layer_boxes(
        self, conv: ConvLayer, array: np.ndarray, ready: bool, positions: list[tuple[int, int]]
    ) -> list[tuple[int, int, int, int] | None]:
        shape = tuple(array.shape)
        key = (conv.path, shape)
        if key not in self._fields:
            try:
                self._fields[key] = receptive_field(self._trace(shape), conv.path)
            except UnknownField as unknown:
                self._fields[key] = None
                if conv.path not in self._by_gradient:
                    self._by_gradient.add(conv.path)
                    self.notes.append(
                        f"{conv.path}: receptive fields from the gradient's support (layer '{unknown.layer}' moves "
                        "positions in a way cnnviz does not compute)"
                    )
        field_ = self._fields[key]
        if field_ is not None:
            return [field_.box(position, shape[:2]) for position in positions]
        traced = self._trace(shape)
        if key not in self._to_maps:
            self._to_maps[key] = keras_module().Model(traced.sources, traced.outputs[conv.path])
        batch = array[None] if ready else self.step(array[None])
        first = self.reader.taken.channels_first
        return support_boxes(traced, conv.path, batch, positions, channels_first=first, model=self._to_maps[key])

    def decoded(self, number: int) -> tuple[np.ndarray, bool]:
        """Input ``number`` as read for the model: (0..255 pixels after fit, or a model-ready array; which)."""
        try:
            path = self.inputs[number]
            return self.reader.read(path, self.data.get(path))
        except ImageLoadError as exc:  # read once already: changed on disk since
            raise CnnvizError(f"{exc} (it was read a moment ago: did it change?)") from exc

    def _trace(self, shape: tuple[int, ...]) -> Any:
        if shape not in self._traces:
            input = self.options.input
            self._traces[shape] = trace(self.model, sized_input_shape(self.model, shape[:2], input), input=input)
        return self._traces[shape]

    def method(self, conv: ConvLayer) -> str:
        """How the layer's boxes were found, in words."""
        if self.options.by == "mean":
            return "whole images (ranked by the map's mean)"
        if conv.path in self._by_gradient:
            return "patches: the gradient's support of each maximum"
        return "patches: the receptive field of each maximum"

    def maximized(self, conv: ConvLayer, filter_index: int) -> np.ndarray | None:
        """The filter's ``maximize`` picture, with ``options.maximize``."""
        if not self.options.maximize:
            return None
        if conv.path not in self._maximized:
            from cnnviz.methods.maximize import Maximizer

            self._maximized[conv.path] = Maximizer(self.model, conv.path, feeding=self.options.feeding)
        found = self._maximized[conv.path]([filter_index])
        return np.rint(np.clip(found.images[0], 0.0, 1.0) * 255).astype(np.uint8)


def _pictures(rows: list[TopRow], conv: ConvLayer, options: TopOptions, title: str, method: str) -> dict[str, Picture]:
    """The layer's pictures by file stem: one, or pages of :data:`PAGE` filters."""
    pictures = {}
    pages = [rows[start : start + PAGE] for start in range(0, len(rows), PAGE)] or [[]]
    for page in pages:
        name = f"top_{safe_name(conv.path)}"
        if len(pages) > 1:
            name += f"_{page[0].filter:03d}-{page[-1].filter:03d}"
        header = None
        if options.labels:
            header = Header(
                [
                    f"{title} by {options.by} | {conv.path} ({conv.kind})",
                    f"filters {index_span([row.filter for row in page])}, best first; {method}",
                ],
                colorbar=False,
            )
        # as many columns as the best-filled row: fewer images than k leave no column empty in every row
        columns = min(options.k, max([1, *(len(row.patches) for row in page)]))
        pictures[name] = top_picture(page, columns, header)
    return pictures
