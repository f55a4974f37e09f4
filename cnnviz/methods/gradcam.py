"""Grad-CAM and Grad-CAM++: where in an image a classifier looked for a class.

Grad-CAM (Selvaraju et al., 2017) weighs each map of a conv layer by how much the class score grows with it (the
mean of the score's gradient over the map), sums the weighted maps and keeps the positive part. Grad-CAM++
(Chattopadhay et al., 2018) weighs each position's gradient instead, which separates several objects of one class
better. Both run on cnnviz's replay of the model (:mod:`cnnviz.models.graph`), so a layer inside a nested base
(``vgg16/block5_conv3``) is reached like any other.

The score differentiated is the class's *pre-softmax* value where the graph has one: a softmax saturates, and
its gradient for a confident class is close to zero everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnviz.errors import OptionError
from cnnviz.inputs.reader import FeedSettings, Reader, ReadingSettings
from cnnviz.methods.resample import resize_maps
from cnnviz.methods.target import Target, TargetModel, checked_region, class_scores

__all__ = ["METHODS", "Explanation", "GradCam", "Target", "cam", "checked_region", "class_scores", "gradcam"]

METHODS = ("gradcam", "gradcam++")


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


class GradCam(TargetModel):
    """A Grad-CAM model over one layer: the model's replay set up once per input size (:class:`TargetModel`),
    then run on batches.

    Args:
        model: a Keras classifier with one input and one output of shape ``(classes,)``; nested models are fine.
        layer: a layer's name or path whose output is ``(rows, cols, channels)`` maps; by default the last conv
            layer whose maps are larger than 1x1.
        method: ``gradcam`` or ``gradcam++``.
        target: which output is explained, and for a segmentation output where (:class:`Target`).
        feeding: which input takes the images, what the others get and the precision the model computes in
            (:class:`cnnviz.inputs.reader.FeedSettings`; preprocessing is the caller's, on the batches it gives).

    Raises:
        OptionError: an unknown method.
        LayerNotFound, UnsupportedLayer: the layer does not exist or its output is not 2-D maps.
        UnsupportedModel: the model's output is not a vector of class scores.
    """

    def __init__(
        self,
        model: Any,
        layer: str | None = None,
        method: str = "gradcam",
        target: Target | None = None,
        feeding: FeedSettings | None = None,
    ) -> None:
        if method not in METHODS:
            raise OptionError(f"unknown method '{method}'; choose one of: {', '.join(METHODS)}")
        self.method = method
        super().__init__(model, layer, target, feeding, maps=True)

    def __call__(
        self, batch: np.ndarray, classes: Sequence[int] | int | None = None, images: Sequence[int] | None = None
    ) -> Explanation:
        """Explain a preprocessed, channels-last ``(N, rows, cols, channels)`` batch.

        Args:
            batch: model-ready inputs.
            classes: the class to explain for each image (or one for all); each image's top class when None.
            images: the batch's places in the run's input order, for other inputs fed one row per image.
        """
        batch = np.asarray(batch, dtype=np.float32)
        passed = self.layer_pass(batch, classes, images)
        assert passed.grads is not None
        layer_maps = cam(passed.maps, passed.grads, self.method)
        rows, cols = batch.shape[1:3]
        heatmaps = np.stack([resize_maps(one, rows, cols) for one in layer_maps]) if len(batch) else layer_maps
        scored = passed.scored
        return Explanation(
            heatmaps,
            layer_maps,
            scored.classes,
            scored.outputs,
            self.layer,
            self.score,
            self.method,
            self.head,
            self.output,
            scored.pixels,
            scored.targets,
        )


def cam(maps: np.ndarray, grads: np.ndarray, method: str = "gradcam") -> np.ndarray:
    """Class activation maps from a layer's maps and the class score's gradient with respect to them.

    Args:
        maps: ``(N, h, w, channels)`` activations.
        grads: the same shape: d(score)/d(maps).
        method: ``gradcam`` (each channel weighted by its mean gradient) or ``gradcam++`` (by its positive
            gradients, each weighted by the closed-form alpha of Chattopadhay et al.).

    Returns:
        ``(N, h, w)``, >= 0.

    >>> maps = np.zeros((1, 2, 2, 2)); maps[0, 0, 0, 0] = 1.0; maps[0, 1, 1, 1] = 1.0
    >>> grads = np.zeros((1, 2, 2, 2)); grads[..., 0] = 1.0; grads[..., 1] = -1.0
    >>> cam(maps, grads)[0].tolist()  # channel 0 counts for the class, channel 1 against it
    [[1.0, 0.0], [0.0, 0.0]]
    """
    maps = np.asarray(maps, dtype=np.float64)
    grads = np.asarray(grads, dtype=np.float64)
    if method == "gradcam":
        weights = grads.mean(axis=(1, 2))
    elif method == "gradcam++":
        squared = grads**2
        denominator = 2.0 * squared + maps.sum(axis=(1, 2), keepdims=True) * grads**3
        alpha = squared / np.where(denominator != 0.0, denominator, 1.0)
        weights = (alpha * np.maximum(grads, 0.0)).sum(axis=(1, 2))
    else:
        raise OptionError(f"unknown method '{method}'; choose one of: {', '.join(METHODS)}")
    return np.maximum(np.einsum("nhwk,nk->nhw", maps, weights), 0.0).astype(np.float32)


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
        images = load_batch(model, images, reading)[0]
    if explainer.feeds is not None:
        explainer.feeds.check_rows(len(images))
    return explainer(images, classes, range(len(images)))


def load_batch(
    model: Any, images: Sequence[str | os.PathLike[str]], reading: ReadingSettings | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read images for ``model`` as ``featuremaps`` does: (the preprocessed batch, the fitted 0..255 pixels).

    Raises:
        ImageLoadError: an image cannot be read.
        OptionError: no images, or they come out at different sizes.
    """
    if not images:
        raise OptionError("no images given")
    reader = Reader(model, reading)
    step = reader.preprocessing
    loaded = [reader.read(path) for path in images]
    if len({array.shape for array, _ in loaded}) > 1:
        raise OptionError("the images came out at different sizes (the model's input size is free); pass size=")
    pixels = np.stack([array for array, _ in loaded])
    ready = all(is_ready for _, is_ready in loaded)
    return (pixels if ready else step(pixels)), pixels
