"""Attribution methods: where in an image a model looks for a class, each method one module.

Class activation maps at a conv layer: ``gradcam``, ``gradcam++``, ``scorecam`` (Faster Score-CAM with
``max_channels``), ``layercam``, ``eigencam``; pixel attributions: ``gradient``, ``smoothgrad``,
``integrated-gradients``, ``guided-ig``, ``blur-ig``, SmoothGrad around each of the last three (``smoothgrad-ig``,
``smoothgrad-guided-ig``, ``smoothgrad-blur-ig``), ``xrai``, ``occlusion``, ``rise``; on a Vision Transformer,
``attention-rollout``. Every method
has the shape of :class:`cnnviz.methods.attribution.base.Attribution`; :class:`Attributor` runs the methods of a
run on a batch, sharing the forward pass and the layer's maps between them, and :func:`attribute` is the library
call on images or arrays.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnviz.errors import OptionError, UnsupportedModel
from cnnviz.inputs.preprocess import Preprocessing
from cnnviz.inputs.reader import FeedSettings, Reader, ReadingSettings, load_batch
from cnnviz.methods.attribution.base import (
    METHODS,
    Attributed,
    Attribution,
    AttributionBatch,
    AttributionSettings,
    baseline_of,
)
from cnnviz.methods.attribution.blur_ig import BlurIG
from cnnviz.methods.attribution.eigencam import EigenCam
from cnnviz.methods.attribution.gradcam import GradCamMethod, GradCamPlusPlus
from cnnviz.methods.attribution.gradient import Gradient
from cnnviz.methods.attribution.guided_ig import GuidedIG
from cnnviz.methods.attribution.integrated_gradients import IntegratedGradients
from cnnviz.methods.attribution.layercam import LayerCam
from cnnviz.methods.attribution.occlusion import Occlusion
from cnnviz.methods.attribution.rise import Rise
from cnnviz.methods.attribution.rollout import AttentionRollout
from cnnviz.methods.attribution.scorecam import ScoreCam
from cnnviz.methods.attribution.smoothgrad import SmoothGrad, SmoothGradBlurIG, SmoothGradGuidedIG, SmoothGradIG
from cnnviz.methods.attribution.xrai import Xrai
from cnnviz.methods.target import Scored, Target, TargetModel

for _method in (
    GradCamMethod,
    GradCamPlusPlus,
    ScoreCam,
    LayerCam,
    EigenCam,
    Gradient,
    SmoothGrad,
    IntegratedGradients,
    GuidedIG,
    BlurIG,
    SmoothGradIG,
    SmoothGradGuidedIG,
    SmoothGradBlurIG,
    Xrai,
    Occlusion,
    Rise,
    AttentionRollout,
):
    METHODS.add(_method)


def general_methods() -> list[str]:
    """The methods that apply to every model, in order: what ``--method all`` stands for (attention rollout, which
    needs a transformer's attention, is named on its own)."""
    return [name for name in METHODS if not METHODS[name].needs_attention]


def methods_for(model: Any) -> list[str]:
    """The methods that apply to ``model``, in order: :func:`general_methods`, and those that read attention where
    it has attention layers (:mod:`cnnviz.models.inner`)."""
    from cnnviz.models.graph import trace

    attention = bool(trace(model).attention)
    return [name for name in METHODS if attention or not METHODS[name].needs_attention]


def check_methods(methods: Sequence[str], settings: AttributionSettings) -> tuple[str, ...]:
    """The methods named, each once in the order given; raise :class:`OptionError` for an unknown one, none, or a
    setting that none of them reads."""
    return METHODS.check(methods, settings.given())


@dataclass(frozen=True)
class Attributions:
    """Several methods' attributions for a batch of images.

    Attributes:
        heatmaps: per method, ``(N, rows, cols)`` at the model's input size (CAMs upsampled as pictures show them;
            the methods marked ``signed``, integrated gradients, occlusion and RISE, can be negative).
        layer_maps: per class activation map, ``(N, h, w)`` at the layer's resolution.
        classes: ``(N,)`` the class explained for each image.
        outputs: the model's explained outputs (probabilities after a softmax).
        targets: ``(N,)`` the score explained (pre-softmax).
        layer: the layer the CAMs are at ("" where no method needs one).
        score: what was differentiated, in words.
        head: ``classes``, ``regression`` or ``segmentation`` (:class:`cnnviz.methods.target.TargetModel`).
        output: the name of the explained output.
        pixels: for segmentation, ``(N,)`` how many output pixels the score sums over.
        scored: the forward pass the methods shared (:class:`cnnviz.methods.target.Scored`).
    """

    heatmaps: dict[str, np.ndarray]
    layer_maps: dict[str, np.ndarray]
    classes: np.ndarray
    outputs: np.ndarray
    targets: np.ndarray
    layer: str
    score: str
    head: str
    output: str
    pixels: np.ndarray | None = None
    scored: Scored | None = None


class Attributor:
    """The methods of a run over one model: set up once, then run on batches.

    Args:
        model: a Keras model ending in class scores, a regression value or a segmentation.
        methods: method names (:data:`METHODS`).
        layer: the layer of the class activation maps; the last conv layer with maps larger than 1x1 when None.
        target: which output, and for segmentation which region (:class:`cnnviz.methods.target.Target`).
        feeding: the inputs and the precision (:class:`cnnviz.inputs.reader.FeedSettings`).
        settings: the methods' settings.
        preprocessing: how 0..255 pixels become model inputs, for the ``black`` baseline (None: inputs are used
            as they are, and black is 0).
    """

    def __init__(
        self,
        model: Any,
        methods: Sequence[str] = ("gradcam",),
        layer: str | None = None,
        target: Target | None = None,
        feeding: FeedSettings | None = None,
        settings: AttributionSettings | None = None,
        preprocessing: Preprocessing | None = None,
    ) -> None:
        settings = settings if settings is not None else AttributionSettings()
        self.names = check_methods(methods, settings)
        self.methods = [METHODS[name](settings) for name in self.names]
        self.settings = settings
        self.preprocessing = preprocessing
        needs_layer = any(method.needs_layer for method in self.methods)
        if (layer is not None or (target is not None and target.layer is not None)) and not needs_layer:
            raise OptionError("`layer` is for the class activation maps; none of the methods chosen is one")
        self.gradient = any(method.needs_gradient for method in self.methods)
        self.model = TargetModel(model, layer, target, feeding, maps=needs_layer)
        reading = [method.name for method in self.methods if method.needs_attention]
        if reading and not self.model.traced().attention:
            raise UnsupportedModel(
                f"model '{model.name}' has no attention layers (MultiHeadAttention), which {', '.join(reading)} "
                f"reads; the methods that apply to it: {', '.join(general_methods())}"
            )

    def baseline(self, inputs: np.ndarray) -> np.ndarray:
        """What a taken-out pixel becomes for ``inputs`` (:data:`cnnviz.methods.attribution.base.BASELINES`)."""
        return baseline_of(inputs, self.settings.baseline, self.preprocessing)

    def _forward(
        self, inputs: np.ndarray, classes: Sequence[int] | int | None, images: Sequence[int] | None
    ) -> tuple[Scored, np.ndarray | None]:
        """The scoring forward pass, and the input gradient from the same pass where a method reads it."""
        if any(method.reads_gradient for method in self.methods):
            fused = self.model.scored_gradient(inputs, classes, images)
            if fused is not None:
                return fused
        return self.model.forward(inputs, classes, images), None

    def __call__(
        self, inputs: np.ndarray, classes: Sequence[int] | int | None = None, images: Sequence[int] | None = None
    ) -> Attributions:
        """Every method's attributions for a model-ready, channels-last batch (one forward pass shared)."""
        inputs = np.asarray(inputs, dtype=np.float32)
        model = self.model
        layer = model.layer_pass(inputs, classes, images, self.gradient) if model.with_maps else None
        scored, gradient = (layer.scored, None) if layer is not None else self._forward(inputs, classes, images)
        batch = AttributionBatch(inputs, scored, self.baseline(inputs), images, layer, gradient)
        done: dict[str, Attributed] = {method.name: method.explain(model, batch) for method in self.methods}
        return Attributions(
            {name: one.heatmaps for name, one in done.items()},
            {name: one.layer_maps for name, one in done.items() if one.layer_maps is not None},
            scored.classes,
            scored.outputs,
            scored.targets,
            model.layer,
            model.score,
            model.head,
            model.output,
            scored.pixels,
            scored,
        )


def attribute(
    model: Any,
    images: Sequence[str | os.PathLike[str]] | np.ndarray,
    methods: Sequence[str] = ("gradcam",),
    classes: Sequence[int] | int | None = None,
    *,
    target: Target | None = None,
    settings: AttributionSettings | None = None,
    reading: ReadingSettings | None = None,
) -> Attributions:
    """Attributions of several methods for images, as arrays.

    Args:
        model: a Keras model ending in class scores, a regression value or a segmentation (nested bases, legacy
            ``.h5`` models and softmax heads are fine).
        images: image files, read and preprocessed as ``featuremaps`` does, or a model-ready channels-last array.
        methods: names from :data:`METHODS`.
        classes: the class to explain, per image or one for all; each image's top class by default.
        target: the layer of the class activation maps, the output to explain, and for segmentation the region
            (``Target(layer="conv2")``).
        settings: the methods' settings (:class:`AttributionSettings`).
        reading: how files are read, which input takes the images, and the precision.

    Raises:
        OptionError: an unknown method, a setting no method chosen reads, images of different sizes.
    """
    reading = reading if reading is not None else ReadingSettings()
    reader = Reader(model, reading)
    attributor = Attributor(model, methods, None, target, reading, settings, reader.preprocessing)
    if not isinstance(images, np.ndarray):
        images = load_batch(reader, images)[0]
    if attributor.model.feeds is not None:
        attributor.model.feeds.check_rows(len(images))
    return attributor(images, classes, range(len(images)))


__all__ = [
    "METHODS",
    "Attribution",
    "AttributionSettings",
    "Attributions",
    "Attributor",
    "attribute",
    "check_methods",
    "general_methods",
    "methods_for",
]
