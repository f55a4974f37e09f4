"""The shape every attribution method shares: its settings, what it is given for a batch, what it returns.

A method is a small class (one module each in this package) with a name, a title for pictures, whether it needs a
conv layer's maps, the settings it reads (declared where they are read: :mod:`cnnviz.methods.settings`), and one
function, :meth:`Attribution.explain`, from an :class:`AttributionBatch` (the model-ready images, the classes
explained, the baseline, the layer's maps shared by every method of the run) to ``(N, rows, cols)`` attributions at
the model's input size. Everything a method asks of the model goes through
:class:`cnnviz.methods.target.TargetModel`, so every method runs on every model, backend and precision the target
model handles, and on every engine that runs the attribution run's scan.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from cnnviz.inputs.preprocess import Preprocessing
from cnnviz.methods.blur import blurred
from cnnviz.methods.resample import resize_maps
from cnnviz.methods.settings import Family, Setting, Settings
from cnnviz.methods.target import LayerPass, Scored, TargetModel

#: What a masked-out pixel becomes, for the methods that take a baseline: ``black`` (what preprocessing makes of a
#: black image), ``zero`` (0 in the model's input space), ``mean`` (each image's mean colour), ``blur`` (the image
#: blurred: :func:`blurred`), or a number.
BASELINES = ("black", "zero", "mean", "blur")
#: The methods a report shows by default: one forward and one backward pass each.
REPORT_METHODS = ("gradcam", "layercam", "eigencam", "gradient")


#: Every attribution method by name, in the order pictures show them (each module's class is added by
#: :mod:`cnnviz.methods.attribution`; a method of your own is added with ``METHODS.add``).
METHODS = Family("method", "methods")

#: The baseline, one declaration for every method that takes one out (and for the metrics: the same choices).
BASELINE = Setting(
    "baseline",
    float,
    "black",
    "what a removed pixel becomes (black: what preprocessing makes of a black image; mean: the image's mean colour; "
    "blur: the image blurred; a number: that value in the model's input space)",
    names=BASELINES,
)
#: The seed of a method's random draws (and of a metric's): the same seed gives the same bytes.
SEED = Setting("seed", int, 0, "the same seed gives the same numbers")


class AttributionSettings(Settings):
    """The attribution methods' settings, each declared by the methods that read it (``METHODS.declared()``);
    one that none of the methods chosen reads is refused.

    >>> AttributionSettings(steps=16).steps, AttributionSettings().masks
    (16, 4000)
    """

    family = METHODS


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


@dataclass
class AttributionBatch:
    """What every method of a run is given for one batch of images.

    Attributes:
        inputs: ``(N, rows, cols, channels)`` model-ready, channels last.
        scored: the forward pass: the classes explained and their scores (:class:`Scored`).
        baseline: ``(N, rows, cols, channels)`` what a taken-out pixel becomes (:data:`BASELINES`).
        images: each image's number in the run, for inputs fed one row per image (None where there are none).
        layer: the explained layer's maps and the score's gradient with respect to them, where a method needs
            them (shared by every method of the run).
        gradient: the explained score's gradient with respect to ``inputs``, where a method of the run reads it
            (:attr:`Attribution.reads_gradient`) and the forward pass gave it.
    """

    inputs: np.ndarray
    scored: Scored
    baseline: np.ndarray
    images: Sequence[int] | None = None
    layer: LayerPass | None = None
    gradient: np.ndarray | None = None

    def repeated(self, copies: int, inputs: np.ndarray) -> AttributionBatch:
        """A batch of ``inputs``: ``copies`` changed copies of each image (each image's rows together), with each
        image's class, score and baseline (not its layer's maps or gradient, which were the image's own)."""
        images = None if self.images is None else np.repeat(np.asarray(self.images), copies).tolist()
        baseline = np.repeat(self.baseline, copies, axis=0)
        return AttributionBatch(inputs, self.scored.repeated(copies), baseline, images)

    def input_gradient(self, model: TargetModel) -> np.ndarray:
        """The explained score's gradient with respect to the inputs: the forward pass's where it gave it."""
        if self.gradient is not None:
            return self.gradient
        return model.input_gradient(self.inputs, self.scored.cotangent, self.images)[0]

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
        settings: the :class:`cnnviz.methods.settings.Setting` s it reads, declared here or shared
            (:data:`BASELINE`, :data:`SEED`).
        signed: whether its values can be negative (evidence against the class); pictures show the positive part.
        reads_gradient: whether it reads the score's gradient at the inputs themselves
            (:meth:`AttributionBatch.input_gradient`): the run then takes it in the scoring forward pass.
        needs_attention: whether it reads a transformer's attention (:meth:`TargetModel.attention_scores`), and
            applies to no model without.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    needs_layer: ClassVar[bool] = False
    needs_gradient: ClassVar[bool] = False
    reads_gradient: ClassVar[bool] = False
    needs_attention: ClassVar[bool] = False
    settings: ClassVar[tuple[Setting, ...]] = ()
    signed: ClassVar[bool] = False

    def __init__(self, values: AttributionSettings) -> None:
        self.values = values

    @abstractmethod
    def explain(self, model: TargetModel, batch: AttributionBatch) -> Attributed:
        """The method's attributions for ``batch``."""

    def inputs_per_image(self, rows: int, cols: int, channels: int) -> int:
        """How many perturbed or gradient inputs the method runs through the model per image (an image of
        ``rows`` x ``cols``, a layer of ``channels``), beyond the shared forward pass: the total of a progress bar
        fed by :attr:`cnnviz.methods.target.TargetModel.on_chunk`."""
        return 0


class ChannelAttribution(Attribution):
    """A method whose attributions are per input channel, as the gradient family's are (:meth:`per_channel`), and
    a pixel's value is made from its channels' (:meth:`reduce`: their sum, unless the method says otherwise).
    SmoothGrad averages :meth:`per_channel` over noisy copies of the image around any of them
    (:mod:`cnnviz.methods.attribution.smoothgrad`)."""

    #: How the method is named after ``smoothgrad-`` where SmoothGrad is taken around it.
    short: ClassVar[str] = ""

    @abstractmethod
    def per_channel(self, model: TargetModel, batch: AttributionBatch) -> np.ndarray:
        """``(N, rows, cols, channels)`` the attributions of every input channel."""

    def reduce(self, values: np.ndarray) -> np.ndarray:
        """``(N, rows, cols)`` a pixel's value from its channels': their sum (complete where ``values`` are)."""
        return np.asarray(values, dtype=np.float32).sum(axis=-1)

    def explain(self, model: TargetModel, batch: AttributionBatch) -> Attributed:  # noqa: D102
        return Attributed(self.reduce(self.per_channel(model, batch)))


class GradientCam(Attribution):
    """A class activation map computed from the explained layer's maps and the score's gradient with respect to
    them (:meth:`cam`), upsampled to the input's size as pictures show it."""

    needs_layer = True
    needs_gradient = True

    @abstractmethod
    def cam(self, maps: np.ndarray, grads: np.ndarray) -> np.ndarray:
        """``(N, h, w)`` from ``(N, h, w, channels)`` maps and gradients."""

    def explain(self, model: TargetModel, batch: AttributionBatch) -> Attributed:  # noqa: D102
        assert batch.layer is not None and batch.layer.grads is not None
        rows, cols = batch.inputs.shape[1:3]
        return upsampled(self.cam(batch.layer.maps, batch.layer.grads), rows, cols)


def upsampled(layer_maps: np.ndarray, rows: int, cols: int) -> Attributed:
    """Class activation maps ``(N, h, w)`` with their upsampled copies at the input's size, as pictures show them."""
    layer_maps = np.asarray(layer_maps, dtype=np.float32)
    if not len(layer_maps):
        return Attributed(np.zeros((0, rows, cols), np.float32), layer_maps)
    return Attributed(np.stack([resize_maps(one, rows, cols) for one in layer_maps]), layer_maps)


def explained_probabilities(model: TargetModel, batch: AttributionBatch) -> np.ndarray:
    """``(N,)`` each image's class probability (or regression value) unperturbed, in float64."""
    scored = batch.scored
    rows = np.arange(len(batch.inputs))
    return model.values(scored.scores, scored.outputs, scored, rows, "probability").astype(np.float64)


def per_image(
    model: TargetModel, batch: AttributionBatch, masks: np.ndarray, baselines: np.ndarray | None = None
) -> np.ndarray:
    """``(N, M)`` each image's class probability with each of ``masks`` ``(M, h, w)`` applied to it (the
    baseline where 0), every image's copies streamed through the model together
    (:meth:`cnnviz.methods.target.TargetModel.perturbed_rows`); ``baselines`` default to the batch's."""
    count = len(batch.inputs)
    pairs = ((row, mask) for row in range(count) for mask in masks)
    base = batch.baseline if baselines is None else baselines
    values = model.perturbed_rows(batch.inputs, base, pairs, batch.scored, batch.images)
    return values.reshape(count, len(masks)).astype(np.float64)
