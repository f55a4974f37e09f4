"""What an attribution explains, and the model that computes it: the shared part of every attribution method.

An attribution method (Grad-CAM, Score-CAM, Integrated Gradients, occlusion, ...) asks the same few things of a
model: the class scores of a batch and which class each image is explained for; a conv layer's maps, with or
without the score's gradient with respect to them; the score's gradient with respect to the input; and, for the
methods that perturb their input, the class's probability for many perturbed copies of an image.
:class:`TargetModel` answers all of them from cnnviz's replay of the model (:mod:`cnnviz.models.graph`), so a
layer inside a nested base (``vgg16/block5_conv3``), a model of several inputs or outputs, a regression or a
segmentation head, bfloat16 and the oneDNN-safe replay are handled once, here, for every method.

The score differentiated is the class's *pre-softmax* value where the graph has one: a softmax saturates, and
its gradient for a confident class is close to zero everywhere. The methods that weigh perturbed inputs read the
class's *probability* instead (the model's softmax output, or the softmax of its scores where it ends without
one), as their authors define them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

from cnnviz import backends
from cnnviz._keras import keras_module
from cnnviz.crashes import doing
from cnnviz.errors import NotAConvLayer, OptionError, UnsupportedLayer, UnsupportedModel
from cnnviz.inputs.feeds import resolve_feeds
from cnnviz.inputs.reader import FeedSettings
from cnnviz.methods.extract import float32_output
from cnnviz.methods.resample import linear_weights
from cnnviz.models.graph import Trace, depends_on, image_input, input_shape, leaf_name, shape_text, trace
from cnnviz.models.precision import resolve_precision

#: Output activations that cnnviz looks past, to differentiate the score before them.
_SQUASHING = ("softmax", "sigmoid")
#: Perturbed inputs per model call: large enough to keep the cores busy, small enough for VGG16's maps at 224 px.
PERTURBED_BATCH = 32
#: What a perturbed copy's value is read as (:meth:`TargetModel.values`).
VALUE_KINDS = ("probability", "logit")


@dataclass(frozen=True)
class Target:
    """What an attribution explains, beside the class.

    Attributes:
        output: for a model of several outputs, the one to explain (the first by default).
        region: for a segmentation output, ``(top, left, bottom, right)`` pixels of the model input to sum the
            class's logits over (end exclusive), instead of the pixels predicted as the class.
        layer: the layer of the class activation maps (the last conv layer with maps larger than 1x1 by default).
    """

    output: str | None = None
    region: Sequence[int] | None = None
    layer: str | None = None


@dataclass(frozen=True)
class Scored:
    """A batch's forward pass, read as what is explained.

    Attributes:
        scores: the pre-softmax scores, ``(N, classes)`` or for segmentation ``(N, rows, cols, classes)``.
        outputs: the model's explained output, the same shape (probabilities after a softmax).
        classes: ``(N,)`` the class explained for each image.
        cotangent: the shape of ``scores``: the weight of each score in what is explained (a one-hot row, or for
            segmentation the class's pixels), so that ``(scores * cotangent).sum()`` per image is ``targets``.
        targets: ``(N,)`` the value of the score explained.
        pixels: for segmentation, ``(N,)`` how many of the output's pixels the score sums over.
    """

    scores: np.ndarray
    outputs: np.ndarray
    classes: np.ndarray
    cotangent: np.ndarray
    targets: np.ndarray
    pixels: np.ndarray | None = None


@dataclass(frozen=True)
class LayerPass:
    """A conv layer's maps for a batch, channels last, with the explained score's gradient with respect to them
    (None where it was not asked for), and the pass's :class:`Scored`."""

    maps: np.ndarray
    grads: np.ndarray | None
    scored: Scored


class TargetModel:
    """A model's replay set up to be explained: built once per input size, then run on batches.

    Args:
        model: a Keras model ending in class scores, a regression value or a segmentation; nested models are fine.
        layer: a layer's name or path whose output is ``(rows, cols, channels)`` maps; by default the last conv
            layer whose maps are larger than 1x1 (or ``target.layer``). Ignored (and no layer chosen) when ``maps`` is
            False.
        target: which output is explained, and for a segmentation output where (:class:`Target`).
        feeding: which input takes the images, what the others get and the precision the model computes in
            (:class:`cnnviz.inputs.reader.FeedSettings`; preprocessing is the caller's, on the batches it gives).
        maps: whether the methods need a layer's maps (the class activation maps do; pixel attributions do not).

    Raises:
        LayerNotFound, UnsupportedLayer: the layer does not exist or its output is not 2-D maps.
        UnsupportedModel: the model's output is not class scores, a regression value or a segmentation.
    """

    def __init__(
        self,
        model: Any,
        layer: str | None = None,
        target: Target | None = None,
        feeding: FeedSettings | None = None,
        maps: bool = True,
    ) -> None:
        target = target if target is not None else Target()
        feeding = feeding if feeding is not None else FeedSettings()
        if layer is not None and target.layer is not None and layer != target.layer:
            raise OptionError(f"two layers to explain at: '{layer}' and the target's '{target.layer}'")
        self.source = model
        self.with_maps = maps
        self._wanted = layer if layer is not None else target.layer
        self._input = feeding.input
        self._output = target.output
        self.precision = resolve_precision(feeding.precision)
        self.region = checked_region(target.region)
        #: What to tell the user (the model's other outputs).
        self.notes: list[str] = []
        self._built: dict[tuple[tuple[int | None, ...] | None, bool], tuple[Any, str, str, bool]] = {}
        self._compiled: dict[tuple[Any, ...], Callable[..., Any]] = {}
        #: Called with the number of inputs after each chunk of perturbed or gradient inputs has run (a progress
        #: bar, or the explorer letting other requests through); None for nothing.
        self.on_chunk: Callable[[int], object] | None = None
        several = len(getattr(model, "inputs", None) or []) > 1
        #: What the model's other inputs get, for a model of several (:func:`cnnviz.inputs.feeds.resolve_feeds`).
        self.feeds = resolve_feeds(model, image_input(model, self._input), feeding.feed) if several else None
        self._free_size = None in input_shape(model, self._input) if getattr(model, "inputs", None) else False
        self._channels_first_input = False
        self.head = "classes"
        self.output = ""
        #: The layer explained (empty where no layer is), and the score differentiated, in words.
        self.layer, self.score = self._build(None, maps)[1:3]
        #: How many classes the explained output scores (1 for a regression).
        self.classes = int(self._built[(None, maps)][0].outputs[-1].shape[-1])

    # -- building --------------------------------------------------------------------------------------------

    def _build(self, shape: tuple[int | None, ...] | None, maps: bool = True) -> tuple[Any, str, str, bool]:
        """The Keras model from the inputs (and with ``maps`` a nudge of the layer's maps) to (the layer's maps,)
        the class scores and the output, at ``shape``; with the layer's path, the score in words, and whether the
        layer's maps are channels first."""
        key = (shape, maps)
        if key in self._built:
            return self._built[key]
        keras = keras_module()
        # A float32 replay to choose the layer; then the replay that runs, in the precision asked, with a nudge
        # added to that layer's maps: the gradient with respect to the maps is the gradient with respect to that
        # extra input, which every backend takes (cnnviz.backends.pullback).
        traced = trace(self.source, shape, input=self._input)
        self._channels_first_input = bool(traced.convs and traced.convs[0].channels_first)
        path = self._choose_layer(traced, _producer(traced, self._choose_output(traced))) if maps else ""
        traced = trace(self.source, shape, input=self._input, precision=self.precision, nudge=path or None)
        self.notes.extend(note for note in traced.notes if note not in self.notes)
        output = self._choose_output(traced)
        rank = len(output.shape)
        if rank not in (2, 4):
            raise UnsupportedModel(
                f"model '{self.source.name}' output '{self.output}' is {shape_text(output.shape[1:])}; attributions "
                "explain class scores, a regression value or a segmentation (rows x cols x classes). For "
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
        # How probabilities come from the scores: the model's own squashing applied to its pre-squashing scores in
        # float32 (a bfloat16 softmax output rounds 0.999 to 1, and occlusion's drops to nothing), or the output
        # where cnnviz could not look past it.
        producer = _producer(traced, output)
        squashing = _activation_name(traced.layers[producer]) if producer is not None else None
        self._squashing: str | None = None
        if squashing in _SQUASHING:
            self._squashing = squashing if scores is not output else "output"
        scores = float32_output(scores, "cnnviz_scores")  # the gradient's sums in float32
        output = float32_output(output, "cnnviz_output")
        given = traced.sources if self.feeds is not None else [traced.input]
        if maps:
            if not depends_on(scores, traced.nudge):
                raise UnsupportedLayer(f"the class scores do not depend on layer '{path}'; choose another `layer`")
            channels_first = getattr(traced.layers[path], "data_format", "channels_last") == "channels_first"
            built_model = keras.Model([*given, traced.nudge], [traced.outputs[path], scores, output])
        else:
            channels_first = False
            built_model = keras.Model(given, [scores, output])
        built = (built_model, path, score, channels_first)
        self._built[key] = built
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
                    f"layer '{path}' is a {kind} with output {shape_text(traced.outputs[path].shape[1:])}; class "
                    "activation maps need a layer of 2-D maps (rows x cols x channels)"
                ) from None
            return path

    def _model(self, batch: np.ndarray, maps: bool) -> tuple[Any, str, str, bool]:
        return self._build(tuple(self._feed(batch).shape[1:]) if self._free_size else None, maps)

    def _feed(self, batch: np.ndarray) -> np.ndarray:
        """A channels-last batch in the layout the model's image input takes."""
        return np.moveaxis(batch, -1, 1) if self._channels_first_input else batch

    def _given(self, batch: np.ndarray, images: Sequence[int] | None) -> list[Any]:
        feed = self._feed(np.asarray(batch, dtype=np.float32))
        return self.feeds.inputs(feed, images) if self.feeds is not None else [feed]

    def layer_channels(self, batch: np.ndarray) -> int:
        """The channels of the explained layer's maps for a channels-last batch like ``batch`` (0 without a layer)."""
        if not self.with_maps:
            return 0
        model, _, _, channels_first = self._model(np.asarray(batch, dtype=np.float32), True)
        shape = model.outputs[0].shape
        return int(shape[1] if channels_first else shape[-1])

    def learned_layers(self) -> list[tuple[str, Any]]:
        """The model's layers with learned weights (weights their layer makes with an initializer: kernels,
        biases, a batch norm's scale, offset and statistics; frozen ones too), by path in the order the model calls
        them, nested models' layers in their place. A preprocessing layer's adapted constants are not learned."""
        keras = keras_module()
        traced = trace(self.source, None, input=self._input)
        return [
            (path, layer)
            for path, layer in traced.layers.items()
            if not isinstance(layer, keras.Model) and learned_weights(layer)
        ]

    def _placed(self, others: Sequence[Any], images: Any) -> list[Any]:
        """The model's inputs with ``images`` in the image input's place among ``others``."""
        place = self.feeds.image_index if self.feeds is not None else 0
        return [*others[:place], images, *others[place + 1 :]]

    # -- what is explained ----------------------------------------------------------------------------------

    def scored(
        self, scores: np.ndarray, outputs: np.ndarray, classes: Sequence[int] | int | None, input_size: tuple[int, ...]
    ) -> Scored:
        """Which class each image is explained for (each image's top class when ``classes`` is None), and the
        score explained, from a forward pass's scores and outputs."""
        count = len(scores)
        cotangent = np.zeros_like(scores)
        if self.head == "segmentation":
            chosen, mask = _segmentation_targets(classes, scores, self.region, input_size)
            cotangent[np.arange(count), :, :, chosen] = mask
            pixels: np.ndarray | None = mask.reshape(count, -1).sum(axis=1)
        else:
            chosen = _chosen_classes(classes, scores, count)
            cotangent[np.arange(count), chosen] = 1.0
            pixels = None
        targets = (scores * cotangent).reshape(count, -1).sum(axis=1)
        return Scored(scores, outputs, chosen, cotangent, targets, pixels)

    def forward(self, batch: np.ndarray, classes: Sequence[int] | int | None, images: Sequence[int] | None) -> Scored:
        """A forward pass of a channels-last, model-ready batch: what each image is explained for."""
        if self.with_maps:
            return self.layer_pass(batch, classes, images, gradient=False).scored
        model = self._model(batch, False)[0]
        with doing(f"a forward pass of model '{self.source.name}'"):
            scores, outputs = model(self._given(batch, images), training=False)
        return self.scored(np.asarray(scores), np.asarray(outputs), classes, batch.shape[1:3])

    def layer_pass(
        self,
        batch: np.ndarray,
        classes: Sequence[int] | int | None,
        images: Sequence[int] | None,
        gradient: bool = True,
    ) -> LayerPass:
        """The layer's maps for a batch and, with ``gradient``, the explained score's gradient with respect to
        them: one forward pass and one backward pass."""
        if not self.with_maps:
            raise OptionError("this target model was set up without a layer (maps=False)")
        batch = np.asarray(batch, dtype=np.float32)
        model, path, score, channels_first = self._model(batch, True)
        ops = keras_module().ops
        given = [ops.convert_to_tensor(one) for one in self._given(batch, images)]
        zeros = np.zeros((len(batch), *model.inputs[-1].shape[1:]), dtype=np.float32)
        with doing(f"the gradient of {score} with respect to layer '{path}' of model '{self.source.name}'"):
            (maps, scores, outputs), backward = backends.pullback(
                lambda nudge: model([*given, nudge], training=False), zeros
            )
            scored = self.scored(scores, outputs, classes, batch.shape[1:3])
            grads = backward([None, scored.cotangent, None]) if gradient else None
        maps_array = np.asarray(maps, dtype=np.float32)
        grads_array = None if grads is None else np.asarray(grads, dtype=np.float32)
        if channels_first:
            maps_array = np.moveaxis(maps_array, 1, -1)
            grads_array = None if grads_array is None else np.moveaxis(grads_array, 1, -1)
        return LayerPass(maps_array, grads_array, scored)

    def input_gradient(
        self, inputs: np.ndarray, cotangent: np.ndarray, images: Sequence[int] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The gradient of the explained score with respect to channels-last, model-ready ``inputs``, in chunks of
        :data:`PERTURBED_BATCH`: (``(M, rows, cols, channels)`` gradients, ``(M,)`` scores explained).

        Args:
            inputs: ``(M, rows, cols, channels)``: images, or noisy or scaled copies of them.
            cotangent: ``(M, ...)`` each row's weights of the scores (:attr:`Scored.cotangent`, repeated per copy).
            images: each row's image number in the run, for inputs fed one row per image.
        """
        inputs = np.asarray(inputs, dtype=np.float32)
        ops = keras_module().ops
        grads, values = [], []
        for start in range(0, len(inputs), PERTURBED_BATCH):
            part = slice(start, start + PERTURBED_BATCH)
            chunk, weights = inputs[part], cotangent[part]
            numbers = None if images is None else list(images)[part]
            model, _, score, _ = self._model(chunk, False)
            others = [ops.convert_to_tensor(one) for one in self._given(chunk, numbers)]  # Keras takes no mix

            def run(x: Any, others: list[Any] = others, model: Any = model) -> Any:
                return model(self._placed(others, x), training=False)[0]

            with doing(f"the gradient of {score} with respect to the input of model '{self.source.name}'"):
                (scores,), backward = backends.pullback(run, self._feed(chunk))
                grad = backward([weights])
            grads.append(np.moveaxis(grad, 1, -1) if self._channels_first_input else grad)
            values.append((scores * weights).reshape(len(chunk), -1).sum(axis=1))
            self._chunk_done(len(chunk))
        if not grads:
            return np.zeros_like(inputs), np.zeros((0,), dtype=np.float32)
        return np.concatenate(grads), np.concatenate(values)

    def values(
        self, scores: np.ndarray, outputs: np.ndarray, scored: Scored, rows: np.ndarray, kind: str = "probability"
    ) -> np.ndarray:
        """The explained class's value in a pass over perturbed copies of a batch's images: ``(M,)`` float32.

        Args:
            scores: the copies' pre-softmax scores, ``(M, ...)``.
            outputs: the copies' outputs.
            scored: the unperturbed batch's :class:`Scored`.
            rows: ``(M,)`` each copy's image, a row of that batch.
            kind: ``probability``, the model's softmax (or sigmoid) of its pre-squashing scores computed here in
                float32, or the softmax of the scores where the model ends without one; or ``logit``, the
                pre-softmax score. A regression's value is its output either way; a segmentation's is the mean
                over the pixels its score sums over.
        """
        if kind not in VALUE_KINDS:
            raise OptionError(f"unknown score '{kind}'; choose one of: {', '.join(VALUE_KINDS)}")
        rows = np.asarray(rows, dtype=np.int64)
        chosen = np.asarray(scored.classes, dtype=np.int64)[rows]
        if self.head == "regression":
            return np.asarray(scores[:, 0], dtype=np.float32)
        if kind == "logit":
            read = np.asarray(scores, dtype=np.float32)
        elif self._squashing == "output":
            read = np.asarray(outputs, dtype=np.float32)
        elif self._squashing == "sigmoid":
            read = (1.0 / (1.0 + np.exp(-np.asarray(scores, np.float64)))).astype(np.float32)
        else:  # a softmax, or none: the softmax of the scores
            read = _softmax(scores)
        every = np.arange(len(read))
        if self.head == "segmentation":
            masks = scored.cotangent[rows, ..., chosen]
            share = np.maximum(masks.reshape(len(rows), -1).sum(axis=1), 1.0)
            picked = np.moveaxis(read, -1, 0)[chosen, every]
            return ((picked * masks).reshape(len(rows), -1).sum(axis=1) / share).astype(np.float32)
        return np.asarray(read[every, chosen], dtype=np.float32)

    def perturbed_rows(
        self,
        inputs: np.ndarray,
        baselines: np.ndarray,
        masked: Iterable[tuple[int, np.ndarray]],
        scored: Scored,
        images: Sequence[int] | None,
        kind: str = "probability",
        normalise: bool = False,
    ) -> np.ndarray:
        """The explained class's value (:meth:`values`) for perturbed copies of a batch's images: for each
        ``(row, mask)`` of ``masked``, ``inputs[row] * mask + baselines[row] * (1 - mask)``: the one path of every
        perturbation method and metric. The masks are taken as they come (a generator keeps memory bounded), made
        into inputs on the device and run through the model :data:`PERTURBED_BATCH` at a time, copies of different
        images in one call.

        Args:
            inputs: ``(N, rows, cols, channels)`` model-ready, channels last.
            baselines: what a masked-out pixel becomes, the same shape.
            masked: ``(row, mask)`` pairs, 1 kept and 0 replaced by the baseline; every mask of one call has one
                shape, the input's or a smaller one (a layer's maps), resized bilinearly on the device.
            scored: the unperturbed batch's :class:`Scored`.
            images: each row's image number in the run, for inputs fed one row per image.
            kind: ``probability`` or ``logit`` (:data:`VALUE_KINDS`).
            normalise: min-max normalise each mask (after resizing) to 0..1 first, as Score-CAM does.

        Returns:
            ``(M,)`` float32, one value per pair in order.
        """
        inputs = np.asarray(inputs, dtype=np.float32)
        baselines = np.broadcast_to(np.asarray(baselines, dtype=np.float32), inputs.shape)
        model = self._model(inputs[:1], False)[0]
        values = []
        pairs = iter(masked)
        with doing(f"model '{self.source.name}' on perturbed copies of {len(inputs)} images"):
            while chunk := list(islice(pairs, PERTURBED_BATCH)):
                rows = np.array([row for row, _ in chunk], dtype=np.int64)
                masks = np.stack([mask for _, mask in chunk]).astype(np.float32, copy=False)
                sizes = tuple(zip(masks.shape[1:3], inputs.shape[1:3], strict=True))
                resize = any(size != target for size, target in sizes)
                weights = [linear_weights(*pair if resize else (1, 1)).astype(np.float32) for pair in sizes]
                numbers = None if images is None else [int(images[row]) for row in rows]
                others = self._given(np.zeros((len(chunk), *inputs.shape[1:]), np.float32), numbers)
                step = self._perturbing(model, resize, normalise)
                scores, outputs = step(inputs[rows], baselines[rows], masks, *weights, others)
                values.append(self.values(np.asarray(scores), np.asarray(outputs), scored, rows, kind))
                self._chunk_done(len(chunk))
        return np.concatenate(values) if values else np.zeros((0,), dtype=np.float32)

    def _chunk_done(self, count: int) -> None:
        if self.on_chunk is not None:
            self.on_chunk(count)

    def _perturbing(self, model: Any, resize: bool, normalise: bool) -> Callable[..., Any]:
        """The compiled step: masks (resized, normalised) mix an image with its baseline, the model runs on them."""
        key = (id(model), resize, normalise)
        if key in self._compiled:
            return self._compiled[key]
        ops = keras_module().ops
        channels_first = self._channels_first_input

        def step(image: Any, base: Any, masks: Any, row_w: Any, col_w: Any, others: Any) -> Any:
            if resize:
                masks = ops.einsum("rh,bhw,cw->brc", row_w, masks, col_w)
            if normalise:
                low = ops.min(masks, axis=(1, 2), keepdims=True)
                high = ops.max(masks, axis=(1, 2), keepdims=True)
                span = high - low
                masks = ops.where(span > 0, (masks - low) / ops.where(span > 0, span, 1.0), 0.0)
            masks = masks[..., None]
            mixed = image * masks + base * (1.0 - masks)
            if channels_first:
                mixed = ops.transpose(mixed, (0, 3, 1, 2))
            scores, outputs = model(self._placed(others, mixed), training=False)
            return scores, outputs

        compiled = backends.compiled(step, model.variables)
        self._compiled[key] = compiled
        return compiled


def learned_weights(layer: Any) -> list[tuple[Any, Any]]:
    """``layer``'s weights that it makes with an initializer (``kernel`` by ``kernel_initializer``, ...), each with
    that initializer."""
    found = []
    for weight in layer.weights:
        initializer = getattr(layer, f"{str(weight.name).split('/')[-1]}_initializer", None)
        if initializer is not None:
            found.append((weight, initializer))
    return found


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.asarray(scores, dtype=np.float64) - np.max(scores, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


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
