"""The replay's surgery: from a Keras model and what is explained, the Keras model that computes it, built once per
input size. It chooses the output explained (:meth:`Replay._choose_output`) and the conv layer
(:meth:`Replay._choose_layer`), looks past the model's softmax or sigmoid to the scores before it
(:func:`class_scores`), and adds a nudge to the layer's maps, whose gradient is the gradient with respect to the maps
on every backend (:mod:`cnnviz.models.graph`), so a nested base, several inputs or outputs, bfloat16 and the
oneDNN-safe replay are handled here once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cnnviz._keras import keras_module
from cnnviz.errors import NotAConvLayer, OptionError, UnsupportedLayer, UnsupportedModel
from cnnviz.inputs.feeds import resolve_feeds
from cnnviz.inputs.reader import FeedSettings
from cnnviz.methods.extract import float32_output
from cnnviz.methods.target.values import Target, checked_region
from cnnviz.models.graph import Trace, depends_on, image_input, input_shape, leaf_name, shape_text, trace
from cnnviz.models.precision import resolve_precision

#: Output activations that cnnviz looks past, to differentiate the score before them.
_SQUASHING = ("softmax", "sigmoid")


def refuse_backbone(model: Any) -> None:
    """:class:`UnsupportedModel` for a bare KerasHub backbone: its output is features, not a head's scores, and
    reading its feature maps as a segmentation would explain a class nobody trained."""
    kinds = [kind for kind in type(model).__mro__ if kind.__module__.split(".")[0] == "keras_hub"]
    if any(kind.__name__ == "Backbone" for kind in kinds):
        raise UnsupportedModel(
            f"model '{model.name}' is a KerasHub backbone ({type(model).__name__}): it gives features, not class "
            "scores, so there is no class to explain. featuremaps, filters, stats, top and maximize work on it; "
            "the attribution methods need a classifier (keras_hub.models.ImageClassifier, or its .keras file)."
        )


class Replay:
    """A model's replay set up to be explained, built once per input size (see the module; the arguments are
    :class:`cnnviz.methods.target.TargetModel`'s)."""

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
        refuse_backbone(model)
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
        segmentation model's last conv makes its output). On a Vision Transformer whose last layer of maps is a
        transformer block, the block before it: a head that reads the class token takes nothing from the last
        block's patch tokens (their gradient is zero, and so is Grad-CAM there), while the block before reaches the
        class token through the last block's attention."""
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
            blocks = [conv for conv in maps if conv.tokens is not None]
            if len(blocks) > 1 and maps[-1] is blocks[-1]:
                return blocks[-2].path
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

    def traced(self) -> Trace:
        """The model's float32 replay, as its layers are (:func:`cnnviz.models.graph.trace`)."""
        return trace(self.source, None, input=self._input)

    def _placed(self, others: Sequence[Any], images: Any) -> list[Any]:
        """The model's inputs with ``images`` in the image input's place among ``others``."""
        place = self.feeds.image_index if self.feeds is not None else 0
        return [*others[:place], images, *others[place + 1 :]]


def _producer(traced: Trace, tensor: Any) -> str | None:
    """The path of the layer whose output ``tensor`` is."""
    return next((path for path, out in traced.outputs.items() if out is tensor), None)


def _spatial(shape: tuple[int | None, ...]) -> int:
    rows, cols = shape[0], shape[1]
    return (rows or 2) * (cols or 2)  # a free size is larger than 1x1 on a real image


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
