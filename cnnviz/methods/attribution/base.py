"""The shape every attribution method shares: its settings, what it is given for a batch, what it returns.

A method is a small class (one module each in this package) with a name, a title for pictures, whether it needs a
conv layer's maps, which of the shared :class:`AttributionSettings` it reads, and one function,
:meth:`Attribution.explain`, from a :class:`Batch` (the model-ready images, the classes explained, the baseline,
the layer's maps shared by every method of the run) to ``(N, rows, cols)`` attributions at the model's input size.
Everything a method asks of the model goes through :class:`cnnviz.methods.target.TargetModel`, so every method
runs on every model, backend and precision the target model handles, and on every engine that runs the
attribution run's scan.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from cnnviz.errors import OptionError
from cnnviz.inputs.preprocess import Preprocessing
from cnnviz.methods.resample import resize_maps
from cnnviz.methods.target import LayerPass, Scored, TargetModel

#: What a masked-out pixel becomes, for the methods that take a baseline: ``black`` (what preprocessing makes of a
#: black image), ``zero`` (0 in the model's input space), ``mean`` (each image's mean colour), ``blur`` (the image
#: blurred: :func:`blurred`), or a number.
BASELINES = ("black", "zero", "mean", "blur")
#: The methods a report shows by default: one forward and one backward pass each.
REPORT_METHODS = ("gradcam", "layercam", "eigencam", "gradient")


@dataclass(frozen=True)
class AttributionSettings:
    """The settings of the methods that have any; None is each method's default. A setting is refused where none
    of the methods chosen reads it.

    Attributes:
        samples: SmoothGrad's noisy copies per image (default 50).
        noise: SmoothGrad's noise, as a fraction of each image's value range (default 0.15).
        seed: SmoothGrad's noise and RISE's masks: the same seed gives the same bytes (default 0).
        steps: Integrated Gradients' steps from the baseline to the image (default 64).
        baseline: what occlusion, RISE and Integrated Gradients put where a pixel is taken out: one of
            :data:`BASELINES` or a number in the model's input space (default ``black``).
        patch: occlusion's square patch side in pixels (default an eighth of the input's short side).
        stride: occlusion's step between patches in pixels (default half the patch).
        masks: RISE's random masks per image (default 2000).
    """

    samples: int | None = None
    noise: float | None = None
    seed: int | None = None
    steps: int | None = None
    baseline: str | float | None = None
    patch: int | None = None
    stride: int | None = None
    masks: int | None = None

    def __post_init__(self) -> None:
        for name in ("samples", "steps", "patch", "stride", "masks"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise OptionError(f"`{name}` must be at least 1, got {value}")
        if self.noise is not None and self.noise < 0:
            raise OptionError(f"`noise` is a fraction of the value range, 0 or more; got {self.noise}")
        if isinstance(self.baseline, str) and self.baseline not in BASELINES:
            try:
                float(self.baseline)
            except ValueError:
                raise OptionError(
                    f"unknown baseline '{self.baseline}'; choose one of: {', '.join(BASELINES)}, or a number"
                ) from None

    def given(self) -> list[str]:
        """The settings set (not None)."""
        return [item.name for item in fields(self) if getattr(self, item.name) is not None]

    def value(self, name: str, default: Any) -> Any:
        """A setting, or ``default`` where it is not set."""
        value = getattr(self, name)
        return default if value is None else value


def baseline_of(inputs: np.ndarray, choice: str | float, preprocessing: Preprocessing | None) -> np.ndarray:
    """What a taken-out pixel becomes for a model-ready batch ``inputs`` (:data:`BASELINES`); ``black`` is
    ``preprocessing`` of a black image (0 where there is none)."""
    inputs = np.asarray(inputs, dtype=np.float32)
    if choice == "black":
        if preprocessing is None:
            return np.zeros_like(inputs)
        black = np.asarray(preprocessing(np.zeros(inputs.shape[1:], np.float32)), np.float32)
        return np.broadcast_to(black, inputs.shape).copy()
    if choice == "zero":
        return np.zeros_like(inputs)
    if choice == "mean":
        return np.broadcast_to(inputs.mean(axis=(1, 2), keepdims=True), inputs.shape).copy()
    if choice == "blur":
        return blurred(inputs)
    return np.full_like(inputs, float(choice))


def blurred(inputs: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """``(N, rows, cols, channels)`` blurred by a Gaussian of ``sigma`` pixels (default a twentieth of the short
    side, as insertion's start in Petsiuk et al. 2018 keeps colours and loses shapes), edges mirrored.

    >>> flat = np.full((1, 9, 9, 1), 2.0, np.float32)
    >>> bool(np.allclose(blurred(flat), 2.0))
    True
    """
    inputs = np.asarray(inputs, dtype=np.float32)
    rows, cols = inputs.shape[1:3]
    sigma = sigma if sigma is not None else max(min(rows, cols) / 20.0, 0.5)
    radius = max(1, int(round(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    out = inputs
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        size = out.shape[axis]
        out = sum(taps[k] * np.take(padded, np.arange(k, k + size), axis=axis) for k in range(len(taps))).astype(
            np.float32
        )
    return np.asarray(out, dtype=np.float32)


@dataclass
class Batch:
    """What every method of a run is given for one batch of images.

    Attributes:
        inputs: ``(N, rows, cols, channels)`` model-ready, channels last.
        scored: the forward pass: the classes explained and their scores (:class:`Scored`).
        baseline: ``(N, rows, cols, channels)`` what a taken-out pixel becomes (:data:`BASELINES`).
        images: each image's number in the run, for inputs fed one row per image (None where there are none).
        layer: the explained layer's maps and the score's gradient with respect to them, where a method needs
            them (shared by every method of the run).
    """

    inputs: np.ndarray
    scored: Scored
    baseline: np.ndarray
    images: Sequence[int] | None = None
    layer: LayerPass | None = None

    def number(self, row: int) -> int | None:
        """Image ``row``'s number in the run, or None."""
        return None if self.images is None else int(self.images[row])


@dataclass(frozen=True)
class Attributed:
    """One method's attributions for a batch: ``heatmaps`` ``(N, rows, cols)`` at the model's input size (the
    picture's heat is their positive part), and for class activation maps the same at the layer's resolution."""

    heatmaps: np.ndarray
    layer_maps: np.ndarray | None = None


class Attribution(ABC):
    """An attribution method (see the module).

    Attributes:
        name: how the method is chosen (``--method``).
        title: how pictures name it.
        needs_layer: whether it explains at a conv layer (a class activation map) and needs the layer's maps.
        needs_gradient: whether it needs the score's gradient with respect to the layer's maps.
        reads: which :class:`AttributionSettings` it reads.
        signed: whether its values can be negative (evidence against the class); pictures show the positive part.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    needs_layer: ClassVar[bool] = False
    needs_gradient: ClassVar[bool] = False
    reads: ClassVar[tuple[str, ...]] = ()
    signed: ClassVar[bool] = False

    def __init__(self, settings: AttributionSettings) -> None:
        self.settings = settings

    @abstractmethod
    def explain(self, model: TargetModel, batch: Batch) -> Attributed:
        """The method's attributions for ``batch``."""

    def inputs_per_image(self, rows: int, cols: int, channels: int) -> int:
        """How many perturbed or gradient inputs the method runs through the model per image (an image of
        ``rows`` x ``cols``, a layer of ``channels``), beyond the shared forward pass: the total of a progress bar
        fed by :attr:`cnnviz.methods.target.TargetModel.on_chunk`."""
        return 0


def upsampled(layer_maps: np.ndarray, rows: int, cols: int) -> Attributed:
    """Class activation maps ``(N, h, w)`` with their upsampled copies at the input's size, as pictures show them."""
    layer_maps = np.asarray(layer_maps, dtype=np.float32)
    if not len(layer_maps):
        return Attributed(np.zeros((0, rows, cols), np.float32), layer_maps)
    return Attributed(np.stack([resize_maps(one, rows, cols) for one in layer_maps]), layer_maps)


def explained_probability(model: TargetModel, batch: Batch, row: int) -> float:
    """Image ``row``'s class probability (or regression value) unperturbed."""
    scored = batch.scored
    value = model.probability(scored.scores[row : row + 1], scored.outputs[row : row + 1], scored, row)
    return float(value[0])
