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

from cnnviz import backends
from cnnviz._keras import keras_module
from cnnviz.crashes import doing
from cnnviz.errors import NotAConvLayer, OptionError, UnsupportedLayer, UnsupportedModel
from cnnviz.inputs.feeds import resolve_feeds
from cnnviz.inputs.reader import FeedSettings, Reader, ReadingSettings
from cnnviz.methods.extract import float32_output
from cnnviz.methods.resample import resize_maps
from cnnviz.models.graph import Trace, depends_on, image_input, input_shape, leaf_name, shape_text, trace
from cnnviz.models.precision import resolve_precision

METHODS = ("gradcam", "gradcam++")
#: Output activations that cnnviz looks past, to differentiate the score before them.
_SQUASHING = ("softmax", "sigmoid")


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


@dataclass(frozen=True)
class Target:
    """What Grad-CAM explains, beside the class.

    Attributes:
        output: for a model of several outputs, the one to explain (the first by default).
        region: for a segmentation output, ``(top, left, bottom, right)`` pixels of the model input to sum the
            class's logits over (end exclusive), instead of the pixels predicted as the class.
    """

    output: str | None = None
    region: Sequence[int] | None = None


class GradCam:
    """A Grad-CAM model over one layer: built once per input size from the model's replay, then run on batches.

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
        target = target if target is not None else Target()
        feeding = feeding if feeding is not None else FeedSettings()
        input, output = feeding.input, target.output
        self.source = model
        self.method = method
        self._wanted = layer
        self._input = input
        self._output = output
        self.precision = resolve_precision(feeding.precision)
        self.region = checked_region(target.region)
        #: What to tell the user (the model's other outputs).
        self.notes: list[str] = []
        self._built: dict[tuple[int | None, ...] | None, tuple[Any, str, str, bool]] = {}
        several = len(getattr(model, "inputs", None) or []) > 1
        #: What the model's other inputs get, for a model of several (:func:`cnnviz.methods.extract.resolve_feeds`).
        self.feeds = resolve_feeds(model, image_input(model, input), feeding.feed) if several else None
        self._free_size = None in input_shape(model, input) if getattr(model, "inputs", None) else False
        self._channels_first_input = False
        self.layer, self.score = self._build(None)[1:3]
        #: How many classes the explained output scores (1 for a regression).
        self.classes = int(self._built[None][0].outputs[1].shape[-1])

    def _build(self, shape: tuple[int | None, ...] | None) -> tuple[Any, str, str, bool]:
        """The Keras model from the input to (the layer's maps, the class scores, the outputs) at ``shape``."""
        if shape in self._built:
            return self._built[shape]
        keras = keras_module()
        # A float32 replay to choose the layer; then the replay that runs, in the precision asked, with a nudge
        # added to that layer's maps: the gradient with respect to the maps is the gradient with respect to that
        # extra input, which every backend takes (cnnviz.backends.pullback).
        traced = trace(self.source, shape, input=self._input)
        self._channels_first_input = bool(traced.convs and traced.convs[0].channels_first)
        path = self._choose_layer(traced, _producer(traced, self._choose_output(traced)))
        traced = trace(self.source, shape, input=self._input, precision=self.precision, nudge=path)
        self.notes.extend(note for note in traced.notes if note not in self.notes)
        output = self._choose_output(traced)
        rank = len(output.shape)
        if rank not in (2, 4):
            raise UnsupportedModel(
                f"model '{self.source.name}' output '{self.output}' is {shape_text(output.shape[1:])}; Grad-CAM "
                "explains class scores, a regression value or a segmentation (rows x cols x classes). For "
                "keras.applications models cnnviz loads the classifier head."
            )
        scores, score = class_scores(traced, output)
        if rank == 4:
            self.head = "segmentation"
            where = "the pixels predicted as the class" if self.region is None else f"the region {list(self.region)}"
            score = f"{score}, summed over {where}"
        elif output.shape[-1] == 1 and not _squashed(traced, output):
            self.head = "regression"
        else:
            self.head = "classes"
        scores = float32_output(scores, "cnnviz_scores")  # the gradient's sums in float32
        if not depends_on(scores, traced.nudge):
            raise UnsupportedLayer(f"the class scores do not depend on layer '{path}'; choose another `layer`")
        channels_first = getattr(traced.layers[path], "data_format", "channels_last") == "channels_first"
        given = traced.sources if self.feeds is not None else [traced.input]
        explainer = keras.Model([*given, traced.nudge], [traced.outputs[path], scores, output])
        built = (explainer, path, score, channels_first)
        self._built[shape] = built
        return built

    def _choose_output(self, traced: Trace) -> Any:
        """The output to explain: the one named ``output`` (the model's output name, or its layer's), else the
        first, with a note naming the others."""
        outputs = list(traced.output) if isinstance(traced.output, (list, tuple)) else [traced.output]
        names = list(getattr(self.source, "output_names", None) or [])
        if len(names) != len(outputs):
            names = [_producer(traced, tensor) or f"output_{number}" for number, tensor in enumerate(outputs)]
        if self._output is not None:
            matching = [n for n, name in enumerate(names) if self._output in (name, leaf_name(name))]
            if not matching:
                raise OptionError(
                    f"model '{self.source.name}' has no output '{self._output}'; its outputs are: {', '.join(names)}"
                )
            chosen = matching[0]
        else:
            chosen = 0
            if len(outputs) > 1 and not self.notes:
                others = ", ".join(names[1:])
                self.notes.append(
                    f"explaining output '{names[0]}'; the model's others: {others} (choose with `output`)"
                )
        self.output = names[chosen]
        return outputs[chosen]

    def _choose_layer(self, traced: Trace, head: str | None = None) -> str:
        """The layer named, else the last conv layer of maps larger than 1x1 that is not the head itself (a
        segmentation model's last conv makes its output)."""
        if self._wanted is None:
            maps = [
                conv
                for conv in traced.convs
                if len(conv.output_shape) == 3 and _spatial(conv.output_shape) > 1 and conv.path != head
            ]
            if not maps:
                raise UnsupportedLayer(
                    f"model '{self.source.name}' has no conv layer with maps larger than 1x1; name one with `layer`"
                )
            return maps[-1].path
        try:
            return traced.find([self._wanted])[0].path
        except NotAConvLayer:  # any layer of 2-D maps will do: an Activation after a conv, a ResNet block's output
            path = next(p for p in traced.layers if p == self._wanted or leaf_name(p) == self._wanted)
            rank = len(traced.outputs[path].shape)
            if rank != 4:
                kind = type(traced.layers[path]).__name__
                raise UnsupportedLayer(
                    f"layer '{path}' is a {kind} with output {shape_text(traced.outputs[path].shape[1:])}; Grad-CAM "
                    "needs a layer of 2-D maps (rows x cols x channels)"
                ) from None
            return path

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
        feed = np.moveaxis(batch, -1, 1) if self._channels_first_input else batch
        model, path, score, channels_first = self._build(tuple(feed.shape[1:]) if self._free_size else None)
        ops = keras_module().ops
        arrays = self.feeds.inputs(feed, images) if self.feeds is not None else [feed]
        given = [ops.convert_to_tensor(one) for one in arrays]
        zeros = np.zeros((len(batch), *model.inputs[-1].shape[1:]), dtype=np.float32)
        with doing(f"Grad-CAM of layer '{path}' of model '{self.source.name}', the gradient of {score}"):
            (maps, scores, outputs), backward = backends.pullback(
                lambda nudge: model([*given, nudge], training=False), zeros
            )
            cotangent = np.zeros_like(scores)
            if self.head == "segmentation":
                chosen, mask = _segmentation_targets(classes, scores, self.region, batch.shape[1:3])
                cotangent[np.arange(len(batch)), :, :, chosen] = mask
                target = (scores * cotangent).sum(axis=(1, 2, 3))
                pixels = mask.reshape(len(batch), -1).sum(axis=1)
            else:
                chosen = _chosen_classes(classes, scores, len(batch))
                cotangent[np.arange(len(batch)), chosen] = 1.0
                target = scores[np.arange(len(batch)), chosen]
                pixels = None
            grads = backward([None, cotangent, None])
        maps_array, grads_array = np.asarray(maps, dtype=np.float32), np.asarray(grads, dtype=np.float32)
        outputs = np.asarray(outputs, dtype=np.float32)
        if channels_first:
            maps_array, grads_array = np.moveaxis(maps_array, 1, -1), np.moveaxis(grads_array, 1, -1)
        layer_maps = cam(maps_array, grads_array, self.method)
        rows, cols = batch.shape[1:3]
        heatmaps = np.stack([resize_maps(one, rows, cols) for one in layer_maps]) if len(batch) else layer_maps
        return Explanation(
            heatmaps,
            layer_maps,
            chosen,
            np.asarray(outputs),
            path,
            score,
            self.method,
            self.head,
            self.output,
            pixels,
            np.asarray(target),
        )


def _producer(traced: Trace, tensor: Any) -> str | None:
    """The path of the layer whose output ``tensor`` is."""
    return next((path for path, out in traced.outputs.items() if out is tensor), None)


def checked_region(region: Sequence[int] | None) -> tuple[int, int, int, int] | None:
    """``(top, left, bottom, right)`` in pixels of the model input, end exclusive, or None."""
    if region is None:
        return None
    box = tuple(int(value) for value in region)
    if len(box) != 4 or box[0] < 0 or box[1] < 0 or box[2] <= box[0] or box[3] <= box[1]:
        raise OptionError(f"a region is TOP,LEFT,BOTTOM,RIGHT with TOP < BOTTOM and LEFT < RIGHT, got {list(region)}")
    return box


def _segmentation_targets(
    classes: Sequence[int] | int | None,
    scores: np.ndarray,
    region: tuple[int, int, int, int] | None,
    input_size: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """(the class explained per image, the ``(N, rows, cols)`` mask of output pixels its score sums over).

    Without ``classes``, each image's class is the one predicted at the most pixels. The mask is the pixels
    predicted as that class, or ``region`` (pixels of the model input, scaled to the output's grid).
    """
    count, rows, cols, number = scores.shape
    predicted = np.argmax(scores, axis=-1)
    if classes is None:
        chosen = np.array([np.bincount(one.ravel(), minlength=number).argmax() for one in predicted], dtype=np.int32)
    else:
        chosen = np.broadcast_to(np.asarray(classes, dtype=np.int32), (count,)).copy()
        if chosen.size and (chosen.min() < 0 or chosen.max() >= number):
            raise OptionError(f"class {int(chosen.max())} is out of range: the output has {number} classes")
    if region is None:
        mask = (predicted == chosen[:, None, None]).astype(np.float32)
    else:
        top, left, bottom, right = region
        in_rows, in_cols = input_size[0], input_size[1]
        mask = np.zeros((count, rows, cols), dtype=np.float32)
        mask[
            :,
            top * rows // in_rows : -(-bottom * rows // in_rows),
            left * cols // in_cols : -(-right * cols // in_cols),
        ] = 1.0
    return chosen, mask


def _spatial(shape: tuple[int | None, ...]) -> int:
    rows, cols = shape[0], shape[1]
    return (rows or 2) * (cols or 2)  # a free size is larger than 1x1 on a real image


def _chosen_classes(classes: Sequence[int] | int | None, scores: np.ndarray, count: int) -> np.ndarray:
    if classes is None:
        return np.argmax(scores, axis=-1).astype(np.int32)
    chosen = np.broadcast_to(np.asarray(classes, dtype=np.int32), (count,)).copy()
    if chosen.size and (chosen.min() < 0 or chosen.max() >= scores.shape[-1]):
        raise OptionError(f"class {int(chosen.max())} is out of range: the model has {scores.shape[-1]} classes")
    return chosen


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


def class_scores(traced: Trace, output: Any = None) -> tuple[Any, str]:
    """The symbolic class scores of ``output`` (the model's output by default) to differentiate, and what they are
    in words.

    Where the model's last layer squashes its output (a Dense or conv layer with a softmax or sigmoid activation,
    or a Softmax / Activation layer), the scores are that layer's values before the squashing, computed by a twin
    of the layer that shares its weights; otherwise the output itself.
    """
    from cnnviz.models.graph import layer_twin

    keras = keras_module()
    output = traced.output if output is None else output
    last = _producer(traced, output)
    if last is None:
        return output, "the model's output (no layer to look into)"
    layer, given = traced.layers[last], traced.inputs[last]
    activation = _activation_name(layer)
    if activation in _SQUASHING and given is not None:
        if isinstance(layer, (keras.layers.Softmax, keras.layers.Activation)):
            return given, f"the pre-{activation} scores (the input of layer '{last}')"
        twin = layer_twin(layer, given.shape, activation="linear", name=f"{layer.name}_scores")
        return twin(given), f"the pre-{activation} scores of layer '{last}'"
    if activation is None or activation == "linear":
        return output, f"the output of layer '{last}' (no softmax at the end)"
    return output, f"the output of layer '{last}' (after its {activation}, which cnnviz cannot look past)"


def _squashed(traced: Trace, output: Any) -> bool:
    """Whether the layer making ``output`` ends in a softmax or sigmoid (a one-unit sigmoid is a binary classifier,
    not a regression)."""
    producer = _producer(traced, output)
    return producer is not None and _activation_name(traced.layers[producer]) in _SQUASHING


def _activation_name(layer: Any) -> str | None:
    keras = keras_module()
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    function = getattr(layer, "activation", None)
    if function is None:
        return None
    name = getattr(function, "__name__", None) or str(function)
    return str(name).lower()


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
