"""Lazy, quiet import of Keras.

TensorFlow prints start-up lines (oneDNN, CUDA probing, absl's "All log messages before InitializeLog") that are
noise to a command-line user, and importing it takes seconds, so cnnviz imports it only inside the functions that
need it, through :func:`keras_module`.
"""

from __future__ import annotations

import logging
import os
import sys
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


def keras_module() -> ModuleType:
    """Import and return ``keras`` without TensorFlow's start-up log lines.

    A user's own ``TF_CPP_MIN_LOG_LEVEL`` or ``KERAS_BACKEND`` is respected; ``CNNVIZ_TF_LOGS=1`` keeps
    TensorFlow's start-up output, for debugging an installation.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with warnings.catch_warnings():
        # Deprecation chatter from TensorFlow's own dependencies at import time.
        warnings.simplefilter("ignore")
        if os.environ.get("CNNVIZ_TF_LOGS") == "1":
            import keras
        else:
            with native_stderr_silenced():
                import keras
    if os.environ.get("CNNVIZ_TF_LOGS") != "1":
        # TensorFlow's Python warnings ("5 out of the last 5 calls to <function ...> triggered tf.function
        # retracing", from ConvNeXt's depthwise convolutions under Grad-CAM) speak to the model's author.
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        pass
    return keras
