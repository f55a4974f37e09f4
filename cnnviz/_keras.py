"""Lazy, quiet import of Keras, on the backend the user chose.

TensorFlow prints start-up lines (oneDNN, CUDA probing, absl's "All log messages before InitializeLog") that are
noise to a command-line user, and importing it takes seconds, so cnnviz imports it only inside the functions that
need it, through :func:`keras_module`. Keras picks its backend when it is first imported: ``KERAS_BACKEND``, else
``~/.keras/keras.json``, else TensorFlow; ``cnnviz --backend`` sets ``KERAS_BACKEND`` before that.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null: TensorFlow's C++ logging writes there directly, and recent
    releases log through absl before TF_CPP_MIN_LOG_LEVEL takes effect."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextmanager
def interrupt_after() -> Iterator[None]:
    """Hold a Ctrl-C that comes during the block and raise it when the block is done. TensorFlow's import code
    catches the KeyboardInterrupt of a Ctrl-C pressed at some moments of its import and goes on, so a command
    interrupted in its first seconds ran on as if nothing were pressed. Only the main thread may set a signal
    handler, and a handler of the caller's own is left alone: then the block runs as it is."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    pressed: list[int] = []
    signal.signal(signal.SIGINT, lambda number, frame: pressed.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt


def keras_module() -> ModuleType:
    """Import and return ``keras`` without TensorFlow's start-up log lines.

    A user's own ``TF_CPP_MIN_LOG_LEVEL`` or ``KERAS_BACKEND`` is respected; ``CNNVIZ_TF_LOGS=1`` keeps
    TensorFlow's start-up output, for debugging an installation.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    check_backend_installed(*_backend_and_source())
    with warnings.catch_warnings():
        # Deprecation chatter from TensorFlow's own dependencies at import time.
        warnings.simplefilter("ignore")
        if os.environ.get("CNNVIZ_TF_LOGS") == "1":
            with interrupt_after():
                import keras
        else:
            with native_stderr_silenced(), interrupt_after():
                import keras
    if os.environ.get("CNNVIZ_TF_LOGS") != "1":
        _quiet_lazy_tensorflow()
        # TensorFlow's Python warnings ("5 out of the last 5 calls to <function ...> triggered tf.function
        # retracing", from ConvNeXt's depthwise convolutions under Grad-CAM) speak to the model's author.
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        pass
    return keras


#: The Keras 3 backends cnnviz runs on, each with the package it needs and the extra of cnnviz's that installs it.
BACKENDS = {"tensorflow": ("tensorflow", "cnnviz"), "jax": ("jax", "cnnviz[jax]")}
#: Keras's other backends, and why cnnviz does not run on them.
NOT_SUPPORTED = {
    "torch": "cnnviz does not run on Keras's torch backend yet (its gradients are written for TensorFlow and JAX; "
    "see the README's 'Keras backends'): use --backend tensorflow or --backend jax",
    "numpy": "Keras's numpy backend computes no gradients: use --backend tensorflow or --backend jax",
    "openvino": "Keras's openvino backend runs inference only: use --backend tensorflow or --backend jax",
}


def chosen_backend() -> str:
    """The backend Keras will run on (or runs on, once imported): ``KERAS_BACKEND``, else the ``backend`` of
    Keras's config file (``$KERAS_HOME/keras.json`` or ``~/.keras/keras.json``), else ``tensorflow``."""
    return _backend_and_source()[0]


def _backend_and_source() -> tuple[str, str | None]:
    """The backend Keras will run on, and what chose it, for messages (None: Keras itself, or its default)."""
    if "keras" in sys.modules:
        return str(sys.modules["keras"].backend.backend()), None
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"], f"KERAS_BACKEND={os.environ['KERAS_BACKEND']}"
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    path = os.path.join(home, "keras.json")
    try:
        with open(path) as config:
            backend = str(json.load(config).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow", None
    return backend, path


def check_backend_installed(backend: str, source: str | None = None) -> None:
    """Raise :class:`~cnnviz.errors.OptionError` naming what to install when ``backend``'s package is missing,
    or saying what to use instead when cnnviz does not run on it; ``source`` is what chose the backend (an
    environment variable, a config file), named in the message."""
    from cnnviz.errors import OptionError

    said = f"{source} asks for the {backend} backend; " if source else ""
    if backend in NOT_SUPPORTED:
        raise OptionError(said + NOT_SUPPORTED[backend])
    if backend not in BACKENDS:
        raise OptionError(f"{said}unknown Keras backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
    package, extra = BACKENDS[backend]
    if importlib.util.find_spec(package) is None:
        needs = f"{source} asks for the {backend} backend, which needs" if source else f"the {backend} backend needs"
        raise OptionError(
            f"{needs} the {package} package, not installed: pip install '{extra}'"
            + (", or run with --backend tensorflow" if source else "")
        )


def _quiet_lazy_tensorflow() -> None:
    """On another backend, Keras still imports TensorFlow where it is installed, lazily, the first time it
    serialises a layer's configuration: that import gets its start-up lines silenced too. (Keras's private
    ``LazyModule``; if it changes, the lines show, nothing breaks.)"""
    try:
        from keras.src.utils import module_utils

        lazy = module_utils.tensorflow
        if lazy.module is not None or "tensorflow" in sys.modules:
            return
        load = lazy.initialize

        def initialize() -> None:
            with native_stderr_silenced():
                load()

        lazy.initialize = initialize
    except (ImportError, AttributeError):  # pragma: no cover - a Keras without it
        pass
