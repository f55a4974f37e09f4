"""One extractor model over all selected conv layers, and batched forward passes through it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnviz._keras import keras_module
from cnnviz.errors import UnsupportedLayer
from cnnviz.graph import ConvLayer, input_shape, trace
from cnnviz.images import load_image
from cnnviz.preprocess import Preprocessing, resolve_preprocessing

ImagePath = str | os.PathLike[str]


@dataclass
class Extractor:
    """A Keras model from the original model's input to the outputs of the selected conv layers.

    Attributes:
        model: the extractor ``keras.Model``; it shares the original model's weights.
        layers: the selected conv layers, in output order.
        input_shape: the input shape it was traced at, without the batch axis (None for free sizes).
        channels_first_input: whether images must be given as (channels, rows, cols).
    """

    model: Any
    layers: list[ConvLayer]
    input_shape: tuple[int | None, ...]
    channels_first_input: bool

    @property
    def channels(self) -> int:
        """The number of image channels the model takes."""
        shape = self.input_shape
        return int(shape[0] if self.channels_first_input else shape[-1])  # type: ignore[arg-type]

    @property
    def spatial_size(self) -> tuple[int | None, int | None]:
        """The (rows, cols) input size; None where the model accepts any size."""
        spatial = self.input_shape[1:] if self.channels_first_input else self.input_shape[:-1]
        return (spatial[0], spatial[1])

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run one forward pass over a channels-last ``(N, rows, cols, channels)`` batch.

        Returns:
            The activations of each selected layer by path, channels last: ``(N, rows, cols, filters)``.
        """
        batch = np.asarray(batch, dtype=np.float32)
        if self.channels_first_input:
            batch = np.moveaxis(batch, -1, 1)
        outputs = self.model.predict_on_batch(batch)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        result = {}
        for conv, output in zip(self.layers, outputs, strict=True):
            array = np.asarray(output)
            result[conv.path] = np.moveaxis(array, 1, -1) if conv.channels_first else array
        return result


def build_extractor(model: Any, layers: Sequence[str] | None = None) -> Extractor:
    """Build one extractor over the given conv layers (all of them by default), nested models included.

    Raises:
        LayerNotFound, NotAConvLayer: a name does not name a conv layer.
        UnsupportedLayer: a layer's maps are not 1-D or 2-D (Conv3D).
        UnsupportedModel: the model's graph cannot be walked.
    """
    keras = keras_module()
    traced = trace(model)
    selected = traced.convs if layers is None else traced.find(layers)
    for conv in selected:
        if len(conv.output_shape) not in (2, 3):
            raise UnsupportedLayer(
                f"layer '{conv.path}' is a {conv.kind} with {len(conv.output_shape) - 1}-D maps; "
                "featuremaps renders 1-D and 2-D maps only"
            )
    outputs = [traced.outputs[conv.path] for conv in selected]
    extractor = keras.Model(traced.input, outputs, name="cnnviz_extractor")
    first = traced.convs[0] if traced.convs else None
    return Extractor(
        model=extractor,
        layers=list(selected),
        input_shape=input_shape(model),
        channels_first_input=bool(first and first.channels_first),
    )


def iter_batches(
    extractor: Extractor,
    paths: Sequence[ImagePath],
    preprocess: Preprocessing,
    *,
    batch_size: int = 8,
    size: tuple[int, int] | None = None,
    on_error: Callable[[ImagePath, Exception], None] | None = None,
) -> Iterator[tuple[list[ImagePath], dict[str, np.ndarray]]]:
    """Load, preprocess and run images through the extractor, a batch at a time.

    Images that resize to different shapes (a model of free input size) are run in separate batches.

    Args:
        extractor: from :func:`build_extractor`.
        paths: image files.
        preprocess: applied to each batch of 0..255 pixels.
        batch_size: images per forward pass.
        size: force a (rows, cols) input size.
        on_error: called with a path and its error for each image that cannot be read; the run goes on.
            Without it the error is raised.

    Yields:
        (the paths in the batch, the activations by layer path) for each batch.
    """
    pending: list[tuple[ImagePath, np.ndarray]] = []
    for path in paths:
        try:
            pixels = load_image(path, extractor.channels, extractor.spatial_size, size)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(path, exc)
            continue
        if pending and (pending[0][1].shape != pixels.shape or len(pending) >= batch_size):
            yield _run(extractor, pending, preprocess)
            pending = []
        pending.append((path, pixels))
    if pending:
        yield _run(extractor, pending, preprocess)


def _run(
    extractor: Extractor,
    pending: list[tuple[ImagePath, np.ndarray]],
    preprocess: Preprocessing,
) -> tuple[list[ImagePath], dict[str, np.ndarray]]:
    batch = preprocess(np.stack([pixels for _, pixels in pending]))
    return [path for path, _ in pending], extractor(batch)


def feature_maps(
    model: Any,
    images: Sequence[ImagePath] | np.ndarray,
    layers: Sequence[str] | None = None,
    *,
    preprocess: str = "auto",
    batch_size: int = 8,
    size: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """Compute the activations of conv layers for a batch of images in one extractor.

    Args:
        model: a Keras model (nested models are fine).
        images: image file paths, loaded and preprocessed for the model, or a model-ready channels-last array
            ``(N, rows, cols, channels)`` that is fed as it is.
        layers: conv layer names or paths; all conv layers when None.
        preprocess: for file paths, ``auto`` or a name from :data:`cnnviz.preprocess.MODES`.
        batch_size: images per forward pass.
        size: for file paths, force a (rows, cols) input size.

    Returns:
        ``{layer path: array (N, rows, cols, filters)}``, channels last, in layer order.
    """
    extractor = build_extractor(model, layers)
    if isinstance(images, np.ndarray):
        return extractor(images)
    chunks: dict[str, list[np.ndarray]] = {conv.path: [] for conv in extractor.layers}
    step = resolve_preprocessing(model, preprocess)
    for _, maps in iter_batches(extractor, images, step, batch_size=batch_size, size=size):
        for path, array in maps.items():
            chunks[path].append(array)
    return {path: np.concatenate(arrays) for path, arrays in chunks.items()}
