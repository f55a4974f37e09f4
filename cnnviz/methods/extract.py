"""One extractor model over all selected conv layers, and batched forward passes through it."""

from __future__ import annotations

import functools
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
from cnnviz.models.graph import ConvLayer, image_input, input_shape, model_inputs, shape_text, sized_input_shape, trace
from cnnviz.models.precision import resolve_precision

ImagePath = str | os.PathLike[str]


@dataclass
class Feeds:
    """What the inputs of a model other than the image input get: an array each, the same for every image or one
    row per image (``per_image``), in the model's input order, with the images at ``image_index``.

    Attributes:
        names: every input's name, in the model's order.
        image_index: the place of the image input.
        arrays: the other inputs' arrays, by place.
        per_image: the places whose arrays have one row per image (in the run's input order).
        notes: what to tell the user (inputs given zeros).
    """

    names: list[str]
    image_index: int
    arrays: dict[int, np.ndarray]
    per_image: set[int]
    notes: list[str] = field(default_factory=list)

    def inputs(self, batch: np.ndarray, images: Sequence[int] | None) -> list[np.ndarray]:
        """The model's inputs for a batch of images numbered ``images`` in the run's input order."""
        count = len(batch)
        given: list[np.ndarray] = []
        for place in range(len(self.names)):
            if place == self.image_index:
                given.append(batch)
            elif place in self.per_image:
                if images is None:
                    raise OptionError(f"input '{self.names[place]}' is fed one row per image: number the images")
                given.append(self.arrays[place][list(images)])
            else:
                given.append(np.broadcast_to(self.arrays[place], (count, *self.arrays[place].shape)))
        return given

    def check_rows(self, count: int) -> None:
        """Raise :class:`OptionError` where an input fed one row per image has another number of rows."""
        for place in sorted(self.per_image):
            rows = len(self.arrays[place])
            if rows != count:
                raise OptionError(
                    f"--feed {self.names[place]} has {rows} rows, one per image, but the run has {count} "
                    f"image{'' if count == 1 else 's'}"
                )


def resolve_feeds(
    model: Any, image_index: int, feed: Mapping[str, str | os.PathLike[str] | np.ndarray] | None
) -> Feeds | None:
    """What the model's other inputs get: the arrays (or ``.npy`` files) of ``feed`` by input name, zeros for the
    others (a note says so, naming the option); None for a model of one input.

    Raises:
        OptionError: a name that is not one of the model's other inputs, an array of the wrong shape, or a free-size
            input without a feed.
    """
    inputs = model_inputs(model)
    names = [name for name, _ in inputs]
    feed = dict(feed or {})
    if len(inputs) == 1:
        if feed:
            raise OptionError(f"model '{model.name}' has one input; --feed is for models of several")
        return None
    others = [name for number, name in enumerate(names) if number != image_index]
    for name in feed:
        if name not in others:
            what = "takes the images" if name == names[image_index] else "is not one of its inputs"
            raise OptionError(f"--feed {name}: '{name}' {what}; the model's other inputs are: {', '.join(others)}")
    result = Feeds(names, image_index, {}, set())
    for number, (name, shape) in enumerate(inputs):
        if number == image_index:
            continue
        value = feed.get(name)
        if value is None:
            if None in shape:
                raise OptionError(
                    f"input '{name}' has a free shape ({shape_text(shape)}): give it --feed {name}=FILE.npy"
                )
            result.arrays[number] = np.zeros([int(n or 0) for n in shape], dtype=np.float32)
            result.notes.append(f"input '{name}' gets zeros; give it values with --feed {name}=FILE.npy")
            continue
        array = _feed_array(name, value)
        if _fits(shape, array.shape):
            result.arrays[number] = array
        elif array.ndim == len(shape) + 1 and _fits(shape, array.shape[1:]):
            result.arrays[number] = array
            result.per_image.add(number)
        else:
            raise OptionError(
                f"--feed {name}: an array of shape {shape_text(array.shape)}; input '{name}' takes "
                f"{shape_text(shape)} (the same for every image) or N x {shape_text(shape)} (one row per image)"
            )
    return result


def fed_description(value: str | os.PathLike[str] | np.ndarray | None) -> str:
    """How a run names what an input was fed, in manifests and on the report's page.

    >>> fed_description("ages.npy"), fed_description(np.zeros((4, 2))), fed_description(None)
    ('ages.npy', 'an array of shape (4, 2)', 'zeros')
    """
    if value is None:
        return "zeros"
    return os.fspath(value) if isinstance(value, (str, os.PathLike)) else f"an array of shape {np.shape(value)}"


def _feed_array(name: str, value: str | os.PathLike[str] | np.ndarray) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value.astype(np.float32)
    try:
        return np.load(value, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError) as exc:
        raise OptionError(f"--feed {name}={os.fspath(value)}: not a readable .npy array ({exc})") from exc


def _fits(shape: Sequence[int | None], given: Sequence[int]) -> bool:
    return len(shape) == len(given) and all(want in (None, have) for want, have in zip(shape, given, strict=True))


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
        feeds: for a model of several inputs, what each input other than the images gets (:class:`Feeds`).
        notes: what to tell the user about how it was built (layers left in float32).
        precision: what the model computes in, ``float32`` or ``bfloat16``.
    """

    model: Any
    layers: list[ConvLayer]
    input_shape: tuple[int | None, ...]
    channels_first_input: bool
    skipped: list[ConvLayer] = field(default_factory=list)
    source_name: str = "model"
    feeds: Feeds | None = None
    notes: list[str] = field(default_factory=list)
    precision: str = "float32"
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

    def __call__(self, batch: np.ndarray, images: Sequence[int] | None = None) -> dict[str, np.ndarray]:
        """Run one forward pass over a channels-last ``(N, rows, cols, channels)`` batch; ``images`` are the
        batch's places in the run's input order, for inputs fed one row per image.

        Returns:
            The activations of each selected layer by path, channels last: ``(N, rows, cols, filters)``.
        """
        batch = np.asarray(batch, dtype=np.float32)
        if self.channels_first_input:
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
    model: Any,
    layers: Sequence[str] | None = None,
    *,
    reduce: Callable[[ConvLayer, Any], Any] | None = None,
    input: str | None = None,
    feed: Mapping[str, str | os.PathLike[str] | np.ndarray] | None = None,
    precision: str = "float32",
) -> Extractor:
    """Build one extractor over the given conv layers (all of them by default), nested models included.

    Args:
        model: a Keras model.
        layers: conv layer names, paths or patterns; all conv layers with 1-D or 2-D maps when None.
        reduce: turns a layer's symbolic output into what the extractor returns for it, computed inside the
            model (per-filter statistics instead of whole maps); any conv layer can then be chosen, and the
            extractor hands back the reduced tensors as they are.
        input: for a model of several inputs, the one that takes the images (:func:`cnnviz.models.graph.image_input`).
        feed: what the other inputs get, by name: arrays or ``.npy`` files (:func:`resolve_feeds`); zeros otherwise.
        precision: ``float32``, ``bfloat16`` or ``auto`` (:mod:`cnnviz.models.precision`): what the model computes
            in; what the extractor returns is float32 either way.

    Raises:
        LayerNotFound, NotAConvLayer: a name does not name a conv layer.
        OptionError: the image input cannot be told, or a feed does not fit.
        UnsupportedLayer: a layer's maps are not 1-D or 2-D (Conv3D), unless ``reduce`` is given.
        UnsupportedModel: the model's graph cannot be walked.
    """
    keras = keras_module()
    traced = trace(model, input=input, precision=resolve_precision(precision))
    index = image_input(model, input) if len(traced.sources) > 1 else 0
    feeds = resolve_feeds(model, index, feed)
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
        outputs = [
            _Reduction(functools.partial(reduce, conv), name=f"cnnviz_reduce_{number}")(traced.outputs[conv.path])
            for number, conv in enumerate(selected)
        ]
        selected = [replace(conv, channels_first=False) for conv in selected]  # reduced: no layout to undo
    extractor = keras.Model(traced.sources if feeds else traced.input, outputs, name="cnnviz_extractor")
    first = traced.convs[0] if traced.convs else None
    return Extractor(
        model=extractor,
        layers=list(selected),
        input_shape=input_shape(model, input),
        channels_first_input=bool(first and first.channels_first),
        skipped=skipped,
        source_name=model.name,
        feeds=feeds,
        notes=list(traced.notes),
        precision=traced.precision,
    )


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


def input_reader(model: Any, input: str | None = None) -> Extractor:
    """An extractor with no layers, for reading inputs the way ``model`` takes them (:func:`load_input`,
    :func:`load_groups`) where something else runs the model."""
    traced = trace(model, input=input)
    first = traced.convs[0] if traced.convs else None
    channels_first = bool(first and first.channels_first)
    shape = input_shape(model, input)
    return Extractor(None, [], shape, channels_first_input=channels_first, source_name=model.name)


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
    order = {os.fspath(path): number for number, path in enumerate(paths)}
    if extractor.feeds is not None:
        extractor.feeds.check_rows(len(paths))
    groups = load_groups(extractor, paths, preprocess, batch_size, size, fit, pad, on_error, data or {})
    for pending, batch, ready in prefetch(groups) if read_ahead else groups:
        if pixels is not None and not ready:
            pixels.update((os.fspath(path), array) for path, array in pending)
        yield from _run(extractor, pending, batch, on_error, [order[os.fspath(path)] for path, _ in pending])


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
    images: Sequence[int] | None = None,
) -> Iterator[tuple[list[ImagePath], dict[str, np.ndarray]]]:
    """One forward pass; when the model cannot run on these inputs, each is reported to ``on_error``."""
    try:
        maps = extractor(batch, images)
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
    input: str | None = None,
    feed: Mapping[str, Any] | None = None,
    precision: str = "float32",
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
        input, feed: for a model of several inputs, the one that takes the images and what the others get
            (:func:`build_extractor`).
        precision: ``float32``, ``bfloat16`` or ``auto``: what the model computes in (the maps come back float32).

    Returns:
        ``{layer path: array (N, rows, cols, filters)}``, channels last, in layer order.

    Raises:
        ImageLoadError: an image cannot be read.
        OptionError: no images, or they came out at different sizes (a model of free input size: give ``size``).
    """
    extractor = build_extractor(model, layers, input=input, feed=feed, precision=precision)
    if isinstance(images, np.ndarray):
        if extractor.feeds is not None:
            extractor.feeds.check_rows(len(images))
        return extractor(images, range(len(images)))
    if not images:
        raise OptionError("no images given")
    sized_input_shape(model, size, input)  # refuses a size that a fixed-size model cannot take
    chunks: dict[str, list[np.ndarray]] = {conv.path: [] for conv in extractor.layers}
    step = resolve_preprocessing(model, preprocess)
    for _, maps in iter_batches(extractor, images, step, batch_size=batch_size, size=size, fit=fit):
        for path, array in maps.items():
            chunks[path].append(array)
    sizes = {array.shape[1:] for array in next(iter(chunks.values()), [])}
    if len(sizes) > 1:
        raise OptionError("the images came out at different sizes (the model's input size is free); pass size=")
    return {path: np.concatenate(arrays) for path, arrays in chunks.items()}
