"""Cascading weight randomisation (Adebayo et al. 2018): a model's layers reset from the top down, then restored.

Each layer's learned weights (:func:`learned_weights`: frozen ones too, as in a transfer
learning model's base) are replaced by fresh ones drawn with NumPy from a seed, so the numbers are the same on every
backend: weights whose initializer is a constant (biases, a batch norm's scale, offset and statistics) get that
constant; the others are drawn from Glorot's uniform distribution for their shape (Keras's default kernel
initializer). The weights are changed in place, in the variables of the model :func:`cascade` is given, which every
replay of that model shares; it puts them back when it ends, however it ends. The evaluator gives it a copy of the
user's model (:func:`model_copy`), so a model that something else is using meanwhile (the explorer serving it, a
notebook) never sees a reset weight.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from cnnviz._keras import keras_module
from cnnviz.methods.target import TargetModel


def model_copy(model: Any) -> Any:
    """A copy of ``model``, its layers named as the original's, with weights of its own holding the same values;
    the model itself where Keras cannot copy it (a layer it cannot rebuild from its config)."""
    keras = keras_module()
    try:
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
    except Exception:  # noqa: BLE001 - a model Keras cannot rebuild is reset in place and restored, as before
        return model
    return copy


def fresh_value(initializer: Any, variable: Any, rng: np.random.Generator) -> np.ndarray:
    """A new value for a weight made by ``initializer`` (see the module)."""
    shape = tuple(int(size) for size in variable.shape)
    keras = keras_module()
    constant = (keras.initializers.Zeros, keras.initializers.Ones, keras.initializers.Constant)
    if isinstance(initializer, constant):
        return np.asarray(initializer(shape, dtype="float32"), dtype=np.float32)
    if len(shape) >= 2:
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    else:
        fan_in = fan_out = max(int(np.prod(shape)), 1)
    limit = float(np.sqrt(6.0 / (fan_in + fan_out)))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def learned_weights(layer: Any) -> list[tuple[Any, Any]]:
    """``layer``'s weights that it makes with an initializer (``kernel`` by ``kernel_initializer``, ...), each with
    that initializer."""
    found = []
    for weight in layer.weights:
        initializer = getattr(layer, f"{str(weight.name).split('/')[-1]}_initializer", None)
        if initializer is not None:
            found.append((weight, initializer))
    return found


def learned_layers(model: TargetModel) -> list[tuple[str, Any]]:
    """The model's layers with learned weights (weights their layer makes with an initializer: kernels, biases, a
    batch norm's scale, offset and statistics; frozen ones too), by path in the order the model calls them, nested
    models' layers in their place. A preprocessing layer's adapted constants are not learned."""
    keras = keras_module()
    return [
        (path, layer)
        for path, layer in model.traced().layers.items()
        if not isinstance(layer, keras.Model) and learned_weights(layer)
    ]


def cascade(model: TargetModel, seed: int) -> Generator[str, None, None]:
    """Reset ``model``'s layers from the top down, one more at each step, yielding each layer's path after it is
    reset; every weight is restored when the iteration ends or is abandoned (close the generator, or let it go)."""
    layers = learned_layers(model)[::-1]
    saved: list[tuple[Any, np.ndarray]] = []
    try:
        for step, (path, layer) in enumerate(layers):
            rng = np.random.default_rng([seed, step])
            for variable, initializer in learned_weights(layer):
                saved.append((variable, np.array(variable)))
                variable.assign(fresh_value(initializer, variable, rng).astype(saved[-1][1].dtype))
            yield path
    finally:
        for variable, value in reversed(saved):
            variable.assign(value)
