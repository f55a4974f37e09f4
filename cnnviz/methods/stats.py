"""Per-filter activation statistics over a set of images, reduced inside the model: dead and rarely active filters.

The extractor returns, per image and filter, the sum of the activations, their maximum, how many positions were
active and how many positions there were, never whole maps, so a run costs about what the forward pass costs and
its memory does not depend on map size. :class:`LayerStats` keeps sums and counts (not means), so statistics from
batches of any size, or from several machines, merge exactly with ``+``.

What "active" means: after a ReLU (a conv layer with ``activation="relu"`` or ``relu6``, whose outputs cannot be
negative) a position is active when its value is above 0. Any other conv layer (linear, usually followed by
BatchNorm and an activation of its own) is active above ``threshold``, 0 by default: where a ReLU would pass it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnviz._keras import keras_module
from cnnviz.errors import CnnvizError, OptionError
from cnnviz.inputs.gather import Images, gather_inputs
from cnnviz.inputs.reader import Batch, FeedSettings, Reader, ReadingSettings
from cnnviz.methods.extract import Extractor, build_extractor
from cnnviz.methods.shape import Method, scan_all
from cnnviz.models.graph import ConvLayer
from cnnviz.models.precision import DEFAULT_PRECISION

#: Activations whose outputs are never negative: "active" is then "above 0".
RELU_ACTIVATIONS = ("relu", "relu6")
#: A filter active at fewer than this share of positions (but not dead) is "rarely active" by default.
DEFAULT_RARE = 0.01


#: What a reduced-precision run says about its verdicts: whether a filter fires is a sign at 0, and a filter whose
#: largest activation is within rounding of 0 can come out either way (VGG16 with random weights over the sample
#: photos: 3 of 4,224 filters, each with a largest activation under 0.1% of its layer's, bench/agree_precision.py).
ROUNDED_VERDICTS = (
    "in bfloat16 a filter whose largest activation is within rounding of 0 (under about 0.1% of its layer's "
    "largest) can be found dead here and barely alive in float32, or the other way; `precision` float32 decides "
    "those exactly"
)


def activity_rule(conv: ConvLayer, threshold: float = 0.0) -> tuple[str, float]:
    """What "active" means for a conv layer's outputs: (a description, the value to exceed)."""
    activation = getattr(getattr(conv.layer, "activation", None), "__name__", "linear")
    if activation in RELU_ACTIVATIONS:
        return f"> 0 (after its {activation})", 0.0
    return f"> {threshold:g} ({activation} output)", threshold


@dataclass
class LayerStats:
    """Sums and counts for one layer's filters over a set of images; ``a + b`` merges exactly.

    Attributes:
        layer: the layer's path.
        rule: what "active" means for it (:func:`activity_rule`).
        sums: per filter, the sum of its activations over all positions of all images (float64).
        maxima: per filter, the largest activation seen (-inf before any image).
        active: per filter, how many positions were active.
        positions: per filter, how many positions were seen (images x map size).
        images_active: per filter, on how many images it was active at least once.
        images: how many images were seen.
    """

    layer: str
    rule: str
    sums: np.ndarray
    maxima: np.ndarray
    active: np.ndarray
    positions: np.ndarray
    images_active: np.ndarray
    images: int = 0

    @classmethod
    def empty(cls, layer: str, rule: str, filters: int) -> LayerStats:
        """Statistics over no images yet."""
        zeros = np.zeros(filters, dtype=np.int64)
        return cls(layer, rule, np.zeros(filters), np.full(filters, -np.inf), zeros, zeros.copy(), zeros.copy())

    @classmethod
    def from_batch(cls, layer: str, rule: str, reduced: np.ndarray) -> LayerStats:
        """Statistics of one batch from the extractor's ``(N, 4, filters)`` rows: sum, max, active, positions."""
        reduced = np.asarray(reduced, dtype=np.float64)
        counts = np.rint(reduced[:, 2]).astype(np.int64)
        return cls(
            layer,
            rule,
            sums=reduced[:, 0].sum(axis=0),
            maxima=reduced[:, 1].max(axis=0),
            active=counts.sum(axis=0),
            positions=np.rint(reduced[:, 3]).astype(np.int64).sum(axis=0),
            images_active=(counts > 0).sum(axis=0),
            images=len(reduced),
        )

    def __add__(self, other: LayerStats) -> LayerStats:
        if (other.layer, len(other.sums)) != (self.layer, len(self.sums)):
            raise ValueError(f"cannot merge statistics of {other.layer} into {self.layer}")
        return LayerStats(
            self.layer,
            self.rule,
            self.sums + other.sums,
            np.maximum(self.maxima, other.maxima),
            self.active + other.active,
            self.positions + other.positions,
            self.images_active + other.images_active,
            self.images + other.images,
        )

    @property
    def filters(self) -> int:
        """How many filters the layer has."""
        return len(self.sums)

    @property
    def mean(self) -> np.ndarray:
        """Per filter, the mean activation over all positions of all images."""
        return self.sums / np.maximum(self.positions, 1)

    @property
    def active_fraction(self) -> np.ndarray:
        """Per filter, the share of all positions of all images where it was active."""
        return self.active / np.maximum(self.positions, 1)

    @property
    def dead(self) -> np.ndarray:
        """Per filter, whether it was never active on any image."""
        return self.images_active == 0

    def rare(self, below: float = DEFAULT_RARE) -> np.ndarray:
        """Per filter, whether it was active somewhere, but at fewer than ``below`` of all positions."""
        return ~self.dead & (self.active_fraction < below)

    def rows(self, rare_below: float = DEFAULT_RARE) -> list[dict[str, Any]]:
        """One record per filter: the numbers and the verdict, for CSV and JSON."""
        rare = self.rare(rare_below)
        return [
            {
                "layer": self.layer,
                "filter": index,
                "mean": float(self.mean[index]),
                "max": float(self.maxima[index]),
                "active_fraction": float(self.active_fraction[index]),
                "images_active": int(self.images_active[index]),
                "images": self.images,
                "dead": bool(self.dead[index]),
                "rare": bool(rare[index]),
                "active_means": self.rule,
            }
            for index in range(self.filters)
        ]


def build_stats_extractor(
    model: Any, layers: Sequence[str] | None = None, threshold: float = 0.0, feeding: FeedSettings | None = None
) -> Extractor:
    """An extractor that returns, per selected conv layer, ``(N, 4, filters)``: each filter's sum, max, number
    of active positions and number of positions on each image, reduced inside the model (:func:`stats_rows`);
    ``feeding`` is the input choice and precision (:class:`cnnviz.inputs.reader.FeedSettings`)."""
    return build_extractor(model, layers, reduce=functools.partial(stats_rows, threshold=threshold), feeding=feeding)


def stats_rows(conv: ConvLayer, output: Any, threshold: float = 0.0, maxima: Any = None) -> Any:
    """A layer's symbolic maps reduced to ``(N, 4, filters)``: each filter's sum, max, number of active positions
    (:func:`activity_rule`) and number of positions on each image; ``maxima`` ``(N, filters)`` where the caller has
    them already (a pass over the maps fewer)."""
    ops = keras_module().ops
    values = ops.cast(output, "float32")  # float16 sums of a large map would overflow
    rank = len(values.shape)
    channel_axis = 1 if conv.channels_first else rank - 1
    axes = tuple(axis for axis in range(1, rank) if axis != channel_axis)
    sums = ops.sum(values, axis=axes)
    one_channel = ops.take(values, [0], axis=channel_axis)
    positions = ops.sum(ops.ones_like(one_channel), axis=axes) + ops.zeros_like(sums)
    above = ops.cast(ops.greater(values, activity_rule(conv, threshold)[1]), "float32")
    largest = ops.max(values, axis=axes) if maxima is None else maxima
    return ops.stack([sums, largest, ops.sum(above, axis=axes), positions], axis=1)


@dataclass(frozen=True)
class StatsQuery:
    """What :class:`FilterStats` measures.

    Attributes:
        layers: conv layer names, paths or patterns; all conv layers when None.
        threshold: what counts as active in layers without a ReLU of their own (see the module's notes).
    """

    layers: Sequence[str] | None = None
    threshold: float = 0.0


class FilterStats(Method[dict[str, LayerStats]]):
    """Per-filter statistics as a method: each batch's :class:`LayerStats` per layer, merged with ``+``."""

    def __init__(self, model: Any, reader: Reader, options: StatsQuery) -> None:
        super().__init__(model, reader, options)
        self.extractor = build_stats_extractor(model, options.layers, options.threshold, reader.settings)
        self.notes = self.extractor.run_notes(ROUNDED_VERDICTS)
        self.precision = self.extractor.precision
        self.rules = {conv.path: activity_rule(conv, options.threshold)[0] for conv in self.extractor.layers}

    def scan(self, batch: Batch) -> dict[str, LayerStats]:  # noqa: D102
        reduced = self.extractor.forward(batch)
        return {layer: LayerStats.from_batch(layer, self.rules[layer], rows) for layer, rows in reduced.items()}

    @staticmethod
    def merge(first: dict[str, LayerStats], second: dict[str, LayerStats]) -> dict[str, LayerStats]:  # noqa: D102
        return {layer: first[layer] + second[layer] for layer in first}

    def finish(self, partial: dict[str, LayerStats] | None) -> list[LayerStats]:
        """The statistics per layer, in the extractor's order (of no images where none could be read)."""
        partial = partial or {}
        return [
            partial.get(conv.path)
            or LayerStats.empty(conv.path, self.rules[conv.path], int(conv.output_shape[-1] or 0))
            for conv in self.extractor.layers
        ]


@dataclass
class StatsRun:
    """Statistics per layer over the images that could be read, the ones that could not, what to tell the user,
    and what the model computed in (float32 where it could not compute in the precision asked)."""

    layers: list[LayerStats]
    failures: list[tuple[str, CnnvizError]]
    notes: list[str] = field(default_factory=list)
    precision: str = DEFAULT_PRECISION


def filter_stats(
    model: Any,
    images: Images,
    layers: Sequence[str] | None = None,
    *,
    threshold: float = 0.0,
    reading: ReadingSettings | None = None,
    progress: Callable[[int], object] | None = None,
) -> StatsRun:
    """Per-filter activation statistics of conv layers (all by default) over image files, on this machine.

    Args:
        model: a Keras model (nested models are fine).
        images: image files (and ``.npy`` model-ready arrays), folders and patterns, as
            :func:`cnnviz.inputs.gather.gather_inputs` reads them.
        layers: conv layer names, paths or patterns.
        threshold: what counts as active in layers without a ReLU of their own (see the module's notes).
        reading: how images are read and what the model computes in (:class:`cnnviz.inputs.reader.ReadingSettings`);
            sums and counts are float32 whatever the precision.
        progress: called with the number of images done after each batch (a progress bar's ``update``).

    Raises:
        OptionError: no images, or a name that finds none.
        LayerNotFound, NotAConvLayer, UnsupportedModel: before any image is read.
    """
    if not images:
        raise OptionError("no images given")
    paths = [item.path for item in gather_inputs(images)]
    method = FilterStats(model, Reader(model, reading), StatsQuery(layers, threshold))
    scanned = scan_all(method, paths, progress)
    return StatsRun(method.finish(scanned.partial), scanned.failures, scanned.notes, scanned.precision)
