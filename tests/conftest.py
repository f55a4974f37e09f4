"""Small models and images built by the tests themselves: nothing here needs the network."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from cnnviz._keras import chosen_backend, keras_module

# The tests run on the kernels the environment gives them: TensorFlow's default (oneDNN on x86), as users get them,
# and .ci/run runs the suite again with TF_ENABLE_ONEDNN_OPTS=0, the plain kernels of the strictest CPU a user may
# have (no NCHW convolution). The header of a run says which.
ONEDNN = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")
# Quiet as cnnviz makes a user's run (cnnviz._keras) before any test module imports a library that sets its own
# level first: jax (which keras-hub imports) sets TF_CPP_MIN_LOG_LEVEL=1 where it is unset, and the commands that the
# tests run as subprocesses would inherit it and print TensorFlow's CUDA probe.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pytest_report_header() -> str:
    return f"Keras backend: {chosen_backend()}; TF_ENABLE_ONEDNN_OPTS: {ONEDNN}"


ROOT = Path(__file__).resolve().parent.parent

#: Debian's chromium, for the browser tests of the report and the explorer.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: A developer without it skips the browser tests; CI (which .ci/run gives it) must run them.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium package is not installed"
)
#: Offline and quiet: no first-run, sync, component or background network of Chromium's own (with --headless for
#: the command line; Playwright adds its own).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: The tutorials' 3x3 vertical line detector (shared seeds, 000).
VERTICAL_LINE = np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]], dtype=np.float32)
#: The tutorials' 8x8 picture with a two-pixel vertical line in columns 3 and 4.
LINE_IMAGE = np.tile(np.array([0, 0, 0, 1, 1, 0, 0, 0], dtype=np.float32), (8, 1))


def printed(text: str) -> str:
    """A command's output without the "backend: ..." line it prints on a backend other than TensorFlow, so that
    the tests pinning a command's output hold on every backend (tests/test_backends.py checks that line)."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("backend: "))


@pytest.fixture(scope="session")
def keras():  # type: ignore[no-untyped-def]
    return keras_module()


def load_script(name: str) -> ModuleType:
    """Import one of scripts/*.py as a module."""
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def line_detector_2d(keras, filters: int = 1):  # type: ignore[no-untyped-def]
    """Conv2D over 8x8 grayscale with the vertical line detector as filter 0 (filter k: detector * (k+1))."""
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(filters, (3, 3), name="detector")], name="line_detector"
    )
    kernel = np.stack([VERTICAL_LINE * (k + 1) for k in range(filters)], axis=-1)[:, :, None, :]
    model.get_layer("detector").set_weights([kernel, np.zeros(filters, dtype=np.float32)])
    return model


@pytest.fixture
def line_model(keras):  # type: ignore[no-untyped-def]
    return line_detector_2d(keras)


def tiny_base(keras, name: str = "base"):  # type: ignore[no-untyped-def]
    """A small Functional conv base with a branch, like the keras.applications ones."""
    inputs = keras.Input((16, 16, 3), name=f"{name}_input")
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(inputs)
    b = keras.layers.Conv2D(4, 1, name="conv_b")(a)
    c = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(a)
    merged = keras.layers.Add(name="add")([b, c])
    out = keras.layers.Conv2D(6, 3, strides=2, name="conv_c")(merged)
    return keras.Model(inputs, out, name=name)


def nested_sequential(keras):  # type: ignore[no-untyped-def]
    """The usual transfer-learning shape: augmentation and rescaling, then a base, then a head."""
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.RandomFlip("horizontal", name="flip"),
            keras.layers.Rescaling(1.0 / 255.0, name="rescale"),
            tiny_base(keras),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(2, name="head"),
        ],
        name="transfer",
    )


@pytest.fixture
def nested_model(keras):  # type: ignore[no-untyped-def]
    return nested_sequential(keras)


def write_image(path: Path, array: np.ndarray, **save_args) -> Path:  # type: ignore[no-untyped-def]
    Image.fromarray(array).save(path, **save_args)
    return path


@pytest.fixture
def rgb_image(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    return write_image(tmp_path / "photo.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))


#: Where the bright square sits in :func:`square_picture`: rows 4-11, cols 20-27 of a 32x32 picture, off centre.
SQUARE_AT = (slice(4, 12), slice(20, 28))


def square_pictures(count: int, seed: int, side: int = 32, square: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Dim noise pictures, 0..255; every odd one has a bright square somewhere (label 1), the others none (0)."""
    rng = np.random.default_rng(seed)
    pictures = rng.uniform(0, 80, (count, side, side, 3)).astype(np.float32)
    labels = (np.arange(count) % 2).astype(np.int32)
    for index in np.flatnonzero(labels):
        row, col = rng.integers(0, side - square + 1, 2)
        pictures[index, row : row + square, col : col + square] = 255.0
    return pictures, labels


def square_picture(seed: int = 99) -> np.ndarray:
    """One 32x32 noise picture with the bright square at :data:`SQUARE_AT`, ``(32, 32, 3)`` 0..255."""
    picture = square_pictures(2, seed)[0][0]
    picture[SQUARE_AT] = 255.0
    return picture


def train_square_finder(keras):  # type: ignore[no-untyped-def]
    """A small CNN trained here, in about two seconds, to tell pictures with a bright square from those without.

    It takes raw 0..255 pixels (a Rescaling layer first), and ends in a softmax over (no square, square)."""
    keras.utils.set_random_seed(0)
    pictures, labels = square_pictures(800, seed=0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1.0 / 255.0, name="rescale"),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(2, activation="softmax", name="predictions"),
        ],
        name="square_finder",
    )
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(pictures, labels, epochs=4, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] > 0.95, "the square finder did not learn"
    return model


@pytest.fixture(scope="session")
def square_finder(keras):  # type: ignore[no-untyped-def]
    return train_square_finder(keras)


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    """A local Ray of 2 CPUs for one test module (skipped without the ray extra; CI installs it)."""
    ray = pytest.importorskip("ray", reason="the ray extra (pip install 'cnnviz[ray]')")
    pytest.importorskip("ray.data")
    from cnnviz.engines.ray_engine import connect

    started = connect(cpus=2)
    yield started
    ray.shutdown()
