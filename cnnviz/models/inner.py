"""Layers reached inside other layers' ``call``: the convolutions of KerasHub's blocks, a Vision Transformer's
blocks and their attention.

A layer that calls its sublayers in its own Python ``call`` (KerasHub's ``InvertedResidualBlock``, ``ViTEncoder``,
a subclassed model nested in a functional one) is one node of the model's graph: its sublayers' outputs are not
tensors of the graph, so no extractor can be built from them. The replay (:mod:`cnnviz.models.graph`) calls such a
layer through :class:`Opened`, a layer that runs it with its sublayers' ``call`` wrapped for the length of the call,
records what the wrapped calls compute, and returns it beside the layer's own output. The recorded tensors are
outputs of a node of the graph like any other, so every method reads them, on every backend, and a nudge (the
gradient's handle, :func:`cnnviz.models.graph.trace`) can be added where the layer computes them.

What it costs: nothing at run time (the recorded tensors are computed anyway, and a model built on some of them
computes nothing more), and one symbolic call more of an opened layer when a nudge goes inside it.

What is recorded, under the outer layer's path and the names of the sublayers between (``block_1_0/block_1_0_conv1``):

- a convolution's output and its input;
- a transformer block's output (a layer holding a ``MultiHeadAttention`` of its own), as maps on the patch grid:
  ``(batch, tokens, channels)`` reshaped to ``(batch, rows, cols, channels)``, the leading tokens beyond the grid
  (the class token) left out;
- each ``MultiHeadAttention``'s attention scores ``(batch, heads, tokens, tokens)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cnnviz._keras import keras_module

#: What is recorded of a sublayer: its maps (a conv's output, a block's tokens on the grid), a conv's input, or
#: attention scores.
MAPS, INPUT, SCORES = "maps", "input", "scores"


@dataclass(frozen=True)
class Grid:
    """How a layer's tokens lie on the image: ``rows`` x ``cols`` patches after ``extra`` leading tokens."""

    rows: int
    cols: int
    extra: int


#: Where a block's tokens lie, from their count and the conv maps (rows, cols) seen so far in the call.
GridOf = Callable[[int, list[tuple[int, int]]], "Grid | None"]


@dataclass(frozen=True)
class Inner:
    """A sublayer reached inside an opened layer's ``call``: its path, the layer, and its role (``conv``, ``tokens``
    or ``attention``)."""

    path: str
    layer: Any
    role: str


def inner_layers(layer: Any, prefix: str, convs: tuple[type, ...]) -> list[Inner]:
    """The sublayers of ``layer`` (at any depth) that an opened call records, in the order they are held."""
    attention = keras_module().layers.MultiHeadAttention
    found = []
    for sub, path in _descendants(layer, prefix):
        if isinstance(sub, convs):
            found.append(Inner(path, sub, "conv"))
        elif isinstance(sub, attention):
            found.append(Inner(path, sub, "attention"))
        elif any(isinstance(held, attention) for held in _sublayers(sub)):
            found.append(Inner(path, sub, "tokens"))
    return found


def _sublayers(layer: Any) -> list[Any]:
    return list(getattr(layer, "_layers", None) or [])


def _descendants(layer: Any, prefix: str) -> Iterator[tuple[Any, str]]:
    for sub in _sublayers(layer):
        path = prefix + sub.name
        yield sub, path
        yield from _descendants(sub, path + "/")


def token_grid(tokens: int, maps: list[tuple[int, int]]) -> Grid | None:
    """Where ``tokens`` lie on the image: the grid of the last of ``maps`` (2-D conv maps' rows and cols, the patch
    embedding's among them) that holds all of them but a few leading ones, else a square grid; None where neither
    fits.

    >>> token_grid(17, [(8, 8), (4, 4)])
    Grid(rows=4, cols=4, extra=1)
    >>> token_grid(50, []), token_grid(12, [])
    (Grid(rows=7, cols=7, extra=1), None)
    """
    for rows, cols in reversed(maps):
        if 0 <= tokens - rows * cols <= 2:
            return Grid(rows, cols, tokens - rows * cols)
    for extra in (0, 1, 2):
        side = math.isqrt(tokens - extra)
        if side > 1 and side * side == tokens - extra:
            return Grid(side, side, extra)
    return None


@functools.cache
def _opened_class() -> type:
    keras = keras_module()

    class Opened(keras.layers.Layer):  # type: ignore[name-defined]
        """A layer run with its sublayers' calls recorded (see the module). Returns ``(output, [recorded...])`` in
        the order of ``keys``, fixed by its first (symbolic) call."""

        def __init__(self, layer: Any, inner: list[Inner], grid: GridOf, nudged: str | None):
            super().__init__(name=layer.name, autocast=False)
            self.layer = layer
            self._inner = inner
            self._grid = grid
            self._nudged = nudged
            self.keys: list[tuple[str, str]] = []
            self.grids: dict[str, Grid] = {}

        def call(self, *args: Any, cnnviz_nudge: Any = None, **kwargs: Any) -> Any:
            seen: dict[tuple[str, str], Any] = {}
            originals = [(one.layer, one.layer.__dict__.get("call")) for one in self._inner]
            try:
                for one in self._inner:
                    wrapped = self._wrapped(one, one.layer.call, seen, cnnviz_nudge)
                    object.__setattr__(one.layer, "call", wrapped)
                out = self.layer(*args, **kwargs)
            finally:
                for sub, original in originals:
                    if original is None:
                        object.__delattr__(sub, "call")
                    else:
                        object.__setattr__(sub, "call", original)
            if not self.keys:
                self.keys = list(seen)
            missing = [path for path, role in self.keys if (path, role) not in seen]
            if missing:
                raise RuntimeError(f"layer '{self.layer.name}' did not call '{missing[0]}' again")
            return out, [seen[key] for key in self.keys]

        def _wrapped(self, one: Inner, call: Callable[..., Any], seen: dict[Any, Any], nudge: Any) -> Any:
            ops = keras.ops
            nudged = nudge is not None and one.path == self._nudged

            def wrapped(*args: Any, **kwargs: Any) -> Any:
                if one.role == "attention":
                    kwargs["return_attention_scores"] = True
                    out, scores = call(*args, **kwargs)
                    seen.setdefault((one.path, SCORES), scores)
                    return out
                out = call(*args, **kwargs)
                first = (one.path, MAPS) not in seen
                if one.role == "conv":
                    if first:
                        seen[(one.path, INPUT)] = args[0] if args else kwargs.get("inputs")
                        if nudged:
                            out = out + ops.cast(nudge, out.dtype)
                        seen[(one.path, MAPS)] = out
                    return out
                local = [tuple(value.shape[1:3]) for (_, role), value in seen.items() if role == MAPS]
                grid = self._grid(int(out.shape[1]), local) if len(out.shape) == 3 else None
                if not first or grid is None:
                    return out
                self.grids[one.path] = grid
                patches = out[:, grid.extra :]
                if nudged:
                    patches = patches + ops.reshape(ops.cast(nudge, out.dtype), ops.shape(patches))
                    out = ops.concatenate([out[:, : grid.extra], patches], axis=1) if grid.extra else patches
                seen[(one.path, MAPS)] = ops.reshape(patches, (-1, grid.rows, grid.cols, out.shape[-1]))
                return out

            return wrapped

    return Opened


def opened(layer: Any, inner: list[Inner], grid: GridOf, nudged: str | None = None) -> Any:
    """An :class:`Opened` call of ``layer`` recording ``inner`` (:func:`inner_layers`); ``grid`` tells where a
    block's tokens lie (:func:`token_grid`), and ``nudged`` is the path of the one whose maps take the nudge given
    as the call's ``cnnviz_nudge``."""
    return _opened_class()(layer, inner, grid, nudged)
