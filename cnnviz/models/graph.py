"""Walk a Keras model's graph, nested models included, and find its convolution layers.

Keras cannot build an extractor from the outputs of layers inside a nested model (the usual transfer-learning
shape: a VGG16 base inside a Sequential): those tensors belong to the inner model's own graph, and
``keras.Model(outer.inputs, inner_layer.output)`` fails with "Graph disconnected". A Sequential loaded from a file
may also have no ``.output`` at all. So cnnviz never reuses the model's own symbolic tensors: it *replays* the
model on a fresh ``keras.Input``, calling every layer again and stepping into nested models as if their layers
were inlined. The result is one flat graph from the outer input to every layer, layers before a nested base
(Rescaling, augmentation) included, with the original weights shared.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cnnviz._keras import keras_module
from cnnviz.errors import CnnvizError, LayerNotFound, NotAConvLayer, OptionError, UnsupportedModel, brief
from cnnviz.models.inner import INPUT, MAPS, SCORES, Grid, Inner, inner_layers, opened, token_grid
from cnnviz.models.precision import DEFAULT_PRECISION

SEPARATOR = "/"


@dataclass(frozen=True)
class ConvLayer:
    """A convolution layer found in a model.

    Attributes:
        path: its name, with the names of the models it is nested in: ``vgg16/block1_conv1``.
        layer: the Keras layer.
        kind: the layer's class name (``Conv2D``, ``DepthwiseConv2D``, ...).
        kernel_size: the spatial size of its kernel.
        output_shape: its output shape without the batch axis, channels last, for the traced input size.
        params: how many weights it has.
        channels_first: whether the layer computes in ``channels_first`` layout.
        tokens: for a transformer block (:mod:`cnnviz.models.inner`), whose tokens are drawn as maps on the patch
            grid, how many leading tokens (the class token) the maps leave out; None for a convolution.
    """

    path: str
    layer: Any
    kind: str
    kernel_size: tuple[int, ...]
    output_shape: tuple[int | None, ...]
    params: int
    channels_first: bool
    tokens: int | None = None


@dataclass
class Trace:
    """A model replayed on fresh inputs: the symbolic input that takes the images, the output (and first input) of
    every layer by path, and the model's own output. ``sources`` are all the model's inputs in its own order (the
    image input among them), ``source_names`` their names."""

    input: Any
    sources: list[Any] = field(default_factory=list)
    source_names: list[str] = field(default_factory=list)
    precision: str = DEFAULT_PRECISION
    notes: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    output: Any = None
    layers: dict[str, Any] = field(default_factory=dict)
    convs: list[ConvLayer] = field(default_factory=list)
    #: Each attention layer's scores ``(batch, heads, tokens, tokens)`` by path, and where its tokens lie.
    attention: dict[str, Any] = field(default_factory=dict)
    grids: dict[str, Grid] = field(default_factory=dict)
    #: The layer whose output takes a nudge (:func:`trace`'s ``nudge``), and the input that gives it.
    nudged: str | None = None
    nudge: Any = None

    @property
    def image_index(self) -> int:
        """The place of the image input among the model's inputs."""
        return next(index for index, source in enumerate(self.sources) if source is self.input)

    def on_image_branch(self, path: str) -> bool:
        """Whether the layer at ``path`` computes from the image input (not only from the model's other inputs)."""
        return len(self.sources) == 1 or depends_on(self.outputs[path], self.input)

    def find(self, names: Sequence[str]) -> list[ConvLayer]:
        """Resolve layer names to conv layers, in the order given.

        A name may be a full path (``vgg16/block1_conv1``), a nested layer's own name when it is unambiguous
        (``block1_conv1``), or a shell-style pattern matched against both (``block5_*``, ``*conv1``), which stands
        for every conv layer it matches, in model order.

        Raises:
            LayerNotFound: no layer has that name, a short name fits several nested layers, or a pattern matches
                no conv layer; the message lists the conv layers, closest match first, or the candidates.
            NotAConvLayer: the layer exists but is not a convolution.
        """
        by_path = {conv.path: conv for conv in self.convs}
        found: list[ConvLayer] = []
        for name in names:
            found.extend(self._glob(name) if _is_pattern(name) else [self._find_one(name, by_path)])
        return found

    def _glob(self, pattern: str) -> list[ConvLayer]:
        matches = [
            conv
            for conv in self.convs
            if fnmatch.fnmatchcase(conv.path, pattern) or fnmatch.fnmatchcase(leaf_name(conv.path), pattern)
        ]
        if not matches:
            raise LayerNotFound(f"no conv layer matches '{pattern}'; {self._listing(pattern)}")
        return matches

    def _find_one(self, name: str, by_path: dict[str, ConvLayer]) -> ConvLayer:
        path = self._resolve(name)
        if path in by_path:
            return by_path[path]
        if path in self.layers:
            kind = type(self.layers[path]).__name__
            raise NotAConvLayer(f"layer '{path}' is a {kind}, not a convolution; {self._listing(name)}")
        raise LayerNotFound(f"no layer '{name}'; {self._listing(name)}")

    def _resolve(self, name: str) -> str:
        if name in self.layers:
            return name
        suffix = SEPARATOR + name
        candidates = [path for path in self.layers if path.endswith(suffix)]
        if len(candidates) > 1:
            raise LayerNotFound(f"'{name}' is ambiguous: it names {', '.join(candidates)}; give the full path")
        return candidates[0] if candidates else name

    def _listing(self, name: str) -> str:
        paths = [conv.path for conv in self.convs]
        if not paths:
            return "this model has no conv layers"
        return "conv layers are: " + ", ".join(sorted(paths, key=lambda path: -_similarity(name, path)))


def _is_pattern(name: str) -> bool:
    return any(char in name for char in "*?[")


def shape_text(shape: Sequence[int | None]) -> str:
    """A shape as ``224x224x64``, with ``?`` for free sizes.

    >>> shape_text((None, None, 8))
    '?x?x8'
    """
    return "x".join("?" if n is None else str(n) for n in shape)


def _similarity(name: str, path: str) -> float:
    """How alike a typed name is to a layer path or to the path's own last name, 0..1."""
    return max(difflib.SequenceMatcher(None, name, candidate).ratio() for candidate in (path, leaf_name(path)))


def leaf_name(path: str) -> str:
    """A layer path's own last name: ``base/block1_conv1`` -> ``block1_conv1``."""
    return path.split(SEPARATOR)[-1]


def conv_classes() -> tuple[type, ...]:
    """The Keras layer classes cnnviz treats as convolutions."""
    layers = keras_module().layers
    names = [
        "Conv1D",
        "Conv2D",
        "Conv3D",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
        "SeparableConv1D",
        "SeparableConv2D",
        "Conv1DTranspose",
        "Conv2DTranspose",
        "Conv3DTranspose",
    ]
    return tuple(getattr(layers, name) for name in names if hasattr(layers, name))


def model_inputs(model: Any) -> list[tuple[str, tuple[int | None, ...]]]:
    """The model's inputs, in its own order: (name, shape without the batch axis).

    Raises:
        UnsupportedModel: none is defined yet.
    """
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise UnsupportedModel(
            f"model '{model.name}' has no defined input shape; build it (model.build or a keras.Input) and save it"
        )
    found = []
    for number, tensor in enumerate(inputs):
        name = str(getattr(tensor, "name", "") or f"input_{number}").split(":")[0]
        found.append((name, tuple(tensor.shape[1:])))
    return found


def image_input(model: Any, name: str | None = None) -> int:
    """The place, among the model's inputs, of the one that takes the images: the one called ``name``, the only
    one, or the only one shaped like an image (rows, cols, channels), else like a sequence (steps, channels).

    Raises:
        OptionError: no input called ``name``, or several fit and none was named (the message lists them).
        UnsupportedModel: none takes images or sequences.
    """
    inputs = model_inputs(model)
    names = [input_name for input_name, _ in inputs]
    if name is not None:
        if name not in names:
            raise OptionError(f"model '{model.name}' has no input '{name}'; its inputs are: {', '.join(names)}")
        return names.index(name)
    if len(inputs) == 1:
        return 0
    for rank in (3, 2):
        fitting = [index for index, (_, shape) in enumerate(inputs) if len(shape) == rank]
        if len(fitting) == 1:
            return fitting[0]
        if fitting:
            listed = ", ".join(f"{names[i]} ({shape_text(inputs[i][1])})" for i in fitting)
            raise OptionError(
                f"model '{model.name}' has several inputs that take images: {listed}; choose one with `input`"
            )
    raise UnsupportedModel(f"none of model '{model.name}''s inputs ({', '.join(names)}) takes images or sequences")


def input_shape(model: Any, input: str | None = None) -> tuple[int | None, ...]:
    """The shape, without the batch axis, of the model's image input (:func:`image_input`).

    Raises:
        UnsupportedModel: no input is defined yet.
        OptionError: the image input cannot be told (several fit; name one).
    """
    return model_inputs(model)[image_input(model, input)][1]


def depends_on(tensor: Any, source: Any) -> bool:
    """Whether the symbolic ``tensor`` of a replay is computed from ``source``, one of the replay's inputs."""
    seen: set[int] = set()
    stack = [tensor]
    while stack:
        current = stack.pop()
        if current is source:
            return True
        if id(current) in seen:
            continue
        seen.add(id(current))
        history = getattr(current, "_keras_history", None)
        if history is None:
            continue
        node = history.operation._inbound_nodes[history.node_index]
        stack.extend(node.input_tensors)
    return False


def sized_input_shape(model: Any, size: Sequence[int] | None, input: str | None = None) -> tuple[int | None, ...]:
    """The model's image input shape with free (None) rows and cols set to ``size``; unchanged when ``size`` is
    None.

    Raises:
        OptionError: the model's input is an image of fixed size other than ``size``.
    """
    shape = input_shape(model, input)
    if size is None or len(shape) != 3:
        return shape
    channels_first = shape[0] in (1, 3) and shape[-1] not in (1, 3)
    spatial = list(shape[1:] if channels_first else shape[:2])
    for axis, wanted in enumerate(size):
        if spatial[axis] is None:
            spatial[axis] = wanted
        elif spatial[axis] != wanted:
            raise OptionError(
                f"model '{model.name}' takes {shape_text(shape)} input; `size` {size[0]}x{size[1]} fits only "
                "models of free input size"
            )
    return (shape[0], *spatial) if channels_first else (*spatial, shape[-1])


def trace(
    model: Any,
    shape: Sequence[int | None] | None = None,
    until: str | None = None,
    input: str | None = None,
    precision: str = DEFAULT_PRECISION,
    nudge: str | None = None,
) -> Trace:
    """Replay ``model`` on fresh inputs, its image input at ``shape`` (its own input shape by default).

    Args:
        model: a Functional or Sequential Keras model; nested models must be Functional or Sequential too.
        shape: the image input's shape without the batch axis, to fix free (None) spatial sizes.
        until: stop after the layer of this path: the layers after it are not called, so a conv base can be
            replayed at another input size than the dense head after it was built for. ``output`` is then
            that layer's output.
        input: the name of the input that takes the images, for a model with several (:func:`image_input`).
        precision: ``float32``, or ``bfloat16``: every layer after the first conv layer runs as a twin with
            Keras's ``mixed_bfloat16`` policy (the same float32 weights, bfloat16 arithmetic); a layer whose weights
            a twin cannot share runs as it is, and ``notes`` say so. In float32, a layer whose own policy computes
            in 16 bits on float32 weights (``mixed_float16``) runs as a float32 twin (:func:`_in_precision`). The
            layers up to and including the first conv run in float32: they see the pixels, and the first conv,
            with its few input channels, is the cheapest layer (VGG16: 0.6% of its multiply-adds, 1-3% of its
            bfloat16 forward pass); in bfloat16 it put 0.12% more of VGG16's grid pixels over 2 colour levels off
            float32's (98.88% within, against 98.99%: its rounding carries through every layer after it).
        nudge: the path of a layer whose output the layers after it see plus a tensor of the same shape, given
            by an extra input (``Trace.nudge``; ``outputs`` keeps the layer's own output). Fed zeros it changes
            nothing, and the gradient of anything after the layer with respect to the nudge is its gradient with
            respect to the layer's output: a gradient every Keras backend can take as a function of an input.

    Returns:
        A :class:`Trace` whose tensors all hang off its inputs.

    Raises:
        UnsupportedModel: the model, or a model nested in it, is a subclassed model with no graph to walk.
    """
    keras = keras_module()
    _check_walkable(model)
    inputs = model_inputs(model)
    chosen = _traced_input(model, input, inputs)
    sources = [
        keras.Input(shape=tuple(shape) if number == chosen and shape is not None else own, name=name)
        for number, (name, own) in enumerate(inputs)
    ]
    result = Trace(
        input=sources[chosen],
        sources=sources,
        source_names=[name for name, _ in inputs],
        precision=precision,
        nudged=nudge,
    )
    try:
        result.output = _replay(model, sources if len(sources) > 1 else sources[0], "", result, conv_classes(), until)
    except _Reached as reached:
        result.output = reached.output
    except (CnnvizError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if precision == "float32":
            raise
        # A layer that cannot compute in bfloat16 (a Keras 2 model's TensorFlow ops with float32 constants): the
        # whole model runs in float32, and says so.
        again = trace(model, shape, until, input, "float32", nudge)
        again.notes.append(f"model '{model.name}' runs in float32: it cannot compute in {precision} ({brief(exc)})")
        return again
    return result


def _traced_input(model: Any, input: str | None, inputs: list[tuple[str, tuple[int | None, ...]]]) -> int:
    """The input a replay sizes by ``shape``: :func:`image_input`; where several fit and none is named, the first
    of them (listing layers or drawing filters feeds no images; commands that do ask :func:`image_input`)."""
    try:
        return image_input(model, input) if len(inputs) > 1 else 0
    except (OptionError, UnsupportedModel):
        if input is not None:
            raise
        ranks = [len(shape) for _, shape in inputs]
        return ranks.index(3) if 3 in ranks else 0


class _Reached(Exception):
    """Raised by the replay at the ``until`` layer, to stop there."""

    def __init__(self, output: Any) -> None:
        super().__init__("reached")
        self.output = output


def _walkable(layer: Any) -> bool:
    """Whether ``layer`` is a model whose graph of layers the replay walks (Functional or Sequential)."""
    keras = keras_module()
    return isinstance(layer, keras.Sequential) or (
        isinstance(layer, keras.Model) and hasattr(layer, "_run_through_graph") and hasattr(layer, "_nodes_by_depth")
    )


def _check_walkable(model: Any) -> None:
    """Refuse a subclassed model: its ``call`` is Python code with no graph of layers to replay."""
    if not _walkable(model):
        raise UnsupportedModel(
            f"model '{model.name}' is a subclassed {type(model).__name__}, whose layers cannot be reached from its "
            "input; rebuild it as a Functional or Sequential model"
        )


def _replay(model: Any, x: Any, prefix: str, result: Trace, convs: tuple[type, ...], until: str | None = None) -> Any:
    keras = keras_module()

    def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        path = prefix + layer.name
        if _walkable(layer):
            # Only the inputs carry over into an inlined model: its own call kwargs (training=False) are
            # superseded by the extractor's inference-mode call.
            return _replay(layer, args[0], path + SEPARATOR, result, convs, until)
        inner = [] if isinstance(layer, convs) or _walkable(layer) else inner_layers(layer, path + SEPARATOR, convs)
        if inner:
            out = _call_opened(layer, path, inner, args, kwargs, result, until)
        else:
            out = _in_precision(layer, path, result, isinstance(layer, convs), args, kwargs)
        if path not in result.layers:
            result.layers[path] = layer
            result.outputs[path] = out
            result.inputs[path] = args[0] if args else None
            if isinstance(layer, convs):
                result.convs.append(_describe(path, layer, out))
            if path == result.nudged:
                result.nudge = keras.Input(shape=tuple(out.shape[1:]), name="cnnviz_nudge")
                out = _nudged(out, result.nudge)
        if path == until:
            raise _Reached(out)
        return out

    if isinstance(model, keras.Sequential):
        for layer in model.layers:
            x = call(layer, x)
        return x
    _check_walkable(model)
    # Keras's own graph walker, with every operation routed through ``call``. It is private API, used through its
    # oldest form (operation_fn only), which every Keras 3 release has. A model of several inputs takes them all.
    given = list(x.values()) if isinstance(x, dict) else list(x) if isinstance(x, (list, tuple)) else [x]
    return model._run_through_graph(given, operation_fn=lambda op: functools.partial(call, op))


def _call_opened(
    layer: Any, path: str, inner: list[Inner], args: tuple[Any, ...], kwargs: Any, result: Trace, until: str | None
) -> Any:
    """Call a layer that holds convolutions, transformer blocks or attention in its own ``call`` through
    :func:`cnnviz.models.inner.opened`, and enter what it records in the trace under the sublayers' paths."""
    keras = keras_module()
    seen_maps = [conv.output_shape[:2] for conv in result.convs if len(conv.output_shape) == 3]

    def grid(tokens: int, local: list[tuple[int, int]]) -> Grid | None:
        return token_grid(tokens, [(int(r), int(c)) for r, c in [*seen_maps, *local] if r and c])

    opener = opened(layer, inner, grid)
    out, recorded = opener(*args, **kwargs)
    if result.nudged is not None and (result.nudged, MAPS) in opener.keys:
        shape = recorded[opener.keys.index((result.nudged, MAPS))].shape[1:]
        result.nudge = keras.Input(shape=tuple(shape), name="cnnviz_nudge")
        opener = opened(layer, inner, grid, result.nudged)
        out, recorded = opener(*args, cnnviz_nudge=result.nudge, **kwargs)
    if result.precision != "float32":
        note = f"layer '{path}' ({type(layer).__name__}) runs as it is: it calls its layers in its own code"
        result.notes.append(note)
    by_path = {one.path: one for one in inner}
    for (inner_path, role), tensor in zip(opener.keys, recorded, strict=True):
        sub = by_path[inner_path].layer
        result.layers.setdefault(inner_path, sub)
        if role == SCORES:
            result.attention.setdefault(inner_path, tensor)
            result.grids.setdefault(inner_path, grid(int(tensor.shape[-1]), []) or Grid(0, 0, 0))
        elif role == INPUT:
            result.inputs.setdefault(inner_path, tensor)
        elif inner_path not in result.outputs:
            result.outputs[inner_path] = tensor
            if by_path[inner_path].role == "conv":
                result.convs.append(_describe(inner_path, sub, tensor))
            else:
                result.convs.append(_describe_tokens(inner_path, sub, tensor, opener.grids[inner_path], result))
        if inner_path == until and role == MAPS:
            raise _Reached(tensor)
    return out


def _describe_tokens(path: str, layer: Any, maps: Any, grid: Grid, result: Trace) -> ConvLayer:
    """A transformer block's entry among the trace's layers of maps: its tokens on the patch grid."""
    if grid.extra:
        said = "a transformer block's maps are its patch tokens"
        if not any(note.startswith(said) for note in result.notes):
            left = "the class token" if grid.extra == 1 else f"the {grid.extra} tokens before the patches"
            result.notes.append(f"{said} on their {grid.rows}x{grid.cols} grid; {left} is left out")
    return ConvLayer(
        path=path,
        layer=layer,
        kind=type(layer).__name__,
        kernel_size=(),
        output_shape=tuple(maps.shape[1:]),
        params=int(layer.count_params()),
        channels_first=False,
        tokens=grid.extra,
    )


@functools.cache
def _nudge_class() -> type:
    keras = keras_module()

    class Nudge(keras.layers.Layer):  # type: ignore[name-defined]
        """``maps + nudge``, in the maps' own precision (no cast of the maps on the way in)."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(autocast=False, **kwargs)

        def call(self, maps: Any, nudge: Any) -> Any:
            return maps + keras.ops.cast(nudge, maps.dtype)

    return Nudge


def _nudged(maps: Any, nudge: Any) -> Any:
    return _nudge_class()(name="cnnviz_nudged")(maps, nudge)


#: The 16-bit compute dtypes of Keras's policies.
HALVES = ("float16", "bfloat16")
#: The compute dtypes of layers that a replay runs in its precision; others (integer lookups) run as they are.
FLOATS = (*HALVES, "float32", "float64")
#: The policy of the layers' twins in bfloat16: float32 weights, bfloat16 arithmetic.
BFLOAT16_POLICY = "mixed_bfloat16"


def _in_precision(layer: Any, path: str, result: Trace, conv: bool, args: tuple[Any, ...], kwargs: Any) -> Any:
    """Call ``layer`` in the replay's precision: in float32 (the layers up to the first conv of a bfloat16 replay
    too: see :func:`trace`), or as its bfloat16 twin (:data:`BFLOAT16_POLICY`).

    A layer whose own policy computes in float16 or bfloat16 on float32 weights (a model trained with
    ``mixed_float16``) runs as a float32 twin in float32: a CPU computes float16 more slowly than float32 (VGG16's
    first four convs: 0.83 s against 0.56 s) and to three digits, and a run that says float32 computes in it. A
    layer whose weights are themselves stored in 16 bits, or that a twin would not hold all of the weights of (a
    layer keeping them in sublayers), runs as it is, with a note. A bare operation of ``keras.ops`` in the graph
    (ConvNeXt's residual ``x + y``) has no policy of its own: it computes in the dtype of what it is given."""
    keras = keras_module()
    if not isinstance(layer, keras.layers.Layer) or layer.compute_dtype not in FLOATS:
        return layer(*args, **kwargs)  # an operation, or a layer of integers or strings (a lookup)
    policy = BFLOAT16_POLICY if result.precision == "bfloat16" and result.convs else "float32"
    if policy == "float32" and layer.compute_dtype == "float32":
        return _run_twin(layer, *args, **kwargs) if conv else layer(*args, **kwargs)
    if policy == "float32" and layer.variable_dtype != "float32":  # no policy computes float32 on 16-bit weights
        said = f"the layers whose weights are stored in {layer.variable_dtype} run in {layer.compute_dtype}"
        if not any(note.startswith(said) for note in result.notes):
            result.notes.append(f"{said} (the first: '{path}'): cnnviz cannot make float32 twins of them")
        return layer(*args, **kwargs)
    if conv:
        return _run_twin(layer, *args, extra={"dtype": policy}, **kwargs)
    given = args[0]
    shapes = [tensor.shape for tensor in given] if isinstance(given, (list, tuple)) else given.shape
    try:
        with warnings.catch_warnings():  # a probe: Keras's warnings about building a custom layer speak to its author
            warnings.simplefilter("ignore")
            twin = layer_twin(layer, shapes, dtype=policy, name=f"{layer.name}_{policy}")
        shared = {id(weight) for weight in twin.weights} == {id(weight) for weight in layer.weights}
    except Exception:  # a layer that cannot be made again from its config: it runs as it is
        shared = False
    if shared:
        return twin(*args, **kwargs)
    wanted, kind = ("bfloat16" if policy == BFLOAT16_POLICY else policy), type(layer).__name__
    note = f"layer '{path}' ({kind}) runs in {layer.compute_dtype}: cnnviz cannot make a {wanted} twin of it"
    if note not in result.notes:
        result.notes.append(note)
    return layer(*args, **kwargs)


def _run_twin(layer: Any, x: Any, *args: Any, extra: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Call a conv layer, as a twin that computes the same numbers where the layer as it is would hit a kernel that
    fails on a CPU.

    - A ``channels_first`` layer runs as a ``channels_last`` twin between two transposes: TensorFlow's plain CPU
      kernels have no NCHW convolution (only some builds and CPUs run one through oneDNN), so a model written on a
      GPU in that layout would fail here.
    - A strided 1x1 convolution runs as every stride-th row and column followed by a 1x1 convolution of stride 1:
      the same products and sums. TensorFlow 2.21's oneDNN kernels (on by default on x86) corrupt the heap taking
      the input gradient of a strided 1x1 convolution on an even-sized map with few channels, which killed
      Grad-CAM on small models with strided shortcuts (``scripts/onednn_sweep.py`` finds the cases).

    The twin is the same layer class and configuration holding the original's own weight variables (see
    :func:`layer_twin`), so changes to the model's weights show in it. Other layers are called as they are, or
    as a twin with the ``extra`` configuration changes where given (``dtype``).
    """
    ops = keras_module().ops
    channels_first = getattr(layer, "data_format", None) == "channels_first"
    strides = _pointwise_strides(layer)
    if not channels_first and strides is None:
        if extra:
            return layer_twin(layer, x.shape, **extra, name=f"{layer.name}_twin")(x, *args, **kwargs)
        return layer(x, *args, **kwargs)
    moved = ops.moveaxis(x, 1, -1) if channels_first else x
    changes: dict[str, Any] = {**(extra or {}), "data_format": "channels_last", "name": f"{layer.name}_twin"}
    if strides is not None:
        moved = moved[(slice(None), *(slice(None, None, step) for step in strides), slice(None))]
        changes["strides"] = (1,) * len(strides)
    out = layer_twin(layer, moved.shape, **changes)(moved, *args, **kwargs)
    return ops.moveaxis(out, -1, 1) if channels_first else out


def _pointwise_strides(layer: Any) -> tuple[int, ...] | None:
    """A plain convolution's strides when its kernel is 1 everywhere and some stride is above 1, else None."""
    layers = keras_module().layers
    if not isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D)):
        return None
    strides = tuple(int(step) for step in layer.strides)
    if any(int(size) != 1 for size in layer.kernel_size) or all(step == 1 for step in strides):
        return None
    return strides


def layer_twin(layer: Any, input_shape: Any, **changes: Any) -> Any:
    """A copy of ``layer`` with some configuration ``changes`` (``activation="linear"``) that holds the original's
    own weight variables, built for ``input_shape``: it computes with the same weights, and later changes to them
    show in it. Without a ``dtype`` change, the twin of a layer that computes in 16 bits on float32 weights
    (``mixed_float16``, ``mixed_bfloat16``) computes in float32, as :func:`_in_precision` runs such layers in a
    float32 replay (the linear twins of Grad-CAM's head and of maximize's layer)."""
    keras = keras_module()
    mixed = getattr(layer, "compute_dtype", None) in HALVES and getattr(layer, "variable_dtype", None) == "float32"
    if "dtype" not in changes and mixed:
        changes["dtype"] = "float32"
    twin = type(layer).from_config({**layer.get_config(), **changes})
    twin.build(input_shape)
    originals: dict[int, Any] = {}
    for name, variable in list(vars(twin).items()):
        original = getattr(layer, name, None)
        if isinstance(variable, keras.Variable) and isinstance(original, keras.Variable):
            # Past Keras's tracking, which locks a built layer: the twin is never saved or trained.
            object.__setattr__(twin, name, original)
            originals[id(variable)] = original
    # The twin's variable lists name the originals too: a model holding the twin lists them among its variables,
    # which is what JAX's compiled calls take as arguments (a variable not listed would be baked in as a constant,
    # and later changes to the weights would not show).
    for listing in ("_trainable_variables", "_non_trainable_variables"):
        held = getattr(twin, listing, None)
        if isinstance(held, list):
            held[:] = [originals.get(id(variable), variable) for variable in held]
    return twin


def _describe(path: str, layer: Any, out: Any) -> ConvLayer:
    channels_first = getattr(layer, "data_format", "channels_last") == "channels_first"
    shape = tuple(out.shape[1:])
    if channels_first:
        shape = (*shape[1:], shape[0])
    return ConvLayer(
        path=path,
        layer=layer,
        kind=type(layer).__name__,
        kernel_size=tuple(layer.kernel_size),
        output_shape=shape,
        params=int(layer.count_params()),
        channels_first=channels_first,
    )


def conv_layers(model: Any) -> list[ConvLayer]:
    """List the convolution layers of a model in execution order, nested models included.

    For VGG16 the first two paths are ``block1_conv1`` and ``block1_conv2``; for VGG16 nested in a Sequential,
    ``vgg16/block1_conv1`` and ``vgg16/block1_conv2``.
    """
    return trace(model).convs
