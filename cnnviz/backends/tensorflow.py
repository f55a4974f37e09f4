"""Gradients and compiled steps on TensorFlow: ``tf.GradientTape`` and ``tf.function`` (see :mod:`cnnviz.backends`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from cnnviz.backends import parse_capability


def _as_tuple(outputs: Any) -> tuple[Any, ...]:
    return tuple(outputs) if isinstance(outputs, (list, tuple)) else (outputs,)


def pullback(function: Callable[[Any], Any], x: np.ndarray) -> tuple[list[np.ndarray], Callable[..., np.ndarray]]:
    given = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(given)
        outputs = _as_tuple(function(given))

    def backward(cotangents: Sequence[np.ndarray | None]) -> np.ndarray:
        pairs = [(out, tf.constant(c, out.dtype)) for out, c in zip(outputs, cotangents, strict=True) if c is not None]
        grad = tape.gradient([out for out, _ in pairs], given, output_gradients=[c for _, c in pairs])
        return np.zeros_like(x) if grad is None else np.asarray(grad, dtype=np.float32)

    return [np.asarray(out, dtype=np.float32) for out in outputs], backward


def gradient(function: Callable[..., Any]) -> Callable[..., Any]:
    def grad(x: Any, *rest: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = function(x, *rest)
        return tape.gradient(value, x)

    return grad


def gradient_with(function: Callable[..., Any]) -> Callable[..., Any]:
    def grad(x: Any, *rest: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(x)
            value, aux = function(x, *rest)
        return aux, tape.gradient(value, x)

    return grad


def compiled(function: Callable[..., Any], variables: Sequence[Any]) -> Callable[..., Any]:
    # Not XLA: on CPUs TensorFlow's own kernels (oneDNN) ran VGG16's maximize step faster (bench/bench_maximize.py:
    # 1.33x the bare loop's time with jit_compile=True), and the image transform has no XLA kernel. Variables are
    # read at each call by tf.function itself.
    return tf.function(function, reduce_retracing=True)


def gpu_capability() -> tuple[int, int] | None:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    return parse_capability(tf.config.experimental.get_device_details(gpus[0]).get("compute_capability"))
