"""The real images that excite each filter most, and where: Zeiler & Fergus's "top 9", as arrays.

One pass over the images: the extractor reduces each image's maps inside the model to, per filter, the maximum,
the first position holding it (row-major) and the mean, never whole maps; :class:`TopK` keeps the ``k`` best images
per filter on the host, so memory is ``filters x k``, not ``images``. Entries are ranked by value, highest first,
ties broken by input order, so partial results (batches, splits of the inputs, Ray workers) merge to exactly the
same answer with :meth:`TopK.merge`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnviz import backends
from cnnviz._keras import keras_module
from cnnviz.errors import CnnvizError, OptionError, UnsupportedLayer
from cnnviz.inputs.gather import Images, gather_inputs
from cnnviz.inputs.reader import Batch, FeedSettings, Reader, ReadingSettings
from cnnviz.methods.extract import Extractor, build_extractor
from cnnviz.methods.shape import Method, scan_all
from cnnviz.models.graph import ConvLayer
from cnnviz.models.precision import DEFAULT_PRECISION
from cnnviz.selection import parse_selection

RANKINGS = ("max", "mean")
DEFAULT_K = 9
#: Rows of the extractor's per-image reduction: (N, 4, filters).
_MAX, _MEAN, _ROW, _COL = range(4)


def build_top_extractor(model: Any, layers: Sequence[str], feeding: FeedSettings | None = None) -> Extractor:
    """An extractor that returns, for each of ``layers`` (conv layers with 2-D maps; names, paths or patterns),
    ``(N, 4, filters)``: each filter's maximum, its
    mean, and the row and column of the first position (row-major) holding the maximum, reduced inside the model.

    Raises:
        LayerNotFound, NotAConvLayer: no such conv layer.
        UnsupportedLayer: the layer's maps are not 2-D.
    """
    return build_extractor(model, layers, reduce=peak_rows, feeding=feeding)


def peak_rows(conv: ConvLayer, output: Any, mean: bool = True) -> Any:
    """A layer's symbolic 2-D maps reduced to ``(N, 4, filters)``: each filter's maximum, its mean, and the row and
    column of the first position (row-major) holding the maximum. Without ``mean`` the mean row is 0 (a ranking by
    the maximum does not read it), a pass over the maps fewer.

    Raises:
        UnsupportedLayer: the layer's maps are not 2-D.
    """
    ops = keras_module().ops
    if len(conv.output_shape) != 3:
        raise UnsupportedLayer(
            f"layer '{conv.path}' is a {conv.kind} with {len(conv.output_shape) - 1}-D maps; top needs 2-D maps"
        )
    values = ops.cast(output, "float32")
    if conv.channels_first:
        values = ops.transpose(values, (0, 2, 3, 1))
    best_per_row = ops.max(values, axis=2)  # (N, rows, F)
    row = ops.argmax(best_per_row, axis=1)  # the first row holding the maximum
    picked = ops.take_along_axis(values, ops.expand_dims(ops.expand_dims(row, 1), 1), axis=1)  # (N, 1, cols, F)
    col = ops.argmax(ops.squeeze(picked, axis=1), axis=1)  # its first column holding it
    peak = ops.max(best_per_row, axis=1)
    means = ops.mean(values, axis=(1, 2)) if mean else ops.zeros_like(peak)
    return ops.stack([peak, means, ops.cast(row, "float32"), ops.cast(col, "float32")], axis=1)


def map_peaks(maps: np.ndarray, sums: np.ndarray | None = None) -> np.ndarray:
    """What :func:`build_top_extractor` reduces inside the model, from channels-last ``(N, rows, cols, filters)``
    maps in memory: ``(N, 4, filters)`` rows of each filter's maximum, mean, and the row and column of the first
    position (row-major) holding the maximum (found as the extractor does: the first row holding it, then its first
    column there, which is faster than an argmax over all positions). ``sums``, each map's sum ``(N, filters)``
    where the caller has them, spare a pass over the maps for the means."""
    per_row = maps.max(axis=2)  # (N, rows, F)
    row = per_row.argmax(axis=1)
    picked = np.take_along_axis(maps, row[:, None, None, :], axis=1)[:, 0]  # (N, cols, F)
    col = picked.argmax(axis=1)
    if sums is None:
        sums = maps.reshape(len(maps), -1, maps.shape[-1]).sum(axis=1, dtype=np.float64)
    mean = sums / (maps.shape[1] * maps.shape[2])
    return np.stack([per_row.max(axis=1).astype(np.float64), mean, row, col], axis=1)


@dataclass
class TopK:
    """The ``k`` best images per filter so far: ``(filters, k)`` arrays, best first; empty slots hold ``-inf`` and
    image ``-1``. ``image`` indexes the run's inputs in input order; ``row`` and ``col`` place the maximum in the
    layer's map (``-1`` when ranking by mean)."""

    by: str
    k: int
    value: np.ndarray
    image: np.ndarray
    row: np.ndarray
    col: np.ndarray

    @classmethod
    def empty(cls, filters: int, k: int = DEFAULT_K, by: str = "max") -> TopK:
        """No images yet."""
        check_ranking(by, k)
        minus = np.full((filters, k), -1, dtype=np.int64)
        return cls(by, k, np.full((filters, k), -np.inf), minus, minus.copy(), minus.copy())

    def add(self, reduced: np.ndarray, images: Sequence[int]) -> None:
        """Add one batch of the extractor's ``(N, 4, filters)`` rows, of the images numbered ``images`` (their
        places in the run's input order)."""
        reduced = np.asarray(reduced, dtype=np.float64)
        values = reduced[:, _MAX if self.by == "max" else _MEAN].T  # (F, N)
        numbers = np.broadcast_to(np.asarray(images, dtype=np.int64), values.shape).copy()
        if self.by == "max":
            rows, cols = (np.rint(reduced[:, axis].T).astype(np.int64) for axis in (_ROW, _COL))
        else:
            rows = cols = np.full(values.shape, -1, dtype=np.int64)
        merged = self.merge(TopK(self.by, len(reduced), values, numbers, rows, cols))
        self.value, self.image, self.row, self.col = merged.value, merged.image, merged.row, merged.col

    def merge(self, other: TopK) -> TopK:
        """The best ``k`` of both, per filter: by value, highest first, then by image number."""
        value = np.concatenate([self.value, other.value], axis=1)
        image = np.concatenate([self.image, other.image], axis=1)
        # empty slots (image -1) sort last among equal values: rank them after every real image
        order = np.lexsort((np.where(image < 0, np.iinfo(np.int64).max, image), -value), axis=1)[:, : self.k]
        pick = np.take_along_axis
        return TopK(
            self.by,
            self.k,
            pick(value, order, 1),
            pick(image, order, 1),
            pick(np.concatenate([self.row, other.row], axis=1), order, 1),
            pick(np.concatenate([self.col, other.col], axis=1), order, 1),
        )


def check_ranking(by: str, k: int) -> None:
    """Raise :class:`OptionError` for an unknown ranking or a ``k`` below 1."""
    if by not in RANKINGS:
        raise OptionError(f"unknown ranking '{by}'; choose one of: {', '.join(RANKINGS)}")
    if k < 1:
        raise OptionError(f"k must be at least 1, got {k}")


@dataclass
class TopScan:
    """The best images per filter of each scanned layer over a set of inputs, the inputs that failed, what to
    tell the user (in bfloat16, :data:`ROUNDED_RANKS` too), and what the model computed in."""

    layers: list[ConvLayer]
    tops: dict[str, TopK]
    inputs: list[str]
    failures: list[tuple[str, CnnvizError]]
    notes: list[str] = field(default_factory=list)
    precision: str = DEFAULT_PRECISION
    #: the bytes of inputs that are not files (the explorer's uploads), by path
    data: dict[str, bytes] = field(default_factory=dict)


#: What a reduced-precision scan says about its ranking: each image's score is rounded to about three digits, so
#: images whose scores are that close can trade places (VGG16 with random weights over 64 crops of the sample
#: photos: 3 of 768 filters kept 7 of float32's 9 images, the others 8 or 9, bench/agree_precision.py).
ROUNDED_RANKS = (
    "in bfloat16 images whose scores are within rounding of each other (about three digits) can trade places, "
    "at the edge of a filter's top images too; `precision` float32 ranks them exactly"
)


@dataclass(frozen=True)
class TopQuery:
    """What :class:`TopImages` ranks.

    Attributes:
        layers: conv layers with 2-D maps: names, paths or patterns.
        k: the images kept per filter.
        by: ``max`` (the map's highest value, with its position) or ``mean``.
        filters: a selection such as ``0:16``, checked against each layer before any image is read; the
            ranking keeps every filter either way.

    Raises:
        OptionError: an unknown ranking or a ``k`` below 1.
    """

    layers: Sequence[str]
    k: int = DEFAULT_K
    by: str = "max"
    filters: str | None = None

    def __post_init__(self) -> None:
        check_ranking(self.by, self.k)


class TopImages(Method[dict[str, TopK]]):
    """The ``k`` best images per filter as a method: each batch's :class:`TopK` per layer, merged by value, then
    input order."""

    def __init__(self, model: Any, reader: Reader, options: TopQuery) -> None:
        super().__init__(model, reader, options)
        self.extractor = build_top_extractor(model, options.layers, reader.settings)
        if options.filters is not None:  # out of range: refused before the pass over the images
            for conv in self.extractor.layers:
                parse_selection(options.filters, int(conv.output_shape[-1] or 0), "filter")
        self.notes = self.extractor.run_notes(ROUNDED_RANKS)
        self.precision = self.extractor.precision

    def _empty(self) -> dict[str, TopK]:
        options = self.options
        return {
            conv.path: TopK.empty(int(conv.output_shape[-1] or 0), options.k, options.by)
            for conv in self.extractor.layers
        }

    def scan(self, batch: Batch) -> dict[str, TopK]:  # noqa: D102
        tops = self._empty()
        for path, rows in self.extractor.forward(batch).items():
            tops[path].add(rows, batch.numbers)
        return tops

    @staticmethod
    def merge(first: dict[str, TopK], second: dict[str, TopK]) -> dict[str, TopK]:  # noqa: D102
        return {layer: first[layer].merge(second[layer]) for layer in first}

    def finish(self, partial: dict[str, TopK] | None) -> dict[str, TopK]:
        """The best images per filter of each layer (none where no image could be read)."""
        return partial if partial is not None else self._empty()


def scan_top(
    model: Any,
    images: Images,
    query: TopQuery,
    reading: ReadingSettings | None = None,
    progress: Callable[[int], object] | None = None,
) -> TopScan:
    """The ``query.k`` images whose map of each filter of each of ``query.layers`` has the highest maximum
    (``by="max"``, with its position) or mean (``by="mean"``), in one pass over ``images`` on this machine;
    ``reading`` says how images are read and what the model computes in.

    Raises:
        OptionError: no images, a bad ranking or ``k``, a filter selection out of range.
        LayerNotFound, NotAConvLayer, UnsupportedLayer: before any image is read.
    """
    paths = [item.path for item in gather_inputs(images)]
    method = TopImages(model, Reader(model, reading), query)
    scanned = scan_all(method, paths, progress)
    return TopScan(
        list(method.extractor.layers),
        method.finish(scanned.partial),
        paths,
        scanned.failures,
        scanned.notes,
        scanned.precision,
    )


#: Positions whose gradient support is taken in one pass (copies of the image, one per position).
SUPPORT_BATCH = 32


#: The compiled gradient step of each model to a layer's maps that support_boxes was given (kept while the model is).
_SUPPORT_STEPS: weakref.WeakKeyDictionary[Any, Callable[..., Any]] = weakref.WeakKeyDictionary()


def _support_step(model: Any, traced: Any) -> Callable[..., Any]:
    """The compiled gradient, with respect to the image, of the layer's maps weighted by a mask of positions."""
    if model not in _SUPPORT_STEPS:
        ops = keras_module().ops
        first = next(number for number, source in enumerate(traced.sources) if source is traced.input)
        several = len(traced.sources) > 1

        def total(x: Any, picked: Any, others: Any) -> Any:
            given = [*others[:first], x, *others[first:]]
            maps = model(given if several else x, training=False)
            return ops.sum(ops.cast(maps, "float32") * picked)

        _SUPPORT_STEPS[model] = backends.compiled(backends.gradient(total), model.variables)
    return _SUPPORT_STEPS[model]


def support_boxes(
    traced: Any,
    path: str,
    batch: np.ndarray,
    positions: Sequence[tuple[int, int]],
    channels_first: bool = False,
    model: Any = None,
) -> list[tuple[int, int, int, int] | None]:
    """The receptive field found by the gradient: for each ``(row, col)`` of layer ``path``, the bounding box
    ``[top, left, bottom, right]`` (end exclusive) of the input pixels where the gradient of that position's
    activations (summed over filters) with respect to the model-ready input ``batch`` (one image, channels last)
    is not zero; None where it is zero everywhere (a position no input can move). The box depends on the image and
    the position only, not the filter; the positions go :data:`SUPPORT_BATCH` at a time. ``model``: the model from
    the inputs to the layer's maps, where the caller keeps one (built from ``traced`` otherwise).
    """
    keras = keras_module()
    model = model if model is not None else keras.Model(traced.sources, traced.outputs[path])
    if len(positions) > SUPPORT_BATCH:
        return [
            box
            for start in range(0, len(positions), SUPPORT_BATCH)
            for box in support_boxes(
                traced, path, batch, positions[start : start + SUPPORT_BATCH], channels_first, model
            )
        ]
    count = len(positions)
    rows = 1 << max(0, (count - 1).bit_length())  # padded to a power of two: few shapes to compile
    feed = np.repeat(np.asarray(batch, dtype=np.float32)[:1], rows, axis=0)
    if channels_first:
        feed = np.moveaxis(feed, -1, 1)
    picked = np.zeros((rows, *(int(side) for side in model.outputs[0].shape[1:])), dtype=np.float32)
    for number, (row, col) in enumerate(positions):  # each copy's own position, all filters: their sum's gradient
        if channels_first:
            picked[number, :, row, col] = 1.0
        else:
            picked[number, row, col, :] = 1.0
    # the model's other inputs (a metadata vector) at zero: the support in the image is what is asked
    others = [
        np.zeros((rows, *source.shape[1:]), np.float32) for source in traced.sources if source is not traced.input
    ]
    step = _support_step(model, traced)
    grads = np.abs(np.asarray(step(keras.ops.convert_to_tensor(feed), picked, others), dtype=np.float32))[:count]
    if channels_first:
        grads = np.moveaxis(grads, 1, -1)
    boxes: list[tuple[int, int, int, int] | None] = []
    for grad in grads:
        support = grad.sum(axis=-1) > 0
        if not support.any():
            boxes.append(None)
            continue
        rows_in, cols_in = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
        boxes.append((int(rows_in[0]), int(cols_in[0]), int(rows_in[-1]) + 1, int(cols_in[-1]) + 1))
    return boxes
