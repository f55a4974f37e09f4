"""The model that every attribution method asks its questions of (:class:`TargetModel`): a forward pass read as
what is explained, a layer's maps and the score's gradient with respect to them, the score's gradient with
respect to the input, and the explained value of perturbed copies, each run in batches on the device."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any

import numpy as np

from cnnviz import backends
from cnnviz._keras import keras_module
from cnnviz.crashes import doing
from cnnviz.errors import OptionError
from cnnviz.methods.resample import linear_weights
from cnnviz.methods.target.replay import Replay
from cnnviz.methods.target.scores import explained_values, scored
from cnnviz.methods.target.values import PERTURBED_BATCH, LayerPass, Scored
from cnnviz.models.graph import trace
from cnnviz.models.inner import Grid


class TargetModel(Replay):
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

    # -- what is explained ----------------------------------------------------------------------------------

    def scored(
        self, scores: np.ndarray, outputs: np.ndarray, classes: Sequence[int] | int | None, input_size: tuple[int, ...]
    ) -> Scored:
        """Which class each image is explained for, and the score explained (:func:`scores.scored`)."""
        return scored(self.head, self.region, scores, outputs, classes, input_size)

    def forward(self, batch: np.ndarray, classes: Sequence[int] | int | None, images: Sequence[int] | None) -> Scored:
        """A forward pass of a channels-last, model-ready batch: what each image is explained for."""
        if self.with_maps:
            return self.layer_pass(batch, classes, images, gradient=False).scored
        model = self._model(batch, False)[0]
        ops = keras_module().ops
        given = [ops.convert_to_tensor(one) for one in self._given(batch, images)]
        with doing(f"a forward pass of model '{self.source.name}'"):
            scores, outputs = self._forward_step(model)(given)
        return self.scored(np.asarray(scores), np.asarray(outputs), classes, batch.shape[1:3])

    def _forward_step(self, model: Any) -> Callable[..., Any]:
        """The compiled forward pass (eagerly, a small model's call took most of an input gradient's time)."""
        key = (id(model), "forward")
        if key not in self._compiled:
            self._compiled[key] = backends.compiled(lambda given: model(given, training=False), model.variables)
        return self._compiled[key]

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
        grads, scores, _ = self._gradients(inputs, np.asarray(cotangent, dtype=np.float32), False, images)
        count = len(grads)
        return grads, (scores * np.asarray(cotangent, np.float32)[:count]).reshape(count, -1).sum(axis=1)

    def scored_gradient(
        self, inputs: np.ndarray, classes: Sequence[int] | int | None, images: Sequence[int] | None
    ) -> tuple[Scored, np.ndarray] | None:
        """The forward pass of a batch (:meth:`forward`) and the explained score's gradient with respect to the
        inputs, from the same pass: one forward and one backward pass where :meth:`forward` then
        :meth:`input_gradient` take two forward passes. The class explained is each image's top class, chosen
        inside the step, or ``classes``. None for a segmentation, whose explained pixels need the whole pass first."""
        if self.head == "segmentation":
            return None
        inputs = np.asarray(inputs, dtype=np.float32)
        width = int(np.prod(self._model(inputs[:1], False)[0].outputs[0].shape[1:]))
        weights = np.zeros((len(inputs), width), dtype=np.float32)
        top = self.head == "classes" and classes is None
        if not top:
            weights[:] = 1.0 if self.head == "regression" else 0.0
            if self.head == "classes":
                chosen = np.broadcast_to(np.asarray(classes, dtype=np.int64), (len(inputs),))
                if chosen.size and (chosen.min() < 0 or chosen.max() >= width):
                    raise OptionError(f"class {int(chosen.max())} is out of range: the model has {width} classes")
                weights[np.arange(len(inputs)), chosen] = 1.0
        grads, scores, outputs = self._gradients(inputs, weights, top, images)
        return self.scored(scores, outputs, classes, inputs.shape[1:3]), grads

    def _gradients(
        self, inputs: np.ndarray, weights: np.ndarray, top: bool, images: Sequence[int] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(gradients, scores, outputs) of ``inputs`` in chunks, the score weighted by ``weights`` or (``top``)
        each row's largest."""
        inputs = np.asarray(inputs, dtype=np.float32)
        ops = keras_module().ops
        grads, scores, outputs = [], [], []
        flag = np.float32(top)
        for start in range(0, len(inputs), PERTURBED_BATCH):
            part = slice(start, start + PERTURBED_BATCH)
            chunk, rows = inputs[part], weights[part]
            numbers = None if images is None else list(images)[part]
            model, _, score, _ = self._model(chunk, False)
            others = [ops.convert_to_tensor(one) for one in self._given(chunk, numbers)]  # Keras takes no mix
            with doing(f"the gradient of {score} with respect to the input of model '{self.source.name}'"):
                (chunk_scores, chunk_outputs), grad = self._gradient_step(model)(
                    ops.convert_to_tensor(self._feed(chunk)), rows, flag, others
                )
            grad = np.asarray(grad, dtype=np.float32)
            grads.append(np.moveaxis(grad, 1, -1) if self._channels_first_input else grad)
            scores.append(np.asarray(chunk_scores, np.float32))
            outputs.append(np.asarray(chunk_outputs, np.float32))
            self._chunk_done(len(chunk))
        if not grads:
            empty = np.zeros((0,), dtype=np.float32)
            return np.zeros_like(inputs), empty, empty
        return np.concatenate(grads), np.concatenate(scores), np.concatenate(outputs)

    def attention_scores(self, batch: np.ndarray, images: Sequence[int] | None) -> tuple[list[np.ndarray], Grid]:
        """Every attention layer's scores ``(N, heads, tokens, tokens)`` for a channels-last, model-ready batch, in
        the model's order, and where the tokens lie on the image (:mod:`cnnviz.models.inner`); no scores for a
        model without attention layers."""
        batch = np.asarray(batch, dtype=np.float32)
        shape = tuple(self._feed(batch).shape[1:]) if self._free_size else None
        key = (shape, "attention")
        if key not in self._compiled:
            traced = trace(self.source, shape, input=self._input, precision=self.precision)
            grid = next(iter(traced.grids.values()), Grid(0, 0, 0))
            if not traced.attention:
                self._compiled[key] = lambda given: ([], grid)
            else:
                keras = keras_module()
                given = traced.sources if self.feeds is not None else [traced.input]
                model = keras.Model(given, list(traced.attention.values()), name="cnnviz_attention")
                step = backends.compiled(lambda given: model(given, training=False), model.variables)
                self._compiled[key] = lambda given: (step(given), grid)
        ops = keras_module().ops
        given = [ops.convert_to_tensor(one) for one in self._given(batch, images)]
        with doing(f"the attention of model '{self.source.name}'"):
            scores, grid = self._compiled[key](given)
        return [np.asarray(ops.cast(one, "float32")) for one in scores], grid

    def values(
        self, scores: np.ndarray, outputs: np.ndarray, scored: Scored, rows: np.ndarray, kind: str = "probability"
    ) -> np.ndarray:
        """The explained class's value in a pass over perturbed copies of a batch's images, ``(M,)`` float32
        (:func:`cnnviz.methods.target.scores.explained_values`)."""
        return explained_values(self.head, self._squashing, scores, outputs, scored, rows, kind)

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

    def _gradient_step(self, model: Any) -> Callable[..., Any]:
        """The compiled step of the input gradient: the scores, the outputs and the gradient of the scores' weighted
        sum (or each row's top score) with respect to the input, from one forward and one backward pass (eagerly, a
        chunk took 2 to 4 times as long on the bundled model: bench/bench_gradients.py)."""
        key = (id(model), "gradient")
        if key in self._compiled:
            return self._compiled[key]
        ops = keras_module().ops

        def weighted(x: Any, weights: Any, top: Any, others: Any) -> Any:
            scores, outputs = model(self._placed(others, x), training=False)
            scores = ops.cast(scores, "float32")
            if len(scores.shape) == 2:  # the top class's score where asked (the argmax passes no gradient)
                best = ops.one_hot(ops.argmax(scores, axis=-1), scores.shape[-1], dtype="float32")
                weights = top * best + (1.0 - top) * weights
            weights = ops.stop_gradient(ops.reshape(weights, ops.shape(scores)))
            return ops.sum(scores * weights), (scores, ops.cast(outputs, "float32"))

        compiled = backends.compiled(backends.gradient_with(weighted), model.variables)
        self._compiled[key] = compiled
        return compiled

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
