"""How a layer's units connect to the units around them, read from the weights: the input channels a unit weighs
most, the units of the next layer that weigh it most, and the classes a unit feeding a classifier head raises most.

Weights say how strongly a unit reads another only where the two layers are joined directly (through
element-wise layers: batch norm, activations); :func:`feeding` finds the layer whose channels a conv layer reads by
walking its input back through such layers, and says nothing where the way is not that simple (a concatenation,
an addition of branches).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnviz._keras import keras_module
from cnnviz.models.graph import ConvLayer, Trace

#: How many linked units or classes a unit's page lists.
LINKS = 6
#: Layers that pass a unit's channel on as it is, place by place (nothing mixes channels).
_ELEMENTWISE = (
    "Activation",
    "BatchNormalization",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "Dropout",
    "SpatialDropout2D",
    "ZeroPadding2D",
    "MaxPooling2D",
    "AveragePooling2D",
    "LayerNormalization",
)
_POOLS = ("GlobalAveragePooling2D", "GlobalMaxPooling2D")


@dataclass(frozen=True)
class Link:
    """A unit (or a class) and the weight that joins it, as a unit's page lists it."""

    layer: str
    unit: int
    weight: float


def _producer(traced: Trace, tensor: Any) -> str | None:
    return next((path for path, out in traced.outputs.items() if out is tensor), None)


def _walk_back(traced: Trace, path: str) -> str | None:
    """The layer whose output reaches ``path``'s input through element-wise layers only (None where another kind of
    layer, or several inputs, come between)."""
    seen = 0
    current = _producer(traced, traced.inputs.get(path))
    while current is not None and seen < 64:
        kind = type(traced.layers[current]).__name__
        if kind not in _ELEMENTWISE:
            return current
        current = _producer(traced, traced.inputs.get(current))
        seen += 1
    return None


def feeding(traced: Trace, conv: ConvLayer) -> str | None:
    """The conv layer whose channels ``conv`` reads directly (:func:`_walk_back`), or None."""
    found = _walk_back(traced, conv.path)
    paths = {layer.path for layer in traced.convs}
    return found if found in paths else None


def _kernel(conv: ConvLayer) -> np.ndarray | None:
    """A plain convolution's kernel as ``(..., in, out)``; None for other kinds (depthwise, separable, blocks)."""
    keras = keras_module()
    if type(conv.layer) not in (keras.layers.Conv2D, keras.layers.Conv1D) or getattr(conv.layer, "groups", 1) != 1:
        return None
    return np.asarray(conv.layer.kernel.numpy() if hasattr(conv.layer.kernel, "numpy") else conv.layer.kernel)


def strongest_inputs(traced: Trace, conv: ConvLayer, unit: int) -> tuple[list[Link], str]:
    """The input channels unit ``unit`` of ``conv`` weighs most (the sum of |weights| over its kernel's positions),
    as units of the layer that feeds it, and how they were found; none where the kernel or the way is not plain."""
    kernel = _kernel(conv)
    source = feeding(traced, conv)
    if kernel is None or source is None:
        return [], "not computed: the layer is not a plain convolution fed directly by another conv layer"
    strength = np.abs(kernel[..., unit]).reshape(-1, kernel.shape[-2]).sum(axis=0)
    top = np.argsort(-strength, kind="stable")[:LINKS]
    return [Link(source, int(i), float(strength[i])) for i in top], "the sum of |weights| over the kernel's positions"


def strongest_readers(traced: Trace, conv: ConvLayer, unit: int) -> tuple[list[Link], str]:
    """The units of the conv layers fed directly by ``conv`` (:func:`feeding`) that weigh unit ``unit`` most."""
    found: list[Link] = []
    for reader in traced.convs:
        kernel = _kernel(reader)
        if kernel is None or feeding(traced, reader) != conv.path:
            continue
        strength = np.abs(kernel[..., unit, :]).reshape(-1, kernel.shape[-1]).sum(axis=0)
        found.extend(Link(reader.path, int(i), float(strength[i])) for i in range(len(strength)))
    if not found:
        return [], "not computed: no plain convolution reads this layer directly"
    found.sort(key=lambda link: (-link.weight, link.layer, link.unit))
    return found[:LINKS], "the sum of |weights| from this unit over the reading kernel's positions"


def head_classes(traced: Trace, conv: ConvLayer, unit: int) -> tuple[list[Link], str]:
    """The classes a unit raises most where its layer feeds a classifier head through a global pooling and one
    Dense layer (the pooled value of the unit, times the Dense layer's weight to each class); none otherwise."""
    keras = keras_module()
    for path, layer in traced.layers.items():
        if not isinstance(layer, keras.layers.Dense):
            continue
        pooled = _walk_back(traced, path)
        if (
            pooled is None
            or type(traced.layers[pooled]).__name__ not in _POOLS
            or _walk_back(traced, pooled) != conv.path
        ):
            continue
        weights = np.asarray(layer.kernel.numpy() if hasattr(layer.kernel, "numpy") else layer.kernel)[unit]
        top = np.argsort(-weights, kind="stable")[:LINKS]
        how = f"the weight of layer '{path}' from this unit's globally pooled value to each class"
        return [Link(path, int(i), float(weights[i])) for i in top], how
    return [], "not computed: this layer does not feed a Dense head through a global pooling"
