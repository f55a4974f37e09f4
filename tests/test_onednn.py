"""Gradients through the layers that TensorFlow's oneDNN kernels crash on (issue 18), on both kernel sets.

TensorFlow 2.21's oneDNN kernels, on by default on x86, corrupt the heap taking the input gradient of a strided
1x1 convolution on an even-sized map with few channels. cnnviz's replay runs such a layer as a stride-1 twin on
every stride-th row and column; these tests run Grad-CAM, Grad-CAM++ and maximize in child processes with oneDNN
on, and compare them with the layer as it is on the plain kernels, where it does not crash.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz._keras import chosen_backend
from cnnviz.methods.gradcam import GradCam
from tests.gradients_probe import GRADCAM_LAYER, pixels, probe

#: oneDNN is TensorFlow's: on another backend these kernels are not run.
pytestmark = pytest.mark.skipif(chosen_backend() != "tensorflow", reason="oneDNN kernels are TensorFlow's")

ROOT = Path(__file__).resolve().parent.parent


def shortcut_model(keras):  # type: ignore[no-untyped-def]
    """A small residual CNN whose shortcut is a strided 1x1 convolution on a 32x32 map of 8 channels."""
    keras.utils.set_random_seed(4)
    layers = keras.layers
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    shortcut = layers.Conv2D(16, 1, strides=2, padding="same", use_bias=False, name="shortcut")(x)
    y = layers.SeparableConv2D(16, 3, padding="same", activation="relu", name="sep")(x)
    y = layers.MaxPooling2D(3, strides=2, padding="same", name="pool")(y)
    x = layers.Add(name="add")([y, shortcut])
    x = layers.Conv2D(12, 3, activation="relu", name="conv_last")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(3, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="shortcut_net")


def _child(args: list[str], onednn: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "PYTHONPATH": str(ROOT)}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=300)


def _probed(model: Path, out: Path, onednn: str, as_is: bool = False) -> dict[str, np.ndarray]:
    args = [sys.executable, str(ROOT / "tests" / "gradients_probe.py"), str(model), str(out)]
    done = _child([*args, "--as-is"] if as_is else args, onednn)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-3000:]}"
    with np.load(out) as arrays:
        return dict(arrays)


def test_the_replay_runs_the_strided_shortcut_as_its_stride_1_twin(keras) -> None:  # type: ignore[no-untyped-def]
    model = shortcut_model(keras)
    built = GradCam(model, GRADCAM_LAYER)._build(None)[0]

    names = [layer.name for layer in built.layers]
    assert "shortcut_twin" in names and "shortcut" not in names
    twin = built.get_layer("shortcut_twin")
    assert tuple(twin.strides) == (1, 1) and twin.kernel is model.get_layer("shortcut").kernel


def test_gradients_with_onednn_on_equal_the_layer_as_it_is_on_the_plain_kernels(keras, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "shortcut.keras"
    shortcut_model(keras).save(path)

    twinned = _probed(path, tmp_path / "on.npz", onednn="1")
    plain_twinned = _probed(path, tmp_path / "off.npz", onednn="0")
    reference = _probed(path, tmp_path / "as_is.npz", onednn="0", as_is=True)
    here = probe(str(path))  # and in this process, on the kernels this run of the suite has

    assert twinned["gradcam"].shape == (2, 32, 32) and twinned["maximize"].shape == (4, 32, 32, 3)
    assert twinned["gradcam"].max() > 0 and twinned["gradcampp"].max() > 0 and twinned["gradient"].max() > 0
    assert reference["reached"][1] > 50 and reference["reached"][2] > 50  # two filters the ascent drove far
    for name, expected in reference.items():  # on one kernel set the twin computes the very same numbers
        np.testing.assert_array_equal(plain_twinned[name], expected, err_msg=name)
    for result in (twinned, here):
        for name in ("gradcam", "gradcampp", "gradient", "integrated"):
            scale = np.abs(reference[name]).max()
            np.testing.assert_allclose(result[name], reference[name], rtol=1e-4, atol=1e-5 * scale, err_msg=name)
        np.testing.assert_allclose(result["reached"], reference["reached"], rtol=1e-3, atol=1e-4)
        # oneDNN rounds differently, and Adam's normalised steps carry that a little further: measured 0.0115
        np.testing.assert_allclose(result["maximize"], reference["maximize"], atol=0.03)


def _mini_xception_h5(path: Path) -> Path:
    """A Keras 2 .h5 model shaped like the mini-Xception emotion classifier the fer package ships: grayscale 64x64,
    two plain convs to 60x60x8, then residual modules whose shortcuts are strided 1x1 convolutions on 8 and 16
    channels, separable convs, and a conv classifier ending in global pooling and a softmax."""
    tf_keras = pytest.importorskip("tf_keras")
    layers = tf_keras.layers
    tf_keras.utils.set_random_seed(5)
    inputs = tf_keras.Input((64, 64, 1))
    x = inputs
    for index in (1, 2):
        x = layers.Conv2D(8, 3, use_bias=False, name=f"stem_conv{index}")(x)
        x = layers.BatchNormalization(name=f"stem_bn{index}")(x)
        x = layers.Activation("relu")(x)
    for filters in (16, 32):
        residual = layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False)(x)
        residual = layers.BatchNormalization()(residual)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = layers.add([x, residual])
    x = layers.Conv2D(7, 3, padding="same", name="conv2d_last")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Activation("softmax", name="predictions")(x)
    tf_keras.Model(inputs, outputs, name="mini_xception").save(path)
    return path


def test_gradcam_cli_on_a_keras_2_mini_xception_works_with_onednn_on(tmp_path: Path) -> None:
    model = _mini_xception_h5(tmp_path / "mini_xception.h5")
    face = tmp_path / "face.png"
    yy, xx = np.mgrid[:64, :64]
    Image.fromarray(((yy * 3 + xx * 2) % 256).astype(np.uint8), mode="L").save(face)
    runs = {}
    for onednn in ("1", "0"):
        out = tmp_path / f"out_{onednn}"
        args = ["gradcam", str(face), "--model", str(model), "--save-raw", "-o", str(out)]
        done = _child([sys.executable, "-m", "cnnviz", *args], onednn)
        assert done.returncode == 0, f"oneDNN {onednn}: exit {done.returncode}\n{done.stderr[-3000:]}"
        assert done.stdout.startswith("layer: conv2d_last; gradient of the pre-softmax scores (the input of layer")
        runs[onednn] = np.load(
            out
            / "mini_xception"
            / "face"
            / next(p.name for p in (out / "mini_xception" / "face").glob("gradcam_*.npy"))
        )

    assert runs["1"].shape == (64, 64) and runs["1"].max() > 0
    np.testing.assert_allclose(runs["1"], runs["0"], rtol=1e-4, atol=1e-5 * runs["0"].max())


def test_the_probes_pictures_are_the_same_in_every_process() -> None:
    code = "from tests.gradients_probe import pixels; print(pixels().tobytes().hex())"
    done = _child([sys.executable, "-c", code], onednn="0")

    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.frombuffer(bytes.fromhex(done.stdout.strip()), np.float32), pixels().ravel())
