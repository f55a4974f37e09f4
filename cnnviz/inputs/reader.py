"""Reading inputs the way a model takes them: one :class:`Reader`, built once from a model and the
:class:`ReadingSettings`, yields batches ready for the model with the records of what is in them.

Every method that goes over images, on every engine, reads through a Reader: the same decoding, fit, padding,
preprocessing and numbering of the images in the run's order (inputs fed one row per image are picked by it).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.errors import CnnvizError, ImageLoadError, OptionError
from cnnviz.inputs.feeds import Feeds, resolve_feeds
from cnnviz.inputs.images import DEFAULT_FIT, check_fit, load_image
from cnnviz.inputs.pipeline import prefetch
from cnnviz.inputs.preprocess import DEFAULT_PREPROCESSING, MODES, Preprocessing, resolve_preprocessing
from cnnviz.models.graph import image_input, input_shape, shape_text, trace
from cnnviz.models.precision import DEFAULT_PRECISION, check_precision

ImagePath = str | os.PathLike[str]
#: ``on_error(path, error)``: an input that could not be read, or that the model could not run on.
OnError = Callable[[ImagePath, CnnvizError], None]
#: Images per forward pass unless asked otherwise.
DEFAULT_BATCH_SIZE = 8


@dataclass(frozen=True)
class FeedSettings:
    """How inputs are fed to the model, whoever makes them (files read, or images a method optimises); the one
    place these defaults are set.

    Attributes:
        preprocess: ``auto`` (follow the model) or a name from :data:`cnnviz.inputs.preprocess.MODES`.
        input: for a model of several inputs, the one that takes the images; the only image-shaped one when None.
        feed: for a model of several inputs, what the others get, by name: an array (or ``.npy`` file) of the
            input's shape for every image, or with a leading axis of one row per image; zeros where not given.
        precision: what the model computes in: ``float32``, ``bfloat16`` (about twice as fast where the CPU has
            AVX512-BF16 or AMX; pictures agree to a colour level or two) or ``auto`` (bfloat16 where native).
    """

    preprocess: str = DEFAULT_PREPROCESSING
    input: str | None = None
    feed: Mapping[str, Any] | None = None
    precision: str = DEFAULT_PRECISION

    def check_feeding(self) -> None:
        """Raise :class:`OptionError` for settings that cannot work."""
        if self.preprocess not in MODES:
            raise OptionError(f"unknown preprocessing '{self.preprocess}'; choose one of: {', '.join(MODES)}")
        check_precision(self.precision)
        if self.feed is not None and not all(isinstance(name, str) and name for name in self.feed):
            raise OptionError(f"feed maps input names to arrays or .npy files, got {list(self.feed)}")

    @property
    def feeding(self) -> FeedSettings:
        """These settings alone, without the fields of the options object they are part of."""
        return FeedSettings(self.preprocess, self.input, self.feed, self.precision)


@dataclass(frozen=True)
class ReadingSettings(FeedSettings):
    """How the runs that feed image files to the model read them: :class:`FeedSettings`, and

    Attributes:
        size: a (rows, cols) input size for models of free input size.
        fit: ``crop``, ``pad`` or ``stretch``, for a fixed input size of another shape.
        batch_size: images per forward pass.
    """

    size: tuple[int, int] | None = None
    fit: str = DEFAULT_FIT
    batch_size: int = DEFAULT_BATCH_SIZE

    def check_reading(self) -> None:
        """Raise :class:`OptionError` for reading settings that cannot work."""
        self.check_feeding()
        check_fit(self.fit)
        if self.batch_size < 1:
            raise OptionError(f"the batch size must be at least 1, got {self.batch_size}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise OptionError(f"a size is (rows, cols) of at least 1 pixel, got {self.size}")

    @property
    def reading(self) -> ReadingSettings:
        """These settings alone, without the fields of the options object they are part of (picklable, and what
        a :class:`Reader` is built from)."""
        return ReadingSettings(
            preprocess=self.preprocess,
            input=self.input,
            feed=self.feed,
            precision=self.precision,
            size=self.size,
            fit=self.fit,
            batch_size=self.batch_size,
        )


@dataclass(frozen=True)
class ModelInput:
    """What a model's image input takes.

    Attributes:
        shape: its shape without the batch axis, in the model's own layout (None for free sizes).
        channels_first: whether images must be given to the model as (channels, rows, cols).
    """

    shape: tuple[int | None, ...]
    channels_first: bool = False

    @classmethod
    def of(cls, model: Any, input: str | None = None) -> ModelInput:
        """The image input of ``model`` (the one called ``input``, for a model of several)."""
        traced = trace(model, input=input)
        first = traced.convs[0] if traced.convs else None
        return cls(input_shape(model, input), bool(first and first.channels_first))

    @property
    def takes_images(self) -> bool:
        """Whether the model's input is an image, (rows, cols, channels); else only ``.npy`` arrays fit it."""
        return len(self.shape) == 3

    @property
    def channels(self) -> int:
        """The number of image channels the model takes (3 when the model leaves it open)."""
        value = self.shape[0] if self.channels_first else self.shape[-1]
        return 3 if value is None else int(value)

    @property
    def channels_last_shape(self) -> tuple[int | None, ...]:
        """The input shape as inputs are given: channels last, whatever the model's layout."""
        return self.shape[1:] + self.shape[:1] if self.channels_first else self.shape

    @property
    def spatial_size(self) -> tuple[int | None, int | None]:
        """The (rows, cols) input size; None where the model accepts any size."""
        spatial = self.shape[1:] if self.channels_first else self.shape[:-1]
        return (spatial[0], spatial[1])


def load_input(
    taken: ModelInput,
    path: ImagePath,
    size: tuple[int, int] | None = None,
    fit: str = DEFAULT_FIT,
    pad: Sequence[float] | float = 0.0,
    data: bytes | None = None,
) -> tuple[np.ndarray, bool]:
    """Read one input as the model takes it (``taken``): an image file, or a ``.npy`` array fed as it is (channels
    last, as every input is given; a channels_first model gets it turned).

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
        expected = taken.channels_last_shape
        fits = array.ndim == len(expected) and all(e in (None, a) for e, a in zip(expected, array.shape, strict=True))
        if not fits:
            raise ImageLoadError(f"{path}: an array of shape {array.shape}; the model takes {shape_text(expected)}")
        return array, True
    if not taken.takes_images:
        shape = shape_text(taken.shape)
        raise ImageLoadError(f"{path}: the model takes arrays of shape {shape}, not images; give .npy files")
    return load_image(path, taken.channels, taken.spatial_size, size, fit=fit, pad=pad, data=data), False


def neutral_padding(taken: ModelInput, preprocess: Preprocessing, fit: str) -> tuple[float, ...] | float:
    """What ``fit="pad"`` pads images with: the pixel that preprocessing maps to zero, which adds no edges of its
    own (0 for other fits, where nothing is padded)."""
    if fit == "pad" and taken.takes_images:
        return tuple(preprocess.neutral(taken.channels).tolist())
    return 0.0


@dataclass
class Batch:
    """Inputs read and stacked for one forward pass.

    Attributes:
        paths: the inputs' paths, as the run was given them.
        numbers: their places in the run's input order (inputs fed one row per image are picked by them).
        arrays: each input as read: fitted 0..255 pixels, or a model-ready ``.npy`` array.
        model_ready: whether the arrays are model-ready ``.npy`` inputs rather than pixels.
        data: the stacked batch, preprocessed: what the model is given, channels last.
    """

    paths: list[str]
    numbers: list[int]
    arrays: list[np.ndarray]
    model_ready: bool
    data: np.ndarray

    @property
    def pixels(self) -> list[np.ndarray | None]:
        """Each input's pixels to draw over: the image as read, None for arrays and for images of other than 1 or
        3 channels."""
        return [None if self.model_ready or array.shape[-1] not in (1, 3) else array for array in self.arrays]


class Reader:
    """Reads a run's inputs for one model: built once from the model and the :class:`ReadingSettings`, then
    asked for batches (:meth:`batches`) as often as needed.

    Attributes:
        settings: how inputs are read.
        taken: what the model's image input takes.
        preprocessing: the step applied to pixels (resolved from ``settings.preprocess``).
        pad: what ``fit="pad"`` pads with.
        feeds: what the model's other inputs get, for a model of several inputs (None otherwise).

    Raises:
        OptionError: a preprocessing, input or feed that does not fit the model.
        UnsupportedModel: the model has no defined input.
    """

    def __init__(self, model: Any, settings: ReadingSettings | None = None) -> None:
        self.settings = settings.reading if settings is not None else ReadingSettings()
        self.settings.check_reading()
        self.taken = ModelInput.of(model, self.settings.input)
        self.preprocessing = resolve_preprocessing(model, self.settings.preprocess)
        if self.settings.size is None and self.preprocessing.size is not None and None in self.taken.spatial_size:
            # a model of free input size whose own preprocessing resizes (a KerasHub converter): its size
            self.settings = replace(self.settings, size=self.preprocessing.size)
        self.pad = neutral_padding(self.taken, self.preprocessing, self.settings.fit)
        several = len(getattr(model, "inputs", None) or []) > 1
        index = image_input(model, self.settings.input) if several else 0
        self.feeds: Feeds | None = resolve_feeds(model, index, self.settings.feed)

    @property
    def fit(self) -> str:
        """How images get the model's input size, as runs report it: the settings' fit, ``none`` where images keep
        their own shape (a model of free input size, no ``settings.size``) or the model takes arrays."""
        taken = self.taken  # an array input (1-D maps) has no spatial size to ask about
        fitted = taken.takes_images and (self.settings.size is not None or None not in taken.spatial_size)
        return self.settings.fit if fitted else "none"

    def read(self, path: ImagePath, data: bytes | None = None) -> tuple[np.ndarray, bool]:
        """One input as read (:func:`load_input`): (the array, whether it is model-ready)."""
        settings = self.settings
        return load_input(self.taken, path, settings.size, settings.fit, self.pad, data)

    def batches(
        self,
        paths: Sequence[ImagePath],
        numbers: Mapping[str, int] | None = None,
        on_error: OnError | None = None,
        data: Mapping[str, bytes] | None = None,
        read_ahead: bool = True,
    ) -> Iterator[Batch]:
        """The inputs in batches of at most ``settings.batch_size``, each of one shape and kind (images that
        resize to different shapes, for a model of free input size, go in separate batches).

        Args:
            paths: image files, and ``.npy`` files of model-ready arrays (not preprocessed).
            numbers: each path's place in the run's input order; its place in ``paths`` when None. An engine that
                gives a worker part of the inputs passes the places in the whole run.
            on_error: called with a path and its error for each input that cannot be read; the others go on.
                Without it the error is raised. With ``read_ahead`` it is called from the reading thread.
            data: the files' bytes by path, for files read already; the others are read from disk.
            read_ahead: read the next batch in a background thread while the caller works on this one.

        Raises:
            OptionError: an input fed one row per image has another number of rows than the run has inputs.
        """
        if numbers is None:
            numbers = {os.fspath(path): number for number, path in enumerate(paths)}
        if self.feeds is not None:
            self.feeds.check_rows(len(numbers))
        groups = self._groups(paths, numbers, on_error, data or {})
        return prefetch(groups) if read_ahead else groups

    def _groups(
        self,
        paths: Sequence[ImagePath],
        numbers: Mapping[str, int],
        on_error: OnError | None,
        data: Mapping[str, bytes],
    ) -> Iterator[Batch]:
        pending: list[tuple[str, np.ndarray]] = []
        pending_ready = False
        for path in paths:
            try:
                array, ready = self.read(path, data.get(os.fspath(path)))
            except ImageLoadError as exc:
                if on_error is None:
                    raise
                on_error(path, exc)
                continue
            full = len(pending) >= self.settings.batch_size
            if pending and (pending[0][1].shape != array.shape or pending_ready != ready or full):
                yield self._stack(pending, pending_ready, numbers)
                pending = []
            pending.append((os.fspath(path), array))
            pending_ready = ready
        if pending:
            yield self._stack(pending, pending_ready, numbers)

    def _stack(self, pending: list[tuple[str, np.ndarray]], ready: bool, numbers: Mapping[str, int]) -> Batch:
        stacked = np.stack([array for _, array in pending])
        return Batch(
            paths=[path for path, _ in pending],
            numbers=[numbers[path] for path, _ in pending],
            arrays=[array for _, array in pending],
            model_ready=ready,
            data=stacked if ready else self.preprocessing(stacked),
        )


def load_batch(reader: Reader, images: Sequence[str | os.PathLike[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Read images through ``reader`` as ``featuremaps`` does: (the preprocessed batch, the fitted 0..255 pixels).

    Raises:
        ImageLoadError: an image cannot be read.
        OptionError: no images, or they come out at different sizes.
    """
    if not images:
        raise OptionError("no images given")
    step = reader.preprocessing
    loaded = [reader.read(path) for path in images]
    if len({array.shape for array, _ in loaded}) > 1:
        raise OptionError("the images came out at different sizes (the model's input size is free); pass size=")
    pixels = np.stack([array for array, _ in loaded])
    ready = all(is_ready for _, is_ready in loaded)
    return (pixels if ready else step(pixels)), pixels
