"""Grad-CAM as arrays, the classic way: :func:`gradcam` and :class:`GradCam` give an :class:`Explanation` of one
method (Grad-CAM or Grad-CAM++, :mod:`cnnviz.methods.attribution.gradcam`) through the attribution methods' one
:class:`cnnviz.methods.attribution.Attributor`, so a layer inside a nested base (``vgg16/block5_conv3``), a
regression or segmentation head and every backend and precision are handled as for every other method.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnviz.errors import OptionError
from cnnviz.inputs.reader import FeedSettings, Reader, ReadingSettings, load_batch
from cnnviz.methods.attribution import Attributor
from cnnviz.methods.attribution.gradcam import GRADCAMS, cam
from cnnviz.methods.target import Target, checked_region, class_scores

__all__ = ["Explanation", "GradCam", "Target", "cam", "checked_region", "class_scores", "gradcam"]


@dataclass(frozen=True)
class Explanation:
    """Grad-CAM for a batch of images.

    Attributes:
        heatmaps: ``(N, rows, cols)`` at the model's input size, >= 0, not normalised (0 where the layer saw
            nothing for the class).
        layer_maps: ``(N, h, w)``, the same at the layer's own resolution.
        classes: ``(N,)`` the class explained for each image.
        outputs: ``(N, classes)`` the model's outputs (probabilities after a softmax).
        layer: the layer's path.
        score: what was differentiated, in words.
        method: ``gradcam`` or ``gradcam++``.
        head: how the explained output reads: ``classes`` (class scores), ``regression`` (one value: the score is
            the value itself) or ``segmentation`` (rows x cols x classes: the score is the class's pre-softmax
            logits summed over the pixels predicted as that class, or over ``region``), after Seg-Grad-CAM.
        output: the name of the explained output.
        pixels: for segmentation, ``(N,)`` how many of the output's pixels the score summed over.
        targets: ``(N,)`` the value of the score that was differentiated, per image.
    """

    heatmaps: np.ndarray
    layer_maps: np.ndarray
    classes: np.ndarray
    outputs: np.ndarray
    layer: str
    score: str
    method: str
    head: str = "classes"
    output: str = ""
    pixels: np.ndarray | None = None
    targets: np.ndarray | None = None


class GradCam(Attributor):
    """Grad-CAM or Grad-CAM++ alone, at one layer: an :class:`cnnviz.methods.attribution.Attributor` of one method
    whose call gives an :class:`Explanation`; what its target model knows (``layer``, ``score``, ``head``,
    ``classes``, ...) reads as its own.

    Args:
        model: a Keras model ending in class scores, a regression value or a segmentation; nested models are fine.
        layer: a layer's name or path whose output is ``(rows, cols, channels)`` maps; by default the last conv
            layer whose maps are larger than 1x1.
        method: ``gradcam`` or ``gradcam++``.
        target: which output is explained, and for a segmentation output where (:class:`Target`).
        feeding: which input takes the images, what the others get and the precision the model computes in.

    Raises:
        OptionError: an unknown method.
        LayerNotFound, UnsupportedLayer: the layer does not exist or its output is not 2-D maps.
        UnsupportedModel: the model's output is not one a class can be explained on.
    """

    def __init__(
        self,
        model: Any,
        layer: str | None = None,
        method: str = "gradcam",
        target: Target | None = None,
        feeding: FeedSettings | None = None,
    ) -> None:
        if method not in GRADCAMS:
            raise OptionError(f"unknown method '{method}'; choose one of: {', '.join(GRADCAMS)}")
        self.method = method
        super().__init__(model, (method,), layer, target, feeding)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or "model" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["model"], name)

    def __call__(  # type: ignore[override]
        self, batch: np.ndarray, classes: Sequence[int] | int | None = None, images: Sequence[int] | None = None
    ) -> Explanation:
        """Explain a preprocessed, channels-last ``(N, rows, cols, channels)`` batch for ``classes`` (each image's
        top class when None); ``images`` are the batch's places in the run, for inputs fed one row per image."""
        done = super().__call__(batch, classes, images)
        method = self.method
        targets = done.targets
        return Explanation(
            done.heatmaps[method],
            done.layer_maps[method],
            done.classes,
            done.outputs,
            done.layer,
            done.score,
            method,
            done.head,
            done.output,
            done.pixels,
            targets,
        )


def gradcam(
    model: Any,
    images: Sequence[str | os.PathLike[str]] | np.ndarray,
    classes: Sequence[int] | int | None = None,
    *,
    layer: str | None = None,
    method: str = "gradcam",
    target: Target | None = None,
    reading: ReadingSettings | None = None,
) -> Explanation:
    """Grad-CAM heatmaps for images, as arrays.

    Args:
        model: a Keras classifier (nested bases, legacy ``.h5`` models and softmax heads are fine).
        images: image files, loaded and preprocessed for the model as ``featuremaps`` does, or a model-ready
            channels-last array ``(N, rows, cols, channels)``.
        classes: the class to explain, per image or one for all; each image's top class by default.
        layer: the layer to explain at; by default the last conv layer with maps larger than 1x1.
        method: ``gradcam`` or ``gradcam++``.
        target: the output to explain, and for segmentation the region (:class:`Target`).
        reading: how files are read (:class:`cnnviz.inputs.reader.ReadingSettings`), which input takes the
            images and what the others get, and what the model computes in (the heatmaps are float32).

    Returns:
        An :class:`Explanation`; ``heatmaps`` are at the model's input size.

    Raises:
        ImageLoadError: an image cannot be read.
        OptionError: the images come out at different sizes (a model of free input size: give ``size``).
    """
    reading = reading if reading is not None else ReadingSettings()
    explainer = GradCam(model, layer, method, target, reading)
    if not isinstance(images, np.ndarray):
        images = load_batch(Reader(model, reading), images)[0]
    if explainer.model.feeds is not None:
        explainer.model.feeds.check_rows(len(images))
    return explainer(images, classes, range(len(images)))
