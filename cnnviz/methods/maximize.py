"""Activation maximisation: for each chosen filter of a layer, the image that makes the filter fire most.

Gradient ascent straight on pixels finds high-frequency noise that excites a filter but says little to a person.
cnnviz follows Lucid's recipe (Olah et al., "Feature Visualization", Distill 2017) instead:

- the image is parametrised in Fourier space, each frequency scaled by 1/frequency, so that the optimiser moves
  low frequencies as readily as high ones, and its colours are decorrelated (a whitened ImageNet colour basis);
- each step sees the image jittered, scaled and rotated a little, at random, so that only patterns that survive
  small moves are reinforced (transformation robustness).

All chosen filters are optimised together, one image per filter in a batch, by one step function compiled once
(:func:`cnnviz.backends.compiled`: ``tf.function`` on TensorFlow, ``jax.jit`` on JAX) and reused for every batch
and step; the step is written in ``keras.ops``, its gradient taken by :func:`cnnviz.backends.gradient`. Random
choices come from the seed and each filter's index, so the same seed gives the same images, byte for byte, and a
filter's image does not depend on which others are drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cnnviz import backends
from cnnviz._keras import keras_module
from cnnviz.crashes import doing
from cnnviz.errors import OptionError, UnsupportedLayer, UnsupportedModel
from cnnviz.inputs.feeds import resolve_feeds
from cnnviz.inputs.preprocess import resolve_preprocessing
from cnnviz.inputs.reader import FeedSettings
from cnnviz.methods.units import UnitChunk, UnitWork
from cnnviz.models.graph import ConvLayer, Trace, depends_on, input_shape, layer_twin, trace
from cnnviz.models.precision import resolve_precision

PARAMETRIZATIONS = ("fourier", "pixel")
DEFAULT_STEPS = 128
DEFAULT_SIZE = 128
#: Lucid's square root of ImageNet's colour covariance (rows: R, G, B), the basis the colours are optimised in,
#: scaled so that its largest column has unit norm.
_COLOUR_BASIS = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOUR_BASIS = _COLOUR_BASIS / np.linalg.norm(_COLOUR_BASIS, axis=0).max()
#: What the image shows where a transformation moved it off its own edge: mid-grey.
_FILL = 0.5
#: The spread of the random starting values.
_INIT_SD = 0.01


@dataclass(frozen=True)
class MaximizeOptions:
    """How the images are found.

    Attributes:
        steps: gradient-ascent steps.
        size: the images' side in pixels (square).
        seed: the random seed; the same seed gives the same images.
        parametrization: ``fourier`` (scaled spectrum, the default) or ``pixel`` (plain pixels, squashed by a
            sigmoid).
        decorrelate: optimise colours in a decorrelated basis (3-channel models only).
        jitter: the largest random shift per step, in pixels; 0 for none.
        scale: the largest relative random zoom per step (0.1: 0.9x to 1.1x); 0 for none.
        rotate: the largest random rotation per step, in degrees; 0 for none.
        learning_rate: Adam's step size.
        batch_size: filters optimised together.
    """

    steps: int = DEFAULT_STEPS
    size: int = DEFAULT_SIZE
    seed: int = 0
    parametrization: str = "fourier"
    decorrelate: bool = True
    jitter: int = 8
    scale: float = 0.1
    rotate: float = 10.0
    learning_rate: float = 0.05
    batch_size: int = 16

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise :class:`OptionError` for settings that cannot work (also when the options are made)."""
        if self.parametrization not in PARAMETRIZATIONS:
            raise OptionError(
                f"unknown parametrization '{self.parametrization}'; choose one of: {', '.join(PARAMETRIZATIONS)}"
            )
        if self.steps < 1 or self.size < 8 or self.batch_size < 1:
            raise OptionError("maximize needs at least 1 step, a size of at least 8 pixels and a batch of 1 or more")
        if self.jitter < 0 or not 0 <= self.scale < 1 or self.rotate < 0 or self.learning_rate <= 0:
            raise OptionError("jitter, scale and rotate must be >= 0 (scale below 1), the learning rate above 0")

    @property
    def described(self) -> str:
        """The settings in words, for headers."""
        moves = [
            name for name, amount in (("jitter", self.jitter), ("scale", self.scale), ("rotate", self.rotate)) if amount
        ]
        colour = "+decorrelated" if self.decorrelate else ""
        return (
            f"{self.size} px, {self.steps} steps, seed {self.seed}, {self.parametrization}{colour}, "
            f"{'/'.join(moves) or 'no transforms'}"
        )


@dataclass(frozen=True)
class Maximized:
    """The images found for a layer's filters.

    Attributes:
        images: ``(F, size, size, channels)`` in 0..1, channels last.
        filters: the filter of each image.
        activations: ``(F,)`` each filter's mean activation on its own image, untransformed.
        layer: the layer's path.
    """

    images: np.ndarray
    filters: list[int]
    activations: np.ndarray
    layer: str


class Maximizer:
    """One layer's activation maximisation, compiled once and run on any filters of the layer.

    Args:
        model: a Keras image model (nested models are fine: ``vgg16/block5_conv1``).
        layer: a conv layer's name or path.
        options: how to optimise.
        feeding: how 0..255 pixels are prepared for the model (applied inside the step, so its gradient is
            followed), which input takes the images, the values the others are held at, and the precision
            (:class:`cnnviz.inputs.reader.FeedSettings`).

    Raises:
        OptionError: bad options.
        LayerNotFound, NotAConvLayer: the layer is not a conv layer of the model.
        UnsupportedLayer: the layer's maps are not 2-D.
        UnsupportedModel: the model does not take images.
    """

    def __init__(
        self,
        model: Any,
        layer: str,
        options: MaximizeOptions | None = None,
        feeding: FeedSettings | None = None,
    ) -> None:
        options = options if options is not None else MaximizeOptions()
        feeding = feeding if feeding is not None else FeedSettings()
        input, feed, precision = feeding.input, feeding.feed, feeding.precision
        options.check()
        keras = keras_module()
        shape = input_shape(model, input)
        if len(shape) != 3:
            raise UnsupportedModel(f"model '{model.name}' does not take images; maximize draws images")
        whole = trace(model, input=input)
        conv = whole.find([layer])[0]
        if len(conv.output_shape) != 3:
            raise UnsupportedLayer(f"layer '{conv.path}' is a {conv.kind}; maximize works on layers of 2-D maps")
        first = whole.convs[0]
        own, options = options, _tokens_size(model, whole, shape, options)
        self.channels_first_input = first.channels_first and shape[0] in (1, 3)
        channels = (shape[0] if self.channels_first_input else shape[-1]) or 3
        side = options.size
        traced = trace(
            model,
            (channels, side, side) if self.channels_first_input else (side, side, channels),
            conv.path,
            input=input,
            precision=resolve_precision(precision),
        )
        #: What to tell the user (layers left in float32).
        self.notes = list(traced.notes)
        if options.size != own.size:
            self.notes.append(f"images of {options.size} px, the size model '{model.name}''s position embeddings fix")
        #: What the model computes in: ``float32``, or ``bfloat16`` (float32 where the model cannot).
        self.precision = traced.precision
        self.conv: ConvLayer = conv
        self.channels = int(channels)
        self.options = options
        # A plain Conv2D is computed here for the chosen filters only (the model stops at its input): a batch of 8
        # images needs 8 of block5_conv1's 512 filters, which saves about 7% of VGG16's step. Other layers run
        # whole, through a twin without their activation.
        self._direct = _plain_conv2d(conv)
        if self._direct:
            before, self._activation = traced.inputs[conv.path], conv.layer.activation
        else:
            before, self._activation = _before_activation(traced, conv)
        # The model's other inputs (metadata) are held at their fed values, or zeros, where the layer needs them.
        self._held: list[np.ndarray | None] = []
        if any(depends_on(before, source) for source in traced.sources if source is not traced.input):
            feeds = resolve_feeds(model, traced.image_index, feed)
            assert feeds is not None  # several inputs
            if feeds.per_image:
                names = ", ".join(feeds.names[place] for place in sorted(feeds.per_image))
                raise OptionError(f"maximize holds the other inputs at one value: give {names} one array, not rows")
            self._held = [feeds.arrays.get(place) for place in range(len(feeds.names))]
            self.model = keras.Model(traced.sources, before, name="cnnviz_maximizer")
        else:
            self.model = keras.Model(traced.input, before, name="cnnviz_maximizer")
        gain, offset = resolve_preprocessing(model, feeding.preprocess).affine(self.channels)
        self._gain, self._offset = gain.astype(np.float32), offset.astype(np.float32)
        self._decorrelate = options.decorrelate and self.channels == 3
        self._spectrum_scale = _spectrum_scale(options.size, options.size)
        self._dft = _inverse_dft_matrices(options.size, options.size)
        self._step = self._compile()

    @property
    def filters(self) -> int:
        """How many filters the layer has."""
        return int(self.conv.output_shape[-1] or 0)

    def __call__(self, filters: Sequence[int], progress: Callable[[int], object] | None = None) -> Maximized:
        """Find an image for each of ``filters``, in batches of ``options.batch_size``.

        Args:
            filters: filter indices of the layer.
            progress: called with the number of filter-steps done after each step.

        Raises:
            OptionError: a filter index out of range.
        """
        wrong = [index for index in filters if not 0 <= index < self.filters]
        if wrong:
            raise OptionError(f"filter {wrong[0]} is out of range: layer '{self.conv.path}' has {self.filters}")
        images, activations = [], []
        size = self.options.batch_size
        for start in range(0, len(filters), size):
            chunk = list(filters[start : start + size])
            # A short last batch is padded with repeats of its first filter: the compiled step keeps one shape.
            padded = chunk + [chunk[0]] * (min(size, len(filters)) - len(chunk))
            found, reached = self._run(padded, progress, len(chunk))
            images.append(found[: len(chunk)])
            activations.append(reached[: len(chunk)])
        return Maximized(np.concatenate(images), list(filters), np.concatenate(activations), self.conv.path)

    def _run(
        self, filters: list[int], progress: Callable[[int], object] | None, real: int
    ) -> tuple[np.ndarray, np.ndarray]:
        ops = keras_module().ops
        params = ops.convert_to_tensor(np.stack([self._start(index) for index in filters]))
        first, second = ops.zeros_like(params), ops.zeros_like(params)
        moves = ops.convert_to_tensor(np.stack([self._moves(index) for index in filters], axis=1))  # (steps, batch, 4)
        targets = ops.convert_to_tensor(np.asarray(filters, dtype=np.int32))
        with doing(f"maximize: filters {filters[:real]} of layer '{self.conv.path}', gradient ascent"):
            for step in range(self.options.steps):
                count = ops.convert_to_tensor(np.float32(step + 1.0))
                params, first, second = self._step(params, first, second, count, targets, moves[step])
                if progress is not None:
                    progress(real)
            images = self._image(params)
            reached = self._objective(images, targets, activated=True)
        return ops.convert_to_numpy(images), ops.convert_to_numpy(reached)

    def _start(self, index: int) -> np.ndarray:
        """A filter's starting parameters, from the seed and its index alone."""
        rng = np.random.default_rng([self.options.seed, index, 0])
        size = self.options.size
        if self.options.parametrization == "fourier":
            shape: tuple[int, ...] = (self.channels, 2, size, size // 2 + 1)  # real, imaginary
        else:
            shape = (size, size, self.channels)
        return (rng.standard_normal(shape) * _INIT_SD).astype(np.float32)

    def _moves(self, index: int) -> np.ndarray:
        """A filter's random moves for every step: (steps, 4) shift rows, shift cols, zoom, angle in radians."""
        rng = np.random.default_rng([self.options.seed, index, 1])
        steps, jitter = self.options.steps, self.options.jitter
        shifts = rng.integers(-jitter, jitter + 1, size=(steps, 2)).astype(np.float32)
        zoom = 1.0 + rng.uniform(-self.options.scale, self.options.scale, size=(steps, 1))
        angle = np.radians(rng.uniform(-self.options.rotate, self.options.rotate, size=(steps, 1)))
        return np.concatenate([shifts, zoom, angle], axis=1).astype(np.float32)

    def _image(self, params: Any) -> Any:
        """The parameters as images, ``(batch, size, size, channels)`` in 0..1."""
        ops = keras_module().ops
        if self.options.parametrization == "fourier":
            values = _inverse_rfft2d(params * self._spectrum_scale, *self._dft) / 4.0
        else:
            values = params
        if self._decorrelate:
            values = ops.tensordot(values, _COLOUR_BASIS.T.astype(np.float32), axes=1)
        return ops.sigmoid(values)

    def _objective(self, images: Any, targets: Any, activated: bool = False) -> Any:
        """Each image's target filter's mean over the layer's maps: before the layer's activation function
        (what is optimised: a ReLU's zero would stop the gradient of a filter silent on the starting image), or
        after it (``activated``: what is reported)."""
        ops = keras_module().ops
        pixels = ops.tensordot(images * 255.0, self._gain, axes=1) + self._offset
        if self.channels_first_input:
            pixels = ops.transpose(pixels, [0, 3, 1, 2])
        if self._held:
            count = images.shape[0]
            pixels = [pixels if held is None else ops.broadcast_to(held, (count, *held.shape)) for held in self._held]
        outputs = ops.cast(self.model(pixels, training=False), "float32")  # updates accumulate in float32
        if self._direct:
            layer = self.conv.layer
            kernel = ops.take(ops.convert_to_tensor(layer.kernel), targets, axis=3)
            maps = ops.conv(
                outputs,
                kernel,
                strides=tuple(layer.strides),
                padding=layer.padding,
                data_format="channels_last",
                dilation_rate=tuple(layer.dilation_rate),
            )
            if layer.use_bias:
                maps += ops.take(ops.convert_to_tensor(layer.bias), targets)
            if activated:
                maps = self._activation(maps)
            # image i against filter i: the diagonal of (batch, filters)
            return ops.diagonal(ops.mean(maps, axis=(1, 2)))
        maps = self._activation(outputs) if activated else outputs
        means = ops.mean(maps, axis=(2, 3) if self.conv.channels_first else (1, 2))  # (batch, filters)
        return ops.take_along_axis(means, targets[:, None], axis=1)[:, 0]

    def _compile(self) -> Any:
        ops = keras_module().ops
        rate = self.options.learning_rate
        beta1, beta2, epsilon = 0.9, 0.999, 1e-8
        size = self.options.size
        transformed = bool(self.options.jitter or self.options.scale or self.options.rotate)

        def loss(params: Any, targets: Any, moves: Any) -> Any:
            images = self._image(params)
            seen = _moved(images, moves, size) if transformed else images
            return -ops.sum(self._objective(seen, targets))

        gradient = backends.gradient(loss)

        def step(params: Any, first: Any, second: Any, count: Any, targets: Any, moves: Any) -> Any:
            grad = gradient(params, targets, moves)
            # Adam, by hand: elementwise, so each filter's image follows its own objective alone.
            first = beta1 * first + (1.0 - beta1) * grad
            second = beta2 * second + (1.0 - beta2) * grad * grad
            corrected = rate * ops.sqrt(1.0 - beta2**count) / (1.0 - beta1**count)
            return params - corrected * first / (ops.sqrt(second) + epsilon), first, second

        return backends.compiled(step, [*self.model.variables, *self.conv.layer.variables])


def _tokens_size(model: Any, whole: Trace, shape: tuple[int | None, ...], options: MaximizeOptions) -> MaximizeOptions:
    """The options at the size a Vision Transformer of fixed input size takes (its position embeddings fix the
    number of patches) where the size is the default; an :class:`OptionError` where another size was asked."""
    rows, cols = (shape[1], shape[2]) if whole.convs[0].channels_first else (shape[0], shape[1])
    if all(conv.tokens is None for conv in whole.convs) or rows is None or options.size == rows == cols:
        return options
    if rows != cols or options.size != DEFAULT_SIZE:
        raise OptionError(
            f"model '{model.name}' takes {rows}x{cols} images: its position embeddings fix the number of patches, "
            f"so maximize draws its square images at that size only (`size` {rows})"
        )
    return replace(options, size=int(rows))


def _plain_conv2d(conv: ConvLayer) -> bool:
    """Whether the layer is a plain Conv2D (channels last, one group) that :meth:`Maximizer._objective` can
    compute for chosen filters alone."""
    keras = keras_module()
    layer = conv.layer
    return type(layer) is keras.layers.Conv2D and not conv.channels_first and getattr(layer, "groups", 1) == 1


def _before_activation(traced: Trace, conv: ConvLayer) -> tuple[Any, Callable[[Any], Any]]:
    """The conv layer's output before its own activation function (through a weight-sharing twin with a linear
    activation), and the function that turns it into the layer's output; the output itself and the identity where
    the layer has no activation of its own or computes in channels_first layout."""
    layer = conv.layer
    given = traced.inputs.get(conv.path)
    activation = getattr(layer, "activation", None)
    if activation is None or getattr(activation, "__name__", "") == "linear" or conv.channels_first or given is None:
        return traced.outputs[conv.path], lambda maps: maps
    twin = layer_twin(layer, given.shape, activation="linear", name=f"{layer.name}_linear")
    return twin(given), activation


def _spectrum_scale(rows: int, cols: int) -> np.ndarray:
    """Per-frequency gains of the Fourier parametrisation, ``(rows, cols // 2 + 1)``: 1/frequency (the lowest
    frequency capped), times the image's side, so that a unit change moves any frequency about equally far."""
    freqs = np.sqrt(np.fft.fftfreq(rows)[:, None] ** 2 + np.fft.rfftfreq(cols)[None, :] ** 2)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(rows, cols))
    return (scale * math.sqrt(rows * cols)).astype(np.float32)


def _inverse_dft_matrices(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The matrices of a 2-D inverse real DFT (:func:`_inverse_rfft2d`): ``(2 rows, 2 rows)`` for the full inverse
    transform over row frequencies, acting on stacked (real; imaginary) parts, and the cosine and negated sine
    ``(cols // 2 + 1, cols)`` matrices of the real one over column frequencies (each frequency between the
    constant and the Nyquist one stands for itself and its mirror image, so it counts twice)."""
    row_angles = 2.0 * np.pi * np.outer(np.arange(rows), np.arange(rows)) / rows
    cos, sin = np.cos(row_angles) / rows, np.sin(row_angles) / rows
    half = cols // 2 + 1
    col_angles = 2.0 * np.pi * np.outer(np.arange(half), np.arange(cols)) / cols
    counts = np.full((half, 1), 2.0)
    counts[0] = 1.0
    if cols % 2 == 0:
        counts[-1] = 1.0
    return (
        np.block([[cos, -sin], [sin, cos]]).astype(np.float32),
        (counts * np.cos(col_angles) / cols).astype(np.float32),
        (-counts * np.sin(col_angles) / cols).astype(np.float32),
    )


def _inverse_rfft2d(spectrum: Any, rows_matrix: Any, col_cos: Any, col_minus_sin: Any) -> Any:
    """``irfft2d`` of ``(batch, channels, 2, rows, cols // 2 + 1)`` spectra (real and imaginary parts
    stacked), as matrix products, channels last: ``(batch, rows, cols, channels)``. Three matrix products with
    no reshuffling in between took 5 ms a step (forward and gradient) for 8 images of 128 pixels, where
    TensorFlow's FFT kernels and the transposes around them took 12 ms."""
    ops = keras_module().ops
    batch, channels, _, rows, half = spectrum.shape
    stacked = ops.reshape(spectrum, (-1, 2 * rows, half))
    mixed = ops.matmul(rows_matrix, stacked)  # over row frequencies: complex in, complex out, stacked again
    real = ops.matmul(mixed[:, :rows], col_cos) + ops.matmul(mixed[:, rows:], col_minus_sin)
    return ops.transpose(ops.reshape(real, (-1, channels, rows, real.shape[-1])), (0, 2, 3, 1))


def _moved(images: Any, moves: Any, size: int) -> Any:
    """Each image shifted, zoomed and rotated about its centre by its row of ``moves`` (rows, cols, zoom,
    radians), sampled bilinearly back onto ``size`` x ``size``; places moved in from outside are mid-grey.

    ``keras.ops.image.affine_transform`` does the sampling: on TensorFlow its projective-transform kernel (whose
    gradient maps the output's gradient back by the inverse transform, as Lucid's did; a gather-based sampler
    written here took 20 ms a step where it takes 8), on JAX ``map_coordinates``.
    """
    ops = keras_module().ops
    shift_r, shift_c, zoom, angle = (moves[:, part] for part in range(4))
    cos, sin = ops.cos(angle) / zoom, ops.sin(angle) / zoom
    centre = (size - 1) / 2.0
    zeros = ops.zeros_like(cos)
    # output (col x, row y) is read from input col cos*x + sin*y + ..., row -sin*x + cos*y + ...: a rotation and
    # zoom about the centre, then the shift
    transforms = ops.stack(
        [
            cos,
            sin,
            centre * (1.0 - cos - sin) - shift_c,
            -sin,
            cos,
            centre * (1.0 - cos + sin) - shift_r,
            zeros,
            zeros,
        ],
        axis=1,
    )
    return ops.image.affine_transform(
        images,
        transforms,
        interpolation="bilinear",
        fill_mode="constant",
        fill_value=_FILL,
        data_format="channels_last",
    )


def maximize(
    model: Any,
    layer: str,
    filters: Sequence[int] | None = None,
    options: MaximizeOptions = MaximizeOptions(),  # noqa: B008 - frozen, so sharing the default is safe
    feeding: FeedSettings | None = None,
) -> Maximized:
    """Find, for each filter of ``layer``, the image that excites it most (see :class:`Maximizer`).

    Args:
        model: a Keras image model.
        layer: a conv layer's name or path.
        filters: filter indices; the first 16 by default.
        options: how to optimise.
        feeding: how pixels are prepared for the model, which input takes the images and the values the others
            are held at (zeros by default), and what the model computes in (the updates accumulate in float32):
            :class:`cnnviz.inputs.reader.FeedSettings`.

    Returns:
        A :class:`Maximized` with one image per filter, in 0..1.
    """
    maximizer = Maximizer(model, layer, options, feeding)
    chosen = list(filters) if filters is not None else list(range(min(16, maximizer.filters)))
    return maximizer(chosen)


@dataclass(frozen=True)
class MaximizeWork:
    """What :class:`MaximizeUnits` is set up with: the optimiser's settings and how the model is fed."""

    options: MaximizeOptions = field(default_factory=MaximizeOptions)
    feeding: FeedSettings = field(default_factory=FeedSettings)


class MaximizeUnits(UnitWork[Maximized]):
    """``maximize`` as work over units (:mod:`cnnviz.engines.units`): a :class:`Maximizer` per layer, made on its
    first chunk, run on each chunk's filters. A chunk of the filters ``maximize --filters`` draws in one batch
    gives its images, byte for byte (each filter's start and moves come from the seed and its index alone)."""

    def __init__(self, model: Any, options: MaximizeWork) -> None:
        super().__init__(model, options)
        self._made: dict[str, Maximizer] = {}

    def maximizer(self, layer: str) -> Maximizer:
        """The layer's maximizer, made once."""
        if layer not in self._made:
            self._made[layer] = Maximizer(self.model, layer, self.options.options, self.options.feeding)
        return self._made[layer]

    def run(self, chunk: UnitChunk) -> Maximized:  # noqa: D102
        return self.maximizer(chunk.layer)(list(chunk.units))
