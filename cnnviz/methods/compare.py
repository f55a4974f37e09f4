"""Two models' conv layers compared over the same images: linear CKA between every chosen layer of each, and where
the two share an architecture (fine-tuning, checkpoints) what changed per unit.

:class:`Comparison` is a method over images (:mod:`cnnviz.methods.shape`) made on the first model; its options
name the second (:class:`CompareQuery`). Each batch runs through each model once. Its partial keeps only sums
(:class:`cnnviz.methods.cka.CrossMoments` per pair of feature sets, :class:`UnitMoments` per matched layer) and
ranked lists (:class:`cnnviz.methods.top.TopK`), so it merges exactly, on any engine, and its memory does not grow
with the number of images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnviz.errors import CnnvizError, OptionError
from cnnviz.inputs.reader import Batch, Reader
from cnnviz.methods.cka import DEBIASED_MIN_SAMPLES, ESTIMATORS, FEATURES, CrossMoments, as_samples, cka_value
from cnnviz.methods.extract import build_extractor
from cnnviz.methods.filters import layer_kernels
from cnnviz.methods.shape import Method
from cnnviz.methods.top import DEFAULT_K, TopK, check_ranking, map_peaks
from cnnviz.models.graph import ConvLayer

#: For positions as samples, the cells a side every layer's maps are pooled to unless asked otherwise.
DEFAULT_GRID = 8
#: The two models, as the partial's keys name them.
SIDES = ("a", "b")


@dataclass
class UnitMoments:
    """Per unit of a layer both models have, sums over every position of every image of the two models' maps
    (float64): their Pearson correlation follows exactly and ``a + b`` merges."""

    count: int
    sum_a: np.ndarray
    sum_b: np.ndarray
    squares_a: np.ndarray
    squares_b: np.ndarray
    products: np.ndarray

    @classmethod
    def of(cls, first: np.ndarray, second: np.ndarray, sums: tuple[np.ndarray, np.ndarray]) -> UnitMoments:
        """The sums of one batch of channels-last maps of the same shape from each model, given each map's sum
        ``(N, units)`` per model (:func:`map_sums`)."""
        channels = first.shape[-1]
        a, b = first.reshape(-1, channels), second.reshape(-1, channels)
        wide = np.float64  # summed in float64 as einsum goes, without a float64 copy of the maps
        return cls(
            len(a),
            sums[0].sum(axis=0),
            sums[1].sum(axis=0),
            np.einsum("ij,ij->j", a, a, dtype=wide),
            np.einsum("ij,ij->j", b, b, dtype=wide),
            np.einsum("ij,ij->j", a, b, dtype=wide),
        )

    def __add__(self, other: UnitMoments) -> UnitMoments:
        return UnitMoments(
            self.count + other.count,
            self.sum_a + other.sum_a,
            self.sum_b + other.sum_b,
            self.squares_a + other.squares_a,
            self.squares_b + other.squares_b,
            self.products + other.products,
        )

    def correlation(self) -> np.ndarray:
        """Per unit, the Pearson correlation of its maps between the two models; NaN where a map is constant."""
        n = max(self.count, 1)
        covariance = self.products - self.sum_a * self.sum_b / n
        spread_a = self.squares_a - self.sum_a**2 / n
        spread_b = self.squares_b - self.sum_b**2 / n
        scale = np.sqrt(np.maximum(spread_a, 0.0) * np.maximum(spread_b, 0.0))
        # a spread within rounding of 0 is a constant map: its correlation is undefined, not 0 or 1
        flat = scale <= 1e-12 * np.maximum(np.sqrt(self.squares_a * self.squares_b), 1e-300)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(flat, np.nan, covariance / np.where(flat, 1.0, scale))


@dataclass
class ComparePartial:
    """What a batch (or merged batches) of a comparison found: sums per pair of feature sets keyed by their names
    (:meth:`Comparison.feature_key`), per-unit sums per matched layer, and each model's top images per unit of the
    matched layers, keyed by (side, layer)."""

    moments: dict[tuple[str, str], CrossMoments] = field(default_factory=dict)
    units: dict[str, UnitMoments] = field(default_factory=dict)
    tops: dict[tuple[str, str], TopK] = field(default_factory=dict)
    samples: int = 0


@dataclass(frozen=True)
class CompareQuery:
    """What :class:`Comparison` computes.

    Attributes:
        other: the second model: a Keras model, or a :class:`cnnviz.engines.naming.ModelRef` (anything whose
            ``load()`` gives the model; the Ray engine's workers load it so).
        layers: the first model's conv layers (names, paths or patterns); all when None.
        other_layers: the second model's; all when None.
        features: how maps become features (:data:`cnnviz.methods.cka.FEATURES`).
        grid: for ``positions``, the cells a side every layer's maps are average-pooled to first, so that any two
            layers pair up cell by cell.
        k: the top images kept per unit of a matched layer, for the overlap of the two models' top images.
    """

    other: Any
    layers: Sequence[str] | None = None
    other_layers: Sequence[str] | None = None
    features: str = FEATURES[1]
    grid: int = DEFAULT_GRID
    k: int = DEFAULT_K

    def __post_init__(self) -> None:
        if self.features not in FEATURES:
            raise OptionError(f"unknown features '{self.features}'; choose one of: {', '.join(FEATURES)}")
        if self.grid < 1:
            raise OptionError(f"grid must be at least 1, got {self.grid}")
        check_ranking("max", self.k)


class Comparison(Method[ComparePartial]):
    """Two models over the same images (see the module): made on the first model, its reader and a
    :class:`CompareQuery` naming the second.

    Attributes:
        model: the first model.
        other: the second model, loaded.
        other_reader: how the second model reads the images (its own preprocessing and input size).
        extractors: each model's extractor of its chosen conv layers' maps, by side.
        matched: the layers both models have, by path, with kernels of the same shape: the units compared one to
            one.
    """

    def __init__(self, model: Any, reader: Reader, options: CompareQuery) -> None:
        super().__init__(model, reader, options)
        self.model = model
        # a model named for loading (a ModelRef, as Ray's workers get it) has load(); a Keras model has none
        loader = getattr(options.other, "load", None)
        self.other = loader() if callable(loader) else options.other
        self.other_reader = Reader(self.other, reader.settings)
        self.extractors = {
            "a": build_extractor(model, options.layers, feeding=reader.settings),
            "b": build_extractor(self.other, options.other_layers, feeding=reader.settings),
        }
        self.notes = [*self.extractors["a"].notes, *self.extractors["b"].notes]
        self.precision = self.extractors["a"].precision
        theirs = {conv.path: conv for conv in self.extractors["b"].layers}
        self.matched = [
            conv.path
            for conv in self.extractors["a"].layers
            if conv.path in theirs and _same_units(conv, theirs[conv.path])
        ]
        self._same_reading = (
            reader.taken.shape == self.other_reader.taken.shape
            and reader.preprocessing.name == self.other_reader.preprocessing.name
        )

    def layers(self, side: str) -> list[ConvLayer]:
        """The chosen conv layers of one model (``a`` or ``b``), in graph order."""
        return list(self.extractors[side].layers)

    def feature_key(self, side: str, layer: str) -> str:
        """The name of one feature set in :attr:`ComparePartial.moments`: ``a:block1_conv1``."""
        return f"{side}:{layer}"

    def scan(self, batch: Batch) -> ComparePartial:  # noqa: D102
        maps = {"a": self.extractors["a"].forward(batch), "b": self.extractors["b"].forward(self._other_batch(batch))}
        partial = ComparePartial(samples=len(batch.paths))
        grid = self._grid([_as_2d(array) for side in SIDES for array in maps[side].values()])
        features = {
            self.feature_key(side, layer): as_samples(_as_2d(array), self.options.features, grid)
            for side in SIDES
            for layer, array in maps[side].items()
        }
        for key, own in features.items():
            partial.moments[key, key] = CrossMoments.of(own, own)
        for layer_a in maps["a"]:
            x = features[self.feature_key("a", layer_a)]
            for layer_b in maps["b"]:
                pair = self.feature_key("a", layer_a), self.feature_key("b", layer_b)
                partial.moments[pair] = CrossMoments.of(x, features[pair[1]])
        for layer in self.matched:
            first, second = (_as_2d(maps[side][layer]) for side in SIDES)
            sums = map_sums(first), map_sums(second)
            partial.units[layer] = UnitMoments.of(first, second, sums)
            for side, arrays, own in (("a", first, sums[0]), ("b", second, sums[1])):
                top = TopK.empty(arrays.shape[-1], self.options.k)
                top.add(map_peaks(arrays, own), batch.numbers)
                partial.tops[side, layer] = top
        return partial

    @staticmethod
    def merge(first: ComparePartial, second: ComparePartial) -> ComparePartial:  # noqa: D102
        return ComparePartial(
            {key: first.moments[key] + second.moments[key] for key in first.moments},
            {layer: first.units[layer] + second.units[layer] for layer in first.units},
            {key: first.tops[key].merge(second.tops[key]) for key in first.tops},
            first.samples + second.samples,
        )

    def cka(self, partial: ComparePartial, estimator: str = ESTIMATORS[0]) -> np.ndarray:
        """CKA between each chosen layer of the first model (rows) and of the second (columns) from a merged
        partial; NaN where a layer's features are constant over the images.

        Raises:
            OptionError: an unknown estimator.
            CnnvizError: too few samples for it (images that could be read, with ``features="mean"``).
        """
        if estimator not in ESTIMATORS:
            raise OptionError(f"unknown estimator '{estimator}'; choose one of: {', '.join(ESTIMATORS)}")
        rows, cols = self.layers("a"), self.layers("b")
        matrix = np.full((len(rows), len(cols)), np.nan)
        for i, conv_a in enumerate(rows):
            for j, conv_b in enumerate(cols):
                key_a, key_b = self.feature_key("a", conv_a.path), self.feature_key("b", conv_b.path)
                cross = partial.moments[key_a, key_b]
                if estimator == "debiased" and cross.samples < DEBIASED_MIN_SAMPLES:
                    raise CnnvizError(
                        f"the debiased estimator needs at least {DEBIASED_MIN_SAMPLES} samples and the images that "
                        f"could be read gave {cross.samples}: give more images, or choose `estimator` biased"
                    )
                own_a, own_b = partial.moments[key_a, key_a], partial.moments[key_b, key_b]
                matrix[i, j] = cka_value(cross, own_a, own_b, estimator)
        return matrix

    def unit_weights(self, layer: str) -> tuple[np.ndarray, np.ndarray]:
        """Each unit's weights in the two models, ``(units, weights)`` each, for a matched layer."""
        convs = [next(conv for conv in self.layers(side) if conv.path == layer) for side in SIDES]
        first, second = (_weights_per_unit(conv) for conv in convs)
        return first, second

    def _grid(self, maps: Sequence[np.ndarray]) -> tuple[int, int] | None:
        """For positions as samples, the grid every layer's maps are average-pooled to: ``grid`` cells a side, or
        the smallest map's size where a map is smaller; None for spatial means."""
        if self.options.features != "positions":
            return None
        side = self.options.grid
        return min(side, *(array.shape[1] for array in maps)), min(side, *(array.shape[2] for array in maps))

    def _other_batch(self, batch: Batch) -> Batch:
        """The batch as the second model reads it: the same where both read alike; else the first model's fitted
        pixels with the second's preprocessing, where the second takes them (a free or the same size, the same
        channels); else each image read again, from its path, at the second model's own size."""
        if self._same_reading or batch.model_ready:
            return batch
        taken = self.other_reader.taken
        shape = batch.arrays[0].shape
        fits = all(want in (None, have) for want, have in zip(taken.spatial_size, shape[:2], strict=True))
        if fits and taken.channels == shape[-1]:
            arrays = batch.arrays
        else:
            arrays = [self.other_reader.read(path)[0] for path in batch.paths]
        return Batch(batch.paths, batch.numbers, arrays, False, self.other_reader.preprocessing(np.stack(arrays)))


def map_sums(maps: np.ndarray) -> np.ndarray:
    """Each image's sum of each channel's map, ``(N, channels)``, in float64."""
    return maps.reshape(len(maps), -1, maps.shape[-1]).sum(axis=1, dtype=np.float64)


def _as_2d(maps: np.ndarray) -> np.ndarray:
    """Channels-last maps with two position axes: 1-D maps ``(N, length, C)`` as ``(N, length, 1, C)``."""
    return maps[:, :, None, :] if maps.ndim == 3 else maps


def _same_units(first: ConvLayer, second: ConvLayer) -> bool:
    """Whether two conv layers are the same layer in two versions of a model: same kind and weight shapes."""
    shapes = [[tuple(weight.shape) for weight in conv.layer.weights] for conv in (first, second)]
    return first.kind == second.kind and shapes[0] == shapes[1] and first.output_shape == second.output_shape


def _weights_per_unit(conv: ConvLayer) -> np.ndarray:
    """A conv layer's weights that make each output unit, ``(units, weights)``: the kernel (for a separable
    convolution, its pointwise kernel, whose units are the layer's outputs)."""
    if conv.kind.startswith("Separable"):
        pointwise = np.asarray(conv.layer.pointwise_kernel.numpy(), dtype=np.float32)
        return pointwise.reshape(-1, pointwise.shape[-1]).T
    kernels = layer_kernels(conv)
    return kernels.reshape(len(kernels), -1)


def relative_change(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per row, ``||second - first|| / ||first||``: how far each unit's weights moved (inf where they were 0)."""
    moved = np.linalg.norm(second - first, axis=1)
    size = np.linalg.norm(first, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(size > 0, moved / np.where(size > 0, size, 1.0), np.where(moved > 0, np.inf, 0.0))


def top_overlap(first: TopK, second: TopK) -> np.ndarray:
    """Per unit, the share of the first model's top images that are among the second's (of the images kept)."""
    shares = []
    for mine, theirs in zip(first.image, second.image, strict=True):
        kept = {int(image) for image in mine if image >= 0}
        shares.append(len(kept & {int(image) for image in theirs if image >= 0}) / max(len(kept), 1))
    return np.asarray(shares)
