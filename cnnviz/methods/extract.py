"""One extractor model over all selected conv layers, and batched forward passes through it."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz._keras import keras_module
from cnnviz.crashes import doing
from cnnviz.errors import (
    CnnvizError,
    ForwardPassError,
    ImageLoadError,
    ModelRunError,
    OptionError,
    UnsupportedLayer,
    brief,
)
from cnnviz.inputs.images import load_image
from cnnviz.inputs.pipeline import prefetch
from cnnviz.inputs.preprocess import Preprocessing, resolve_preprocessing
from cnnviz.models.graph import ConvLayer, input_shape, shape_text, sized_input_shape, trace

ImagePath = str | os.PathLike[str]


@dataclass
class Extractor:
    """A Keras model from the original model's input to the outputs of the selected conv layers.

    Attributes:
        model: the extractor ``keras.Model``; it shares the original model's weights.
        layers: the selected conv layers, in output order.
        input_shape: the input shape it was traced at, without the batch axis (None for free sizes).
        channels_first_input: whether images must be given as (channels, rows, cols).
        skipped: conv layers left out of a default (all-layers) selection because their maps are not 1-D or 2-D.
        source_name: the name of the model it was built from.
    """

    model: Any
    layers: list[ConvLayer]
    input_shape: tuple[int | None, ...]
    channels_first_input: bool
    skipped: list[ConvLayer] = field(default_factory=list)
    source_name: str = "model"
    _runs: bool | None = field(default=None, init=False, repr=False)

    @property
    def takes_images(self) -> bool:
        """Whether the model's input is an image, (rows, cols, channels); else only ``.npy`` arrays fit it."""
        return len(self.input_shape) == 3

    @property
    def channels(self) -> int:
        """The number of image channels the model takes (3 when the model leaves it open)."""
        value = self.input_shape[0] if self.channels_first_input else self.input_shape[-1]
        return 3 if value is None else int(value)

    @property
    def channels_last_shape(self) -> tuple[int | None, ...]:
        """The input shape as inputs are given to the extractor: channels last, whatever the model's layout."""
        return self.input_shape[1:] + self.input_shape[:1] if self.channels_first_input else self.input_shape

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
        with doing(f"the forward pass of model '{getattr(self.model, 'name', '?')}' on a batch of {len(batch)}"):
            outputs = self.model.predict_on_batch(batch)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        result = {}
        for conv, output in zip(self.layers, outputs, strict=True):
            array = np.asarray(output)
            result[conv.path] = np.moveaxis(array, 1, -1) if conv.channels_first else array
        return result

    def check_runs(self, failure: BaseException) -> None:
        """After a failed forward pass, find out whose fault it was: run the model once on zeros at its own input
        size (free sizes at :data:`PROBE_SIDE`). If that fails too, no input would do.

        Raises:
            ModelRunError: the model cannot run here at all.
        """
        if self._runs is None:
            probe = np.zeros((1, *(PROBE_SIDE if n is None else n for n in self.channels_last_shape)), dtype=np.float32)
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
    model: Any, layers: Sequence[str] | None = None, *, reduce: Callable[[ConvLayer, Any], Any] | None = None
) -> Extractor:
    """Build one extractor over the given conv layers (all of them by default), nested models included.

    Args:
        model: a Keras model.
        layers: conv layer names, paths or patterns; all conv layers with 1-D or 2-D maps when None.
        reduce: turns a layer's symbolic output into what the extractor returns for it, computed inside the
            model (per-filter statistics instead of whole maps); any conv layer can then be chosen, and the
            extractor hands back the reduced tensors as they are.

    Raises:
        LayerNotFound, NotAConvLayer: a name does not name a conv layer.
        UnsupportedLayer: a layer's maps are not 1-D or 2-D (Conv3D), unless ``reduce`` is given.
        UnsupportedModel: the model's graph cannot be walked.
    """
    keras = keras_module()
    traced = trace(model)
    drawable = _drawable if reduce is None else (lambda conv: True)
    skipped: list[ConvLayer] = []
    if layers is None:
        selected = [conv for conv in traced.convs if drawable(conv)]
        skipped = [conv for conv in traced.convs if not drawable(conv)]
        if not selected:
            raise UnsupportedLayer(f"model '{model.name}' has no conv layers with 1-D or 2-D maps to draw")
    else:
        selected = list(dict.fromkeys(traced.find(layers)))  # each layer once, in the order first asked
    for conv in selected:
        if not drawable(conv):
            raise UnsupportedLayer(
                f"layer '{conv.path}' is a {conv.kind} with {len(conv.output_shape) - 1}-D maps; "
                "featuremaps renders 1-D and 2-D maps only"
            )
    if reduce is None:
        outputs = [traced.outputs[conv.path] for conv in selected]
    else:
        outputs = [reduce(conv, traced.outputs[conv.path]) for conv in selected]
        selected = [replace(conv, channels_first=False) for conv in selected]  # reduced: no layout to undo
    extractor = keras.Model(traced.input, outputs, name="cnnviz_extractor")
    first = traced.convs[0] if traced.convs else None
    return Extractor(
        model=extractor,
        layers=list(selected),
        input_shape=input_shape(model),
        channels_first_input=bool(first and first.channels_first),
        skipped=skipped,
        source_name=model.name,
    )


def input_reader(model: Any) -> Extractor:
    """An extractor with no layers, for reading inputs the way ``model`` takes them (:func:`load_input`,
    :func:`load_groups`) where something else runs the model."""
    traced = trace(model)
    first = traced.convs[0] if traced.convs else None
    channels_first = bool(first and first.channels_first)
    return Extractor(None, [], input_shape(model), channels_first_input=channels_first, source_name=model.name)


def _drawable(conv: ConvLayer) -> bool:
    return len(conv.output_shape) in (2, 3)


def load_input(
    extractor: Extractor,
    path: ImagePath,
    size: tuple[int, int] | None = None,
    fit: str = "crop",
    pad: Sequence[float] | float = 0.0,
    data: bytes | None = None,
) -> tuple[np.ndarray, bool]:
    """Read one input for the extractor: an image file, or a ``.npy`` array fed as it is (channels last, as
    every input is given; a channels_first model gets it turned).

    An image is fitted to the model's fixed input size by ``fit`` and ``pad`` (:func:`cnnviz.inputs.images.fit_pixels`).
    ``data`` holds the file's bytes when they were read already (the Ray engine's workers get them so).

    Returns:
        (the array, whether it is model-ready) - images come as 0..255 pixels still to preprocess.

    Raises:
        ImageLoadError: the file cannot be read or does not fit the model (the message names it).
    """
    if Path(path).suffix.lower() == ".npy":
        try:
            array = np.load(io.BytesIO(data) if data is not None else path, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as exc:
            raise ImageLoadError(f"{path}: not a readable .npy array ({exc})") from exc
        expected = extractor.channels_last_shape
        fits = array.ndim == len(expected) and all(e in (None, a) for e, a in zip(expected, array.shape, strict=True))
        if not fits:
            raise ImageLoadError(f"{path}: an array of shape {array.shape}; the model takes {shape_text(expected)}")
        return array, True
    if not extractor.takes_images:
        shape = shape_text(extractor.input_shape)
        raise ImageLoadError(f"{path}: the model takes arrays of shape {shape}, not images; give .npy files")
    return load_image(path, extractor.channels, extractor.spatial_size, size, fit=fit, pad=pad, data=data), False


def iter_batches(
    extractor: Extractor,
    paths: Sequence[ImagePath],
    preprocess: Preprocessing,
    *,
    batch_size: int = 8,
    size: tuple[int, int] | None = None,
    fit: str = "crop",
    on_error: Callable[[ImagePath, CnnvizError], None] | None = None,
    read_ahead: bool = True,
    data: Mapping[str, bytes] | None = None,
    pixels: dict[str, np.ndarray] | None = None,
) -> Iterator[tuple[list[ImagePath], dict[str, np.ndarray]]]:
    """Load, preprocess and run images through the extractor, a batch at a time.

    Images that resize to different shapes (a model of free input size) are run in separate batches. The next
    batch is read by a background thread while the model runs on this one (``read_ahead``).

    Args:
        extractor: from :func:`build_extractor`.
        paths: image files, and ``.npy`` files of model-ready arrays (not preprocessed).
        preprocess: applied to each batch of 0..255 pixels.
        batch_size: images per forward pass.
        size: force a (rows, cols) input size.
        fit: how images get a fixed input size of another shape: ``crop``, ``pad`` or ``stretch``.
        on_error: called with a path and its error for each image that cannot be read or that the model cannot
            run on; the run goes on. Without it the error is raised. With ``read_ahead`` it is called from the
            reading thread for unreadable files.
        read_ahead: read the next batch while the model runs.
        data: the files' bytes by path, for files read already; the others are read from disk.
        pixels: when given, filled before each batch is yielded with its images as read (fitted 0..255 pixels,
            before preprocessing) by path, for drawing over them; ``.npy`` inputs are left out. The caller takes
            them out (``pop``) as it uses them, so it holds one batch of them at a time.

    Yields:
        (the paths in the batch, the activations by layer path) for each batch.
    """
    pad = neutral_padding(extractor, preprocess, fit)
    groups = load_groups(extractor, paths, preprocess, batch_size, size, fit, pad, on_error, data or {})
    for pending, batch, ready in prefetch(groups) if read_ahead else groups:
        if pixels is not None and not ready:
            pixels.update((os.fspath(path), array) for path, array in pending)
        yield from _run(extractor, pending, batch, on_error)


def fold_batches(
    extractor: Extractor,
    paths: Sequence[ImagePath],
    preprocess: Preprocessing,
    fold: Callable[[list[ImagePath], dict[str, np.ndarray]], None],
    *,
    batch_size: int = 8,
    size: tuple[int, int] | None = None,
    fit: str = "crop",
    progress: Callable[[int], object] | None = None,
) -> list[tuple[str, CnnvizError]]:
    """Run the images through a reducing extractor (:func:`build_extractor` with ``reduce``), handing each batch's
    (paths, reduced outputs) to ``fold``; an image that fails is set aside and the rest go on.

    Returns:
        The images that failed, each with its error, in the order met.
    """
    failures: list[tuple[str, CnnvizError]] = []

    def failed(path: ImagePath, error: CnnvizError) -> None:
        failures.append((os.fspath(path), error))
        if progress is not None:
            progress(1)

    batches = iter_batches(extractor, paths, preprocess, batch_size=batch_size, size=size, fit=fit, on_error=failed)
    for batch_paths, reduced in batches:
        fold(batch_paths, reduced)
        if progress is not None:
            progress(len(batch_paths))
    return failures


def neutral_padding(extractor: Extractor, preprocess: Preprocessing, fit: str) -> tuple[float, ...] | float:
    """What ``fit="pad"`` pads images with: the pixel that preprocessing maps to zero, which adds no edges of its
    own (0 for other fits, where nothing is padded)."""
    if fit == "pad" and extractor.takes_images:
        return tuple(preprocess.neutral(extractor.channels).tolist())
    return 0.0


def load_groups(
    extractor: Extractor,
    paths: Sequence[ImagePath],
    preprocess: Preprocessing,
    batch_size: int,
    size: tuple[int, int] | None,
    fit: str,
    pad: Sequence[float] | float,
    on_error: Callable[[ImagePath, CnnvizError], None] | None,
    data: Mapping[str, bytes],
) -> Iterator[tuple[list[tuple[ImagePath, np.ndarray]], np.ndarray, bool]]:
    """Read inputs (:func:`load_input`) into batches of at most ``batch_size`` of one shape and kind.

    Yields:
        ([(path, its array as read)], the stacked, preprocessed batch, whether the arrays are model-ready
        ``.npy`` inputs rather than 0..255 pixels).
    """
    pending: list[tuple[ImagePath, np.ndarray]] = []
    pending_ready = False
    for path in paths:
        try:
            array, ready = load_input(extractor, path, size, fit, pad, data.get(os.fspath(path)))
        except ImageLoadError as exc:
            if on_error is None:
                raise
            on_error(path, exc)
            continue
        if pending and (pending[0][1].shape != array.shape or pending_ready != ready or len(pending) >= batch_size):
            yield pending, _stack(pending, None if pending_ready else preprocess), pending_ready
            pending = []
        pending.append((path, array))
        pending_ready = ready
    if pending:
        yield pending, _stack(pending, None if pending_ready else preprocess), pending_ready


def _stack(pending: list[tuple[ImagePath, np.ndarray]], preprocess: Preprocessing | None) -> np.ndarray:
    batch = np.stack([array for _, array in pending])
    return batch if preprocess is None else preprocess(batch)


def _run(
    extractor: Extractor,
    pending: list[tuple[ImagePath, np.ndarray]],
    batch: np.ndarray,
    on_error: Callable[[ImagePath, CnnvizError], None] | None,
) -> Iterator[tuple[list[ImagePath], dict[str, np.ndarray]]]:
    """One forward pass; when the model cannot run on these inputs, each is reported to ``on_error``."""
    try:
        maps = extractor(batch)
    except Exception as exc:  # TensorFlow raises its own error types from inside the graph
        extractor.check_runs(exc)
        if on_error is None:
            raise ForwardPassError(
                f"the model could not run on input of shape {batch.shape[1:]}: {brief(exc)}"
            ) from exc
        for path, array in pending:
            error = ForwardPassError(
                f"{path}: the model could not run on it at {shape_text(array.shape)}: {brief(exc)}"
            )
            error.__cause__ = exc
            on_error(path, error)
        return
    yield [path for path, _ in pending], maps


def feature_maps(
    model: Any,
    images: Sequence[ImagePath] | np.ndarray,
    layers: Sequence[str] | None = None,
    *,
    preprocess: str = "auto",
    batch_size: int = 8,
    size: tuple[int, int] | None = None,
    fit: str = "crop",
) -> dict[str, np.ndarray]:
    """Compute the activations of conv layers for a batch of images in one extractor.

    Args:
        model: a Keras model (nested models are fine).
        images: image file paths, loaded and preprocessed for the model (``.npy`` files are fed as they are), or
            a model-ready channels-last array ``(N, rows, cols, channels)`` that is fed as it is.
        layers: conv layer names or paths; all conv layers when None.
        preprocess: for file paths, ``auto`` or a name from :data:`cnnviz.inputs.preprocess.MODES`.
        batch_size: images per forward pass.
        size: for file paths, force a (rows, cols) input size.
        fit: for file paths, how an image gets a fixed input size of another shape: ``crop`` (the default: the
            short side fits, the long side's ends are cut), ``pad`` or ``stretch``.

    Returns:
        ``{layer path: array (N, rows, cols, filters)}``, channels last, in layer order.

    Raises:
        ImageLoadError: an image cannot be read.
        OptionError: no images, or they came out at different sizes (a model of free input size: give ``size``).
    """
    extractor = build_extractor(model, layers)
    if isinstance(images, np.ndarray):
        return extractor(images)
    if not images:
        raise OptionError("no images given")
    sized_input_shape(model, size)  # refuses a size that a fixed-size model cannot take
    chunks: dict[str, list[np.ndarray]] = {conv.path: [] for conv in extractor.layers}
    step = resolve_preprocessing(model, preprocess)
    for _, maps in iter_batches(extractor, images, step, batch_size=batch_size, size=size, fit=fit):
        for path, array in maps.items():
            chunks[path].append(array)
    sizes = {array.shape[1:] for array in next(iter(chunks.values()), [])}
    if len(sizes) > 1:
        raise OptionError("the images came out at different sizes (the model's input size is free); pass size=")
    return {path: np.concatenate(arrays) for path, arrays in chunks.items()}
