"""Receptive fields: the box of input pixels that can influence one position of a layer's maps.

Computed from the graph of cnnviz's replay (:mod:`cnnviz.models.graph`), so nested models count as their layers
inlined. Per spatial axis a field is three numbers (:class:`Axis`): where the first output position's field starts
in the input, how far the field moves per output position (the product of the strides so far), and its width.
Convolutions (plain, depthwise, separable) and pooling widen it by ``(kernel - 1) * dilation`` steps and multiply
the step by their stride, starting ``left padding`` steps earlier; layers that keep positions (batch norm,
activations, dropout, rescaling) keep it; additions and concatenations take the union of their inputs' fields;
zero padding and cropping shift it. Where a layer's effect on positions is not known here (a transposed
convolution, resizing, a channels_first layout, custom layers), :func:`receptive_field` says so by raising
:class:`UnknownField`, and the caller falls back to the support of the gradient (:mod:`cnnviz.methods.top`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cnnviz._keras import keras_module


class UnknownField(Exception):
    """The receptive field cannot be computed from the graph: ``layer`` names what stands in the way."""

    def __init__(self, layer: str) -> None:
        super().__init__(layer)
        self.layer = layer


@dataclass(frozen=True)
class Axis:
    """A field along one spatial axis: output position ``i`` sees input pixels ``[start + i * jump,
    start + i * jump + size)`` (before clipping to the image)."""

    start: int
    jump: int
    size: int

    def span(self, index: int, length: int) -> tuple[int, int]:
        """The input pixels ``[first, end)`` position ``index`` sees, clipped to ``0..length``."""
        first = self.start + index * self.jump
        return max(first, 0), min(first + self.size, length)


_IDENTITY = Axis(0, 1, 1)


@dataclass(frozen=True)
class Field:
    """The receptive field of a layer's positions: one :class:`Axis` per spatial axis (rows, cols)."""

    axes: tuple[Axis, ...]

    def box(self, position: Sequence[int], input_size: Sequence[int]) -> tuple[int, int, int, int]:
        """``[top, left, bottom, right]`` (end exclusive) of the input pixels that position ``(row, col)`` sees,
        clipped to an input of ``(rows, cols)``."""
        (top, bottom), (left, right) = (
            axis.span(index, length) for axis, index, length in zip(self.axes, position, input_size, strict=True)
        )
        return top, left, bottom, right


def receptive_field(traced: Any, path: str) -> Field:
    """The receptive field of the layer at ``path`` of a :class:`cnnviz.models.graph.Trace` with 2-D maps,
    channels last, at the traced input size.

    Raises:
        UnknownField: a layer on the way changes positions in a way not known here.
    """
    memo: dict[int, tuple[Axis, ...] | None] = {}
    field = _field_of(traced.outputs[path], traced.input, memo)
    if field is None:
        raise UnknownField(f"{path} (it does not compute from the image input)")
    return Field(field)


def _field_of(tensor: Any, origin: Any, memo: dict[int, tuple[Axis, ...] | None]) -> tuple[Axis, ...] | None:
    """The field of ``tensor`` in ``origin``'s pixels; None for a tensor computed from the model's other inputs
    alone (a metadata vector), which adds no pixels."""
    if tensor is origin:
        return (_IDENTITY, _IDENTITY)
    if id(tensor) in memo:
        return memo[id(tensor)]
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        raise UnknownField(str(tensor))
    operation = history.operation
    node = operation._inbound_nodes[history.node_index]
    if not node.input_tensors:  # another of the model's inputs
        memo[id(tensor)] = None
        return None
    inputs = [_field_of(source, origin, memo) for source in node.input_tensors]
    known = [field for field in inputs if field is not None]
    field: tuple[Axis, ...] | None = None
    if len(known) == len(inputs):
        field = _through(operation, node, known)
    elif known:  # the image's maps merged with what came from other inputs alone: only the image adds pixels
        if type(operation).__name__ not in _MERGES:
            raise UnknownField(str(getattr(operation, "name", type(operation).__name__)))
        field = _union(known, str(getattr(operation, "name", "")))
    memo[id(tensor)] = field
    return field


#: Layers whose output position (row, col) depends on the same input position alone.
_POSITIONAL = (
    "Activation",
    "BatchNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "Dropout",
    "SpatialDropout2D",
    "GaussianNoise",
    "GaussianDropout",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "Softmax",
    "Rescaling",
    "Normalization",
    "Identity",
    "RandomFlip",  # inference mode: the identity
    "RandomRotation",
    "RandomZoom",
    "RandomTranslation",
    "RandomContrast",
    "RandomBrightness",
)
_MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")


def _through(operation: Any, node: Any, inputs: list[tuple[Axis, ...]]) -> tuple[Axis, ...]:
    """The field of ``operation``'s output from its inputs' fields."""
    kind = type(operation).__name__
    name = getattr(operation, "name", kind)
    layers = keras_module().layers
    if getattr(operation, "data_format", "channels_last") == "channels_first":
        raise UnknownField(name)
    if kind in _POSITIONAL:
        return inputs[0]
    if kind in _MERGES:
        return _union(inputs, name)
    if isinstance(operation, (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D)) and not isinstance(
        operation, layers.Conv2DTranspose
    ):
        size = _spatial(node.input_tensors[0].shape, name)
        dilation = tuple(operation.dilation_rate)
        return _window(inputs[0], operation.kernel_size, operation.strides, dilation, operation.padding, size)
    if isinstance(operation, (layers.MaxPooling2D, layers.AveragePooling2D)):
        size = _spatial(node.input_tensors[0].shape, name)
        return _window(inputs[0], operation.pool_size, operation.strides, (1, 1), operation.padding, size)
    if isinstance(operation, layers.ZeroPadding2D):
        (top, _), (left, _) = operation.padding
        return tuple(_shift(axis, -pad) for axis, pad in zip(inputs[0], (top, left), strict=True))
    if isinstance(operation, layers.Cropping2D):
        (top, _), (left, _) = operation.cropping
        return tuple(_shift(axis, crop) for axis, crop in zip(inputs[0], (top, left), strict=True))
    if kind == "GetItem":  # the replay's twin of a strided 1x1 convolution: x[:, ::s, ::s, :]
        return _sliced(inputs[0], node, name)
    raise UnknownField(name)


def _spatial(shape: Sequence[int | None], name: str) -> tuple[int, int]:
    rows, cols = shape[1], shape[2]
    if rows is None or cols is None:
        raise UnknownField(f"{name} (free input size: trace the model at the image's size)")
    return int(rows), int(cols)


def _window(
    field: tuple[Axis, ...],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilation: Sequence[int],
    padding: str,
    size: tuple[int, int],
) -> tuple[Axis, ...]:
    """A sliding window's field: kernel, stride, dilation and TensorFlow's padding (``same`` pads
    ``max((ceil(n / s) - 1) * s + k - n, 0)`` in all, the smaller half before)."""
    axes = []
    for axis, k, s, d, n in zip(field, kernel, strides, dilation, size, strict=True):
        extent = d * (k - 1) + 1
        before = 0
        if padding == "same":
            before = max((math.ceil(n / s) - 1) * s + extent - n, 0) // 2
        elif padding != "valid":
            raise UnknownField(f"padding '{padding}'")
        axes.append(Axis(axis.start - before * axis.jump, axis.jump * s, axis.size + (extent - 1) * axis.jump))
    return tuple(axes)


def _shift(axis: Axis, steps: int) -> Axis:
    return Axis(axis.start + steps * axis.jump, axis.jump, axis.size)


def _union(fields: list[tuple[Axis, ...]], name: str) -> tuple[Axis, ...]:
    """The fields of merged inputs, one per position: the smallest field holding them all (the same step needed)."""
    axes = []
    for per_input in zip(*fields, strict=True):
        if len({axis.jump for axis in per_input}) != 1:
            raise UnknownField(f"{name} (its inputs step differently)")
        start = min(axis.start for axis in per_input)
        end = max(axis.start + axis.size for axis in per_input)
        axes.append(Axis(start, per_input[0].jump, end - start))
    return tuple(axes)


def _sliced(field: tuple[Axis, ...], node: Any, name: str) -> tuple[Axis, ...]:
    """``x[:, ::s, ::t, :]``: every s-th row and t-th column, from the first."""
    key = node.arguments.args[1] if len(node.arguments.args) > 1 else None
    if not isinstance(key, tuple) or len(key) != 4:
        raise UnknownField(name)
    steps = []
    for part in key[1:3]:
        if not isinstance(part, slice) or part.start not in (None, 0) or part.stop is not None:
            raise UnknownField(name)
        steps.append(part.step or 1)
    return tuple(Axis(axis.start, axis.jump * step, axis.size) for axis, step in zip(field, steps, strict=True))
