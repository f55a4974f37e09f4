"""Cascading weight randomisation (Adebayo et al. 2018): a model's layers reset from the top down, then restored.

Each layer's learned weights (:func:`learned_weights`: frozen ones too, as in a transfer
learning model's base) are replaced by fresh ones as the layer's own initializer makes them (:func:`fresh_value`),
drawn with NumPy from a seed, so the numbers are the same on every backend: a constant initializer (biases, a batch
norm's scale, offset and statistics: a fresh layer's) gives its constant, Keras's random ones (the variance-scaling
family: Glorot, He, LeCun; normal, uniform, truncated normal, orthogonal, identity) their distribution for the
weight's shape, and an initializer of another kind Glorot's uniform one (Keras's default for kernels).

The weights are changed in place, in the variables of the model :func:`cascade` is given, which every
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
    """A new value for a weight made by ``initializer``, as that initializer makes one (see the module): so a reset
    network passes signal as a freshly built one does, and not one drawn at another scale."""
    shape = tuple(int(size) for size in variable.shape)
    keras = keras_module()
    init = keras.initializers
    if isinstance(initializer, (init.Zeros, init.Ones, init.Constant)):
        return np.asarray(initializer(shape, dtype="float32"), dtype=np.float32)
    config = vars(initializer)  # Glorot's and He's configs leave out what they fix; their attributes hold it
    if isinstance(initializer, init.VarianceScaling):
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out}.get(config["mode"], (fan_in + fan_out) / 2.0)
        scale = config["scale"] / max(1.0, fan)
        if config["distribution"] == "uniform":
            limit = float(np.sqrt(3.0 * scale))
            return rng.uniform(-limit, limit, size=shape).astype(np.float32)
        if config["distribution"] == "truncated_normal":
            # the standard deviation of a unit normal cut at two standard deviations, as Keras divides by it
            return _truncated(rng, 0.0, float(np.sqrt(scale)) / 0.87962566103423978, shape)
        return (rng.standard_normal(shape) * np.sqrt(scale)).astype(np.float32)
    if isinstance(initializer, init.TruncatedNormal):
        return _truncated(rng, config["mean"], config["stddev"], shape)
    if isinstance(initializer, init.RandomNormal):
        return (config["mean"] + config["stddev"] * rng.standard_normal(shape)).astype(np.float32)
    if isinstance(initializer, init.RandomUniform):
        return rng.uniform(config["minval"], config["maxval"], size=shape).astype(np.float32)
    if isinstance(initializer, init.Orthogonal) and len(shape) >= 2:
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        flat = rng.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(flat)
        q = q * np.sign(np.diag(r))
        q = q.T if rows < cols else q
        return (config.get("gain", 1.0) * q.reshape(shape)).astype(np.float32)
    if isinstance(initializer, init.Identity) and len(shape) == 2:
        return (config.get("gain", 1.0) * np.eye(*shape)).astype(np.float32)
    fan_in, fan_out = _fans(shape)
    limit = float(np.sqrt(6.0 / (fan_in + fan_out)))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def _fans(shape: tuple[int, ...]) -> tuple[float, float]:
    """A weight's fan in and fan out, as Keras's initializers count them."""
    if len(shape) < 1:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


def _truncated(rng: np.random.Generator, mean: float, stddev: float, shape: tuple[int, ...]) -> np.ndarray:
    """Normal values cut at two standard deviations: those beyond are drawn again."""
    values = rng.standard_normal(shape)
    while True:
        outside = np.abs(values) > 2.0
        if not outside.any():
            return (mean + stddev * values).astype(np.float32)
        values[outside] = rng.standard_normal(int(outside.sum()))


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
