"""Models written by Keras 2 (TF 2.x, tf_keras): .h5 files and SavedModels that Keras 3 alone cannot read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnviz import ModelLoadError, conv_layers, feature_maps, load_model
from cnnviz._keras import chosen_backend
from tests.test_models import _refused_until_unsafe

#: Keras 2's TFOpLambda layers call TensorFlow itself: they load on TensorFlow only (test_backends checks that
#: another backend refuses them with what to do).
tensorflow_only = pytest.mark.skipif(
    chosen_backend() != "tensorflow", reason="a Keras 2 model's TensorFlow calls run on TensorFlow only"
)


def _keras2_output(model, layer: str, pixels: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """What Keras 2 itself computes at ``layer`` of ``model`` (a tf_keras model) for ``pixels``."""
    import tf_keras

    probe = tf_keras.Model(model.inputs, model.get_layer(layer).output)
    return np.asarray(probe.predict(pixels, verbose=0))


def _saved_and_reloaded(model, path: Path, seed: int, low: float = 0.0, high: float = 1.0):  # type: ignore[no-untyped-def]
    """Save a tf_keras ``model`` to ``path``, load it back with cnnviz, and draw one batch of pixels it takes."""
    model.save(path)
    shape = (1, *model.inputs[0].shape[1:])
    pixels = np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)
    return load_model(path), pixels


def _tf_keras_model():  # type: ignore[no-untyped-def]
    """A model written by Keras 2 (tf_keras), as older TF 2.x releases saved them."""
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(3)
    return tf_keras.Sequential(
        [
            tf_keras.layers.InputLayer(input_shape=(12, 12, 3)),
            tf_keras.layers.Conv2D(5, 3, activation="relu", name="legacy_conv"),
            tf_keras.layers.MaxPooling2D(),
            tf_keras.layers.Conv2D(7, 3, name="legacy_conv_2"),
            tf_keras.layers.Flatten(),
            tf_keras.layers.Dense(3),
        ]
    )


def test_legacy_h5_written_by_keras_2_loads_with_its_weights(tmp_path: Path) -> None:
    legacy = _tf_keras_model()
    path = tmp_path / "legacy.h5"
    model, pixels = _saved_and_reloaded(legacy, path, seed=2)
    maps = feature_maps(model, pixels, ["legacy_conv_2"])

    np.testing.assert_allclose(maps["legacy_conv_2"], _keras2_output(legacy, "legacy_conv_2", pixels), atol=1e-5)


def test_savedmodel_directory_written_by_keras_2_loads(tmp_path: Path) -> None:
    legacy = _tf_keras_model()
    folder = tmp_path / "saved"
    legacy.save(folder, save_format="tf")

    model = load_model(folder)

    assert [(c.path, c.output_shape, c.params) for c in conv_layers(model)] == [
        ("legacy_conv", (10, 10, 5), 140),
        ("legacy_conv_2", (3, 3, 7), 322),
    ]


def test_savedmodel_without_keras_metadata_is_explained(tmp_path: Path) -> None:
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"")

    with pytest.raises(ModelLoadError, match=r"without Keras layer metadata.*model\.save\('model\.keras'\)"):
        load_model(folder)


def _keras2_base(tf_keras):  # type: ignore[no-untyped-def]
    """A Keras 2 conv base with the layers whose old configs Keras 3 rejects (BatchNorm axis, depthwise groups)."""
    inputs = tf_keras.Input((16, 16, 3))
    x = tf_keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    x = tf_keras.layers.BatchNormalization(name="bn")(x)
    x = tf_keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    return tf_keras.Model(inputs, tf_keras.layers.ReLU(name="relu")(x), name="keras2_base")


@pytest.mark.parametrize("outer", ["sequential", "functional"])
def test_keras_2_transfer_models_in_h5_load_with_their_weights(tmp_path: Path, outer: str) -> None:
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(5)
    base = _keras2_base(tf_keras)
    # make the batch-norm statistics matter, so a weight that fails to load shows
    bn = base.get_layer("bn")
    bn.set_weights([np.full(4, 2.0), np.full(4, 0.5), np.full(4, 0.25), np.full(4, 4.0)])
    if outer == "sequential":
        model = tf_keras.Sequential(
            [
                tf_keras.layers.InputLayer(input_shape=(16, 16, 3)),
                tf_keras.layers.Rescaling(1 / 255),
                base,
                tf_keras.layers.GlobalAveragePooling2D(),
                tf_keras.layers.Dense(2),
            ]
        )
    else:
        inputs = tf_keras.Input((16, 16, 3))
        x = tf_keras.layers.RandomFlip("horizontal")(inputs)
        x = tf_keras.layers.Rescaling(1 / 255)(x)
        x = base(x, training=False)
        model = tf_keras.Model(inputs, tf_keras.layers.Dense(2)(tf_keras.layers.GlobalAveragePooling2D()(x)))
    path = tmp_path / f"keras2_{outer}.h5"
    loaded, pixels = _saved_and_reloaded(model, path, seed=4, low=0, high=255)
    maps = feature_maps(loaded, pixels, ["keras2_base/dw"])

    expected = _keras2_output(base, "dw", pixels / 255.0)
    np.testing.assert_allclose(maps["keras2_base/dw"], expected, rtol=1e-4, atol=1e-4)


@tensorflow_only
def test_the_tensorflow_transfer_learning_tutorial_model_from_keras_2(tmp_path: Path) -> None:
    """Augmentation Sequential, preprocess_input kept as TFOpLambda layers, a nested base called with
    training=False: the shape of the official TF 2.x tutorial's model, saved as .h5."""
    from cnnviz.inputs.preprocess import auto_preprocessing

    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(8)
    base = _keras2_base(tf_keras)
    augment = tf_keras.Sequential([tf_keras.layers.RandomFlip("horizontal"), tf_keras.layers.RandomRotation(0.2)])
    inputs = tf_keras.Input((16, 16, 3))
    x = tf_keras.applications.mobilenet_v2.preprocess_input(augment(inputs))
    x = base(x, training=False)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(1)(tf_keras.layers.GlobalAveragePooling2D()(x)))
    path = tmp_path / "tutorial.h5"
    loaded, pixels = _saved_and_reloaded(model, path, seed=9, low=0, high=255)
    step = auto_preprocessing(loaded)
    maps = feature_maps(loaded, step(pixels), ["keras2_base/stem"])

    assert step.name == "none" and "tf.math.truediv" in step.description
    expected = _keras2_output(base, "stem", pixels / 127.5 - 1.0)
    np.testing.assert_allclose(maps["keras2_base/stem"], expected, rtol=1e-4, atol=1e-4)


@tensorflow_only
def test_keras_2_tensorflow_calls_outside_math_need_unsafe(tmp_path: Path) -> None:
    tf_keras = pytest.importorskip("tf_keras")
    import tensorflow as tf

    inputs = tf_keras.Input((8, 8, 3))
    shuffled = tf.random.shuffle(inputs)
    model = tf_keras.Model(inputs, tf_keras.layers.Conv2D(2, 3, name="conv")(shuffled))
    path = tmp_path / "shuffle.h5"
    model.save(path)

    loaded = _refused_until_unsafe(
        path,
        f"{path} calls tf.random.shuffle, which is not among the TensorFlow math and shaping functions cnnviz "
        "runs by default. If you trust the file, pass `unsafe`.",
    )
    assert [c.path for c in conv_layers(loaded)] == ["conv"]


def test_teachable_machine_shaped_keras_2_model(tmp_path: Path) -> None:
    """Sequential of two Sequentials: a conv base inside the first, a head whose first Dense carries the input
    shape inside the second, as Teachable Machine exports them (written by tf_keras with module names)."""
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(10)
    base = _keras2_base(tf_keras)
    features = tf_keras.Sequential(
        [tf_keras.layers.InputLayer(input_shape=(16, 16, 3)), base, tf_keras.layers.GlobalAveragePooling2D()],
        name="sequential_1",
    )
    head = tf_keras.Sequential([tf_keras.layers.Dense(5, input_shape=(4,)), tf_keras.layers.Dense(2)], name="head")
    model = tf_keras.Sequential([features, head])
    model.build((None, 16, 16, 3))
    path = tmp_path / "keras_model.h5"
    loaded, pixels = _saved_and_reloaded(model, path, seed=11, low=-1, high=1)
    maps = feature_maps(loaded, pixels, ["dw"])

    assert [c.path for c in conv_layers(loaded)] == ["sequential_1/keras2_base/stem", "sequential_1/keras2_base/dw"]
    np.testing.assert_allclose(maps["sequential_1/keras2_base/dw"], _keras2_output(base, "dw", pixels), atol=1e-5)


def test_seed_cifar_cnn_written_by_keras_2_without_an_input_layer(tmp_path: Path) -> None:
    tf_keras = pytest.importorskip("tf_keras")
    layers = tf_keras.layers
    tf_keras.utils.set_random_seed(12)
    model = tf_keras.Sequential(
        [
            layers.Conv2D(32, (3, 3), input_shape=(32, 32, 3), padding="same", activation="relu"),
            layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
            layers.Flatten(),
            layers.Dense(10),
        ]
    )
    path = tmp_path / "cifar_keras2.h5"
    loaded, pixels = _saved_and_reloaded(model, path, seed=13)
    convs = conv_layers(loaded)

    assert [(c.output_shape, c.params) for c in convs] == [((32, 32, 32), 896), ((32, 32, 32), 9248)]
    second = feature_maps(loaded, pixels, [convs[1].path])[convs[1].path]
    np.testing.assert_allclose(second, _keras2_output(model, model.layers[1].name, pixels), atol=1e-5)


def test_keras_file_written_by_tf_keras_with_a_nested_model(tmp_path: Path) -> None:
    tf_keras = pytest.importorskip("tf_keras")
    inputs = tf_keras.Input((8, 8, 3))
    base = tf_keras.Model(inputs, tf_keras.layers.Conv2D(2, 3, name="inner_conv")(inputs), name="base")
    outer_input = tf_keras.Input((8, 8, 3))
    model = tf_keras.Model(outer_input, tf_keras.layers.Flatten()(base(outer_input)))
    path = tmp_path / "tf_keras.keras"
    loaded, pixels = _saved_and_reloaded(model, path, seed=14)
    maps = feature_maps(loaded, pixels, ["inner_conv"])

    np.testing.assert_allclose(maps["base/inner_conv"], _keras2_output(base, "inner_conv", pixels), atol=1e-6)


@tensorflow_only
def test_keras_2_model_with_vgg16_preprocess_input_inside(tmp_path: Path) -> None:
    """VGG16's and ResNet50's preprocess_input flip RGB to BGR with x[..., ::-1]: a SlicingOpLambda in Keras 2."""
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(15)
    inputs = tf_keras.Input((8, 8, 3))
    prepared = tf_keras.applications.vgg16.preprocess_input(inputs)
    model = tf_keras.Model(inputs, tf_keras.layers.Conv2D(2, 3, name="conv")(prepared))
    path = tmp_path / "vgg_preprocess_inside.h5"
    loaded, pixels = _saved_and_reloaded(model, path, seed=16, low=0, high=255)
    maps = feature_maps(loaded, pixels, ["conv"])

    np.testing.assert_allclose(maps["conv"], model.predict(pixels, verbose=0), atol=1e-4)


def test_keras_2_separable_transposed_and_spatial_dropout_layers_load_with_their_weights(tmp_path: Path) -> None:
    """tf_keras writes ``groups`` for every conv and a plain kernel's settings on separable convs, which Keras 3's
    layers refuse ("Unrecognized keyword arguments passed to SeparableConv2D")."""
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(6)
    layers = tf_keras.layers
    inputs = tf_keras.Input((12, 12, 3))
    x = layers.SeparableConv2D(6, 3, padding="same", name="sep")(inputs)
    x = layers.SpatialDropout2D(0.2, name="drop")(x)
    x = layers.Conv2DTranspose(4, 3, strides=2, name="up")(x)
    x = layers.DepthwiseConv2D(3, name="dw")(x)
    seq = layers.Reshape((-1, 4))(x)
    seq = layers.SeparableConv1D(3, 3, name="sep1d")(seq)
    model = tf_keras.Model(inputs, seq)
    loaded, pixels = _saved_and_reloaded(model, tmp_path / "kinds.h5", seed=6)

    assert [conv.kind for conv in conv_layers(loaded)] == [
        "SeparableConv2D",
        "Conv2DTranspose",
        "DepthwiseConv2D",
        "SeparableConv1D",
    ]
    maps = feature_maps(loaded, pixels, ["dw"])
    np.testing.assert_allclose(maps["dw"], _keras2_output(model, "dw", pixels), rtol=1e-4, atol=1e-5)
