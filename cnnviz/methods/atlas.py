"""The atlas's pass over the data: one forward pass per batch for every unit of every chosen layer at once.

Each layer's maps are reduced inside the model to what ``stats`` reduces them to (sum, max, active positions,
positions: :func:`cnnviz.methods.stats.stats_rows`) and to what ``top`` does (max, mean, the position of the max:
:func:`cnnviz.methods.top.peak_rows`), side by side, so a unit's dead/rare verdict is ``stats``'s and its top images
are ``top``'s, from one pass. Every image's maximum of every unit is kept too (images x units floats: 64 photos of
VGG16's 4,224 units are 2 MB), for the histogram of a unit's maxima and the examples at its quantiles. The partial
keeps sums, counts, ranked lists and per-image values with their image numbers, so any split merges exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnviz._keras import keras_module
from cnnviz.errors import UnsupportedLayer
from cnnviz.inputs.reader import Batch, Reader
from cnnviz.methods.extract import build_extractor
from cnnviz.methods.shape import Method
from cnnviz.methods.stats import ROUNDED_VERDICTS, LayerStats, activity_rule, stats_rows
from cnnviz.methods.top import DEFAULT_K, ROUNDED_RANKS, TopK, check_ranking, peak_rows
from cnnviz.models.graph import ConvLayer, trace

#: The quantiles of a unit's maxima whose images the unit's page shows: what it does on ordinary images.
QUANTILES = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class AtlasQuery:
    """What the atlas's pass measures.

    Attributes:
        layers: conv layer names, paths or patterns; every conv layer with 2-D maps on the image branch when None.
        k: the top images kept per unit.
        threshold: what counts as active in layers without a ReLU of their own (as ``stats``).
    """

    layers: Sequence[str] | None = None
    k: int = DEFAULT_K
    threshold: float = 0.0

    def __post_init__(self) -> None:
        check_ranking("max", self.k)


@dataclass
class LayerData:
    """One layer's units over the images seen: ``stats``'s sums and counts, ``top``'s best images, and every
    image's maximum per unit (``maxima`` ``(images, units)``, rows in the order of ``images``, their numbers)."""

    stats: LayerStats
    top: TopK
    maxima: np.ndarray
    images: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def merge(self, other: LayerData) -> LayerData:
        """Both sets of images as one, exactly; rows of per-image maxima by image number."""
        images = np.concatenate([self.images, other.images])
        order = np.argsort(images, kind="stable")
        maxima = np.concatenate([self.maxima, other.maxima])[order]
        return LayerData(self.stats + other.stats, self.top.merge(other.top), maxima, images[order])

    def quantile_images(self, unit: int) -> list[tuple[float, int, float]]:
        """``(quantile, image number, its maximum)`` at each of :data:`QUANTILES` of the unit's maxima (the image
        of nearest rank, the lower one on a tie)."""
        if not len(self.images):
            return []
        values = self.maxima[:, unit]
        order = np.lexsort((self.images, values))
        found = []
        for quantile in QUANTILES:
            place = order[int(np.floor(quantile * (len(order) - 1)))]
            found.append((quantile, int(self.images[place]), float(values[place])))
        return found


def atlas_layers(
    model: Any, names: Sequence[str] | None, input: str | None = None
) -> tuple[list[ConvLayer], list[str]]:
    """The layers an atlas covers: those named, or every conv layer (and transformer block) with 2-D maps that
    computes from the image input; and what is left out, in words."""
    traced = trace(model, input=input)
    chosen = traced.find(names) if names else [conv for conv in traced.convs if traced.on_image_branch(conv.path)]
    flat = [conv for conv in chosen if len(conv.output_shape) != 3]
    if names and flat:
        raise UnsupportedLayer(
            f"layer '{flat[0].path}' is a {flat[0].kind} with {len(flat[0].output_shape) - 1}-D maps; the atlas "
            "draws layers of 2-D maps"
        )
    left = [f"{conv.path} ({conv.kind}, {len(conv.output_shape) - 1}-D maps)" for conv in flat]
    return [conv for conv in chosen if conv not in flat], left


class AtlasScan(Method[dict[str, LayerData]]):
    """The atlas's pass as a method (see the module): each batch's :class:`LayerData` per layer, merged exactly."""

    def __init__(self, model: Any, reader: Reader, options: AtlasQuery) -> None:
        super().__init__(model, reader, options)
        layers, _ = atlas_layers(model, options.layers, reader.settings.input)
        ops = keras_module().ops

        def reduce(conv: ConvLayer, output: Any) -> Any:
            # each pass over the maps once: the maxima from the peaks' rows, no mean (the ranking is by the maximum)
            peaks = peak_rows(conv, output, mean=False)
            return ops.concatenate([stats_rows(conv, output, options.threshold, maxima=peaks[:, 0]), peaks], axis=1)

        self.extractor = build_extractor(model, [conv.path for conv in layers], reduce=reduce, feeding=reader.settings)
        self.notes = self.extractor.run_notes(f"{ROUNDED_VERDICTS}; {ROUNDED_RANKS}")
        self.precision = self.extractor.precision
        self.rules = {conv.path: activity_rule(conv, options.threshold)[0] for conv in self.extractor.layers}

    def _empty(self, conv: ConvLayer) -> LayerData:
        units = int(conv.output_shape[-1] or 0)
        return LayerData(
            LayerStats.empty(conv.path, self.rules[conv.path], units),
            TopK.empty(units, self.options.k),
            np.zeros((0, units)),
        )

    def scan(self, batch: Batch) -> dict[str, LayerData]:  # noqa: D102
        found = {}
        for path, rows in self.extractor.forward(batch).items():
            rows = np.asarray(rows, dtype=np.float64)
            data = self._empty(next(conv for conv in self.extractor.layers if conv.path == path))
            data.top.add(rows[:, 4:], batch.numbers)
            found[path] = LayerData(
                LayerStats.from_batch(path, self.rules[path], rows[:, :4]),
                data.top,
                rows[:, 1],
                np.asarray(batch.numbers, dtype=np.int64),
            )
        return found

    @staticmethod
    def merge(first: dict[str, LayerData], second: dict[str, LayerData]) -> dict[str, LayerData]:  # noqa: D102
        return {layer: first[layer].merge(second[layer]) for layer in first}

    def finish(self, partial: dict[str, LayerData] | None) -> dict[str, LayerData]:
        """Each layer's data, in the model's order (of no images where none could be read)."""
        partial = partial or {}
        return {conv.path: partial.get(conv.path) or self._empty(conv) for conv in self.extractor.layers}
