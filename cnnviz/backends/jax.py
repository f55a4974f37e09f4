"""Gradients and compiled steps on JAX: ``jax.vjp``, ``jax.grad`` and ``jax.jit`` (see :mod:`cnnviz.backends`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cnnviz._keras import keras_module
from cnnviz.backends import parse_capability


def _as_tuple(outputs: Any) -> tuple[Any, ...]:
    return tuple(outputs) if isinstance(outputs, (list, tuple)) else (outputs,)


def pullback(function: Callable[[Any], Any], x: np.ndarray) -> tuple[list[np.ndarray], Callable[..., np.ndarray]]:
    outputs, vjp = jax.vjp(lambda given: _as_tuple(function(given)), jnp.asarray(x))

    def backward(cotangents: Sequence[np.ndarray | None]) -> np.ndarray:
        full = tuple(
            jnp.zeros_like(out) if c is None else jnp.asarray(c, out.dtype)
            for out, c in zip(outputs, cotangents, strict=True)
        )
        return np.asarray(vjp(full)[0], dtype=np.float32)

    return [np.asarray(out, dtype=np.float32) for out in outputs], backward


def gradient(function: Callable[..., Any]) -> Callable[..., Any]:
    return jax.grad(function)


def gradient_with(function: Callable[..., Any]) -> Callable[..., Any]:
    grad = jax.grad(function, has_aux=True)

    def both(x: Any, *rest: Any) -> Any:
        gradient, aux = grad(x, *rest)
        return aux, gradient

    return both


def compiled(function: Callable[..., Any], variables: Sequence[Any]) -> Callable[..., Any]:
    # The variables go in as arguments, mapped onto the Keras variables inside (as Keras's stateless_call does):
    # closed over, their values would be baked into the compiled code as constants, slow to compile and stale
    # after the weights change.
    keras = keras_module()

    def stateless(values: list[Any], *args: Any) -> Any:
        with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
            return function(*args)

    jitted = jax.jit(stateless)
    return lambda *args: jitted([variable.value for variable in variables], *args)


def gpu_capability() -> tuple[int, int] | None:
    gpus = [device for device in jax.devices() if device.platform == "gpu"]
    if not gpus:
        return None
    return parse_capability(getattr(gpus[0], "compute_capability", None))
