"""The few things Keras's backends each do their own way, in one small module per backend.

Everything else cnnviz computes is written once, in ``keras.ops``. What the backends do not share is how a gradient
is taken and how a step is compiled (TensorFlow: ``tf.GradientTape`` and ``tf.function``; JAX: ``jax.vjp``,
``jax.grad`` and ``jax.jit``), and what its devices are, so each backend module has the same five functions:

- :func:`pullback`: run a function once, eagerly, and return its outputs (as numpy arrays) with a function that
  maps cotangents of those outputs to the gradient with respect to the input. Grad-CAM picks its classes from the
  scores of the same forward pass, then pulls back a one-hot cotangent: one forward pass and one backward pass.
- :func:`gradient`: a function's gradient with respect to its first argument, as a function usable inside a
  compiled step; :func:`gradient_with` the same for a function that also returns what it computed on the way.
- :func:`compiled`: a step function compiled for repeated calls, reading the Keras ``variables`` it uses as they
  are at each call (JAX passes them in as arguments, so that they are not baked into the compiled code).
- :func:`gpu_capability`: the CUDA compute capability of the GPU the backend computes on, if any (``--precision
  auto`` asks whether it computes bfloat16 natively).

The backend is Keras's own (``KERAS_BACKEND``, ``~/.keras/keras.json``, or ``cnnviz --backend``). A PyTorch module
would be the same four functions over ``torch.autograd`` and ``torch.cuda`` (about 50 lines); it is not here
because PyPI's torch wheel brings CUDA's libraries (gigabytes), more than CI's fresh virtualenv can install in its
time, and code no test runs is not claimed to work.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from cnnviz._keras import keras_module

#: Keras's backend names, and the module of each here.
MODULES = {"tensorflow": "cnnviz.backends.tensorflow", "jax": "cnnviz.backends.jax"}

#: What a pullback's second half does: cotangents of the outputs (None: zero) -> the gradient for the input.
Backward = Callable[[Sequence[np.ndarray | None]], np.ndarray]


def name() -> str:
    """The name of the backend Keras runs on: ``tensorflow`` or ``jax`` (the others are refused on import)."""
    return str(keras_module().backend.backend())


def _module() -> ModuleType:
    return importlib.import_module(MODULES[name()])


def pullback(function: Callable[[Any], Any], x: np.ndarray) -> tuple[list[np.ndarray], Backward]:
    """Run ``function`` (a tensor, or a tuple or list of them) on ``x`` once; return its outputs as float32 numpy
    arrays and a function that maps cotangents of those outputs (one per output, None for zero) to the
    gradient of their weighted sum with respect to ``x``, as a float32 numpy array."""
    return _module().pullback(function, np.asarray(x, dtype=np.float32))


def gradient(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function(x, *rest)`` (a scalar) -> a function of the same arguments giving its gradient with respect to
    ``x``; for use inside :func:`compiled` steps."""
    return _module().gradient(function)


def gradient_with(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function(x, *rest)`` returning (a scalar, anything else) -> a function of the same arguments giving
    (the anything else, the scalar's gradient with respect to ``x``), from one forward pass; for use inside
    :func:`compiled` steps."""
    return _module().gradient_with(function)


def compiled(function: Callable[..., Any], variables: Sequence[Any]) -> Callable[..., Any]:
    """``function`` compiled for repeated calls with arguments of the same shapes; it reads the Keras
    ``variables`` it uses (a model's, a layer's) as they are at each call."""
    return _module().compiled(function, list(variables))


def gpu_capability() -> tuple[int, int] | None:
    """The CUDA compute capability, (major, minor), of the first GPU the backend computes on; None where it has no
    GPU, and (0, 0) for a GPU that does not say (not CUDA's)."""
    return _module().gpu_capability()


def parse_capability(value: object) -> tuple[int, int]:
    """A compute capability as TensorFlow (``(8, 0)``) or JAX (``"8.0"``) gives it, as (major, minor); (0, 0)
    where there is none.

    >>> parse_capability((8, 6)), parse_capability("9.0"), parse_capability(None)
    ((8, 6), (9, 0), (0, 0))
    """
    parts = value.split(".") if isinstance(value, str) else value
    if not isinstance(parts, (list, tuple)) or len(parts) != 2:
        return (0, 0)
    try:
        return (int(parts[0]), int(parts[1]))
    except (TypeError, ValueError):
        return (0, 0)
