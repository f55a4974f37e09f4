"""One extractor model over all selected conv layers, and batched forward passes through it."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cnnviz._keras import keras_module
from cnnviz.crashes import doing
from cnnviz.errors import CnnvizError, ForwardPassError, ModelRunError, OptionError, UnsupportedLayer, brief
from cnnviz.inputs.feeds import Feeds, resolve_feeds
from cnnviz.inputs.reader import Batch, FeedSettings, ModelInput, Reader, ReadingSettings
from cnnviz.models.graph import ConvLayer, image_input, input_shape, sized_input_shape, trace
from cnnviz.models.precision import DEFAULT_PRECISION, resolve_precision

ImagePath = str | os.PathLike[str]


@dataclass
class Extractor:
    """A Keras model from the original model's input to the outputs of the selected conv layers.

    Attributes:
        model: the extractor ``keras.Model``; it shares the original model's weights.
        layers: the selected conv layers, in output order.
        taken: what the model's image input takes (its shape as traced, None for free sizes, and its layout).
        skipped: conv layers left out of a default (all-layers) selection because their maps are not 1-D or 2-D.
        source_name: the name of the model it was built from.
        feeds: for a model of several inputs, what each input other than the images gets (:class:`Feeds`).
        notes: what to tell the user about how it was built (layers left in float32).
        precision: what the model computes in, ``float32`` or ``bfloat16``.
    """

    model: Any
    layers: list[ConvLayer]
    taken: ModelInput
    skipped: list[ConvLayer] = field(default_factory=list)
    source_name: str = "model"
    feeds: Feeds | None = None
    notes: list[str] = field(default_factory=list)
    precision: str = DEFAULT_PRECISION
    _runs: bool | None = field(default=None, init=False, repr=False)

    def __call__(self, batch: np.ndarray, images: Sequence[int] | None = None) -> dict[str, np.ndarray]:
        """Run one forward pass over a channels-last ``(N, rows, cols, channels)`` batch; ``images`` are the
        batch's places in the run's input order, for inputs fed one row per image.

        Returns:
            The activations of each selected layer by path, channels last: ``(N, rows, cols, filters)``.
        """
        batch = np.asarray(batch, dtype=np.float32)
        if self.taken.channels_first:
            batch = np.moveaxis(batch, -1, 1)
        if self.feeds is not None:
            batch = self.feeds.inputs(batch, images)  # type: ignore[assignment]
        with doing(f"the forward pass of model '{getattr(self.model, 'name', '?')}' on a batch of {len(batch)}"):
            outputs = self.model.predict_on_batch(batch)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        result = {}
        for conv, output in zip(self.layers, outputs, strict=True):
            array = np.asarray(output)
            result[conv.path] = np.moveaxis(array, 1, -1) if conv.channels_first else array
        return result

    def forward(self, batch: Batch) -> dict[str, np.ndarray]:
        """One forward pass over a :class:`cnnviz.inputs.reader.Batch` (see :meth:`__call__`).

        Raises:
            ModelRunError: the model cannot run here on any input (:meth:`check_runs`).
            ForwardPassError: it cannot run on these inputs; the error's cause is the backend's.
        """
        try:
            return self(batch.data, batch.numbers)
        except Exception as exc:  # TensorFlow raises its own error types from inside the graph
            self.check_runs(exc)
            raise ForwardPassError(
                f"the model could not run on input of shape {batch.data.shape[1:]}: {brief(exc)}"
            ) from exc

    def run_notes(self, rounding: str | None = None) -> list[str]:
        """What a run on this extractor tells the user: inputs fed zeros, layers left out of its precision, and,
        where it computes in bfloat16, ``rounding``: what bfloat16's rounding can decide in that run (a dead
        filter's verdict, a ranking's near-ties)."""
        notes = (self.feeds.notes if self.feeds is not None else []) + self.notes
        if rounding is not None and self.precision != "float32":
            notes.append(rounding)
        return notes

    def check_runs(self, failure: BaseException) -> None:
        """After a failed forward pass, find out whose fault it was: run the model once on zeros at its own input
        size (free sizes at :data:`PROBE_SIDE`). If that fails too, no input would do.

        Raises:
            ModelRunError: the model cannot run here at all.
        """
        if self._runs is None:
            shape = (PROBE_SIDE if n is None else n for n in self.taken.channels_last_shape)
            probe = np.zeros((1, *shape), dtype=np.float32)
            try:
                self(probe)
                self._runs = True
            except Exception:  # TensorFlow raises its own error types from inside the graph
                self._runs = False
        if not self._runs:
            raise ModelRunError(
                f"model '{self.source_name}' cannot run here on any input, so no image was drawn: {brief(failure)}"
            ) from failure


#: The size a free spatial axis gets when the extractor is tried on a blank input.
PROBE_SIDE = 224


def build_extractor(
    model: Any,
    layers: Sequence[str] | None = None,
    *,
    reduce: Callable[[ConvLayer, Any], Any] | None = None,
    feeding: FeedSettings | None = None,
) -> Extractor:
    """Build one extractor over the given conv layers (all of them by default), nested models included.

    Args:
        model: a Keras model.
        layers: conv layer names, paths or patterns; all conv layers with 1-D or 2-D maps when None.
        reduce: turns a layer's symbolic output into what the extractor returns for it, computed inside the
            model (per-filter statistics instead of whole maps); any conv layer can then be chosen, and the
            extractor hands back the reduced tensors as they are.
        feeding: for a model of several inputs, the one that takes the images and what the others get (arrays or
            ``.npy`` files by name; zeros otherwise), and what the model computes in (``float32``, ``bfloat16``
            or ``auto``; what the extractor returns is float32 either way): :class:`cnnviz.inputs.reader.FeedSettings`.

    Raises:
        LayerNotFound, NotAConvLayer: a name does not name a conv layer.
        OptionError: the image input cannot be told, or a feed does not fit.
        UnsupportedLayer: a layer's maps are not 1-D or 2-D (Conv3D), unless ``reduce`` is given.
        UnsupportedModel: the model's graph cannot be walked.
    """
    keras = keras_module()
    feeding = feeding if feeding is not None else FeedSettings()
    input = feeding.input
    traced = trace(model, input=input, precision=resolve_precision(feeding.precision))
    index = image_input(model, input) if len(traced.sources) > 1 else 0
    feeds = resolve_feeds(model, index, feeding.feed)
    drawable = _drawable if reduce is None else (lambda conv: True)
    skipped: list[ConvLayer] = []
    on_branch = [conv for conv in traced.convs if traced.on_image_branch(conv.path)]
    if layers is None:
        selected = [conv for conv in on_branch if drawable(conv)]
        skipped = [conv for conv in on_branch if not drawable(conv)]
        if not selected:
            raise UnsupportedLayer(f"model '{model.name}' has no conv layers with 1-D or 2-D maps to draw")
    else:
        selected = list(dict.fromkeys(traced.find(layers)))  # each layer once, in the order first asked
        for conv in selected:
            if conv not in on_branch:
                image = traced.source_names[index]
                raise UnsupportedLayer(
                    f"layer '{conv.path}' computes from the model's other inputs, not from the image input '{image}'"
                )
    for conv in selected:
        if not drawable(conv):
            raise UnsupportedLayer(
                f"layer '{conv.path}' is a {conv.kind} with {len(conv.output_shape) - 1}-D maps; "
                "featuremaps renders 1-D and 2-D maps only"
            )
    if reduce is None:
        outputs = [traced.outputs[conv.path] for conv in selected]
        if traced.precision != "float32":  # computed in bfloat16, handed back in float32
            outputs = [float32_output(output, f"cnnviz_float32_{number}") for number, output in enumerate(outputs)]
    else:
        # Inside a layer of its own, so that the reduction's operations take no names of the graph's: Keras names
        # an operation for its function (sum, max), and a model may already have a layer of that name.
        try:
            outputs = [
                _Reduction(functools.partial(reduce, conv), name=f"cnnviz_reduce_{number}")(traced.outputs[conv.path])
                for number, conv in enumerate(selected)
            ]
        except CnnvizError as exc:  # Keras raises a layer's error again with its own report wrapped round it
            raise _innermost(exc) from None
        selected = [replace(conv, channels_first=False) for conv in selected]  # reduced: no layout to undo
    extractor = keras.Model(traced.sources if feeds else traced.input, outputs, name="cnnviz_extractor")
    first = traced.convs[0] if traced.convs else None
    return Extractor(
        model=extractor,
        layers=list(selected),
        taken=ModelInput(input_shape(model, input), bool(first and first.channels_first)),
        skipped=skipped,
        source_name=model.name,
        feeds=feeds,
        notes=list(traced.notes),
        precision=traced.precision,
    )


def _innermost(error: CnnvizError) -> CnnvizError:
    """The error as it was first raised, before Keras re-raised it (as the same type, its message wrapped)."""
    while isinstance(error.__context__, type(error)):
        error = error.__context__
    return error


@functools.cache
def _reduction_class() -> type:
    """A Keras layer that applies a function: where an extractor reduces a layer's maps."""
    keras = keras_module()

    class Reduction(keras.layers.Layer):  # type: ignore[name-defined]
        def __init__(self, function: Callable[[Any], Any], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.function = function

        def call(self, inputs: Any) -> Any:
            return self.function(inputs)

    return Reduction


def _Reduction(function: Callable[[Any], Any], name: str) -> Any:  # noqa: N802 - stands for the layer class
    return _reduction_class()(function, name=name)


def float32_output(tensor: Any, name: str) -> Any:
    """A replay's symbolic ``tensor`` cast to float32 inside the model (a bfloat16 replay's maps or scores leave
    the model in float32), by a layer called ``name``."""
    return _Reduction(lambda maps: keras_module().ops.cast(maps, "float32"), name=name)(tensor)


def _drawable(conv: ConvLayer) -> bool:
    return len(conv.output_shape) in (2, 3)


def feature_maps(
    model: Any,
    images: Sequence[ImagePath] | np.ndarray,
    layers: Sequence[str] | None = None,
    reading: ReadingSettings | None = None,
) -> dict[str, np.ndarray]:
    """Compute the activations of conv layers for a batch of images in one extractor.

    Args:
        model: a Keras model (nested models are fine).
        images: image file paths, loaded and preprocessed for the model (``.npy`` files are fed as they are), or
            a model-ready channels-last array ``(N, rows, cols, channels)`` that is fed as it is.
        layers: conv layer names or paths; all conv layers when None.
        reading: how files are read (:class:`cnnviz.inputs.reader.ReadingSettings`: preprocessing, size, fit,
            batch size), which input takes the images and what the others get, and the precision the model
            computes in (the maps come back float32 either way).

    Returns:
        ``{layer path: array (N, rows, cols, filters)}``, channels last, in layer order.

    Raises:
        ImageLoadError: an image cannot be read.
        OptionError: no images, or they came out at different sizes (a model of free input size: give ``size``).
    """
    reading = reading if reading is not None else ReadingSettings()
    extractor = build_extractor(model, layers, feeding=reading)
    if isinstance(images, np.ndarray):
        if extractor.feeds is not None:
            extractor.feeds.check_rows(len(images))
        return extractor(images, range(len(images)))
    if not images:
        raise OptionError("no images given")
    sized_input_shape(model, reading.size, reading.input)  # refuses a size that a fixed-size model cannot take
    chunks: dict[str, list[np.ndarray]] = {conv.path: [] for conv in extractor.layers}
    for batch in Reader(model, reading).batches(images):
        for path, array in extractor.forward(batch).items():
            chunks[path].append(array)
    sizes = {array.shape[1:] for array in next(iter(chunks.values()), [])}
    if len(sizes) > 1:
        raise OptionError("the images came out at different sizes (the model's input size is free); pass size=")
    return {path: np.concatenate(arrays) for path, arrays in chunks.items()}
